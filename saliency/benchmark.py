"""`run_benchmark`: the paper's saliency benchmark (section 4.1) on a planted Trojan model.

Samples: held-out patched images whose prediction flips to the Trojan class (clean version not the
target, patched version the target), and clean held-out images the model classifies correctly. Per
sample: one SPADE trace (`spade.prune` on the sample, `trace.apply` gives the pruned copy), then every
method on the dense model and on the pruned copy, for the predicted class. Trojan samples are scored
by AUROC and pointing game against the patch mask; clean samples by insertion and deletion AUC with the
dense model's confidence (the review's definition). One record file per finished sample
(`records/<id>.json`, atomic): re-running resumes, and `--shard I/N` runs the samples of rank
r % N == I (shards may share one folder or be joined by `spade-study saliency tables`).
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

import spade
from contracts.files import write_json_atomic
from contracts.shards import Shard
from saliency.config import SaliencyConfig
from saliency.errors import SaliencyError
from saliency.methods import coverage_table, get_method, method_names
from saliency.metrics import deletion_auc, insertion_auc, pointing_game, trojan_auroc
from saliency.trojan import Example, TrojanModel, load_trojan

RECORDS = "records"
SETTINGS = "benchmark.json"
CONDITIONS = ("dense", "spade")


@dataclass(frozen=True)
class Sample:
    """One test sample: id, kind (trojan or clean), the example and the class to explain."""

    id: str
    kind: str
    rank: int
    example: Example
    target: int


def select_samples(tm: TrojanModel, config: SaliencyConfig) -> list[Sample]:
    """The Trojan samples (patched, flipped to the target) then the clean correctly classified samples."""
    clean_pred = {ex.file: h["pred_after"] for ex, h in tm.heldout("heldout_clean")}
    out: list[Sample] = []
    for ex, h in tm.heldout("heldout_patched"):
        target = tm.target(ex.trigger)
        if h["pred_after"] == target and clean_pred.get(ex.file) != target and len(out) < config.samples.trojan:
            out.append(Sample(f"trojan-{len(out):03d}", "trojan", len(out), ex, target))
    n_trojan = len(out)
    for ex, h in tm.heldout("heldout_clean"):
        if h["pred_after"] == ex.label and len(out) - n_trojan < config.samples.clean:
            k = len(out) - n_trojan
            out.append(Sample(f"clean-{k:03d}", "clean", k, ex, ex.label))
    return out


def spade_model(model: torch.nn.Module, picture: torch.Tensor, preprocess: spade.Preprocess,
                config: SaliencyConfig) -> tuple[torch.nn.Module, spade.Trace]:
    """The SPADE-pruned copy of `model` for one picture (the model input, C x H x W in [0, 1])."""
    from spade.schedules import parse

    s = config.spade
    sparsity = parse(s.sparsity) if isinstance(s.sparsity, str) else s.sparsity
    # the picture already is the model input: resize = size keeps it as it is (no second crop)
    pre = spade.Preprocess(resize=preprocess.size, size=preprocess.size, mean=preprocess.mean, std=preprocess.std)
    trace = spade.prune(model, picture, sparsity=sparsity, solver=s.solver, n_augmentations=s.augmentations,
                        batch_size=s.batch_size, seed=s.seed, preprocess=pre, progress=False)
    return trace.apply(model).eval(), trace


def score_sample(tm: TrojanModel, sample: Sample, config: SaliencyConfig, names: list[str],
                 coverage: dict[str, dict[str, Any]], device: torch.device) -> dict[str, Any]:
    """Every method on the dense model and the SPADE copy for one sample; its scores and timings."""
    model = tm.model
    picture = tm.picture(sample.example)
    x = tm.preprocess.normalize(picture)[None].to(device)
    t = time.perf_counter()
    pruned, trace = spade_model(model, picture.to(device), tm.preprocess, config)
    spade_s = time.perf_counter() - t
    nets = {"dense": model, "spade": pruned}
    mask = sample.example.placement.mask(*picture.shape[-2:]) if sample.kind == "trojan" else None
    seed = config.samples.seed * 100003 + sample.rank + (0 if sample.kind == "trojan" else 50000)
    record: dict[str, Any] = {
        "id": sample.id, "kind": sample.kind, "file": sample.example.file, "target": sample.target,
        "trigger": sample.example.trigger,
        "placement": sample.example.placement.to_dict() if sample.example.placement else None,
        "spade": {"seconds": round(spade_s, 3), "dense_top1": trace.dense_top1, "pruned_top1": trace.pruned_top1},
        "scores": {},
    }
    for name in names + list(config.methods.baselines):
        method = get_method(name)
        entry: dict[str, Any] = {}
        conditions = CONDITIONS if method.kind == "method" else ("dense",)
        for cond in conditions:
            if coverage.get(name, {}).get("status") == "unsupported":
                entry[cond] = {"status": "unsupported"}
                continue
            t = time.perf_counter()
            try:
                smap = method.compute(nets[cond], x, sample.target, picture, config.methods, seed=seed)
            except SaliencyError:
                raise
            except Exception as exc:  # a captum method failing on this architecture: report, go on
                entry[cond] = {"status": "failed", "reason": f"{exc.__class__.__name__}: {str(exc)[:200]}"}
                continue
            result: dict[str, Any] = {"status": "ok", "seconds": round(time.perf_counter() - t, 3)}
            if not np.isfinite(smap).all():
                smap = np.nan_to_num(smap)
                result["note"] = "non-finite values set to 0"
            if sample.kind == "trojan":
                result["auroc"] = trojan_auroc(smap, mask)
                result["pointing"] = pointing_game(smap, mask, config.samples.pointing_tolerance)
            else:
                kw = dict(steps=config.samples.insertion_steps, batch_size=config.methods.batch_size)
                result["insertion"] = insertion_auc(model, x, smap, sample.target, **kw)
                result["deletion"] = deletion_auc(model, x, smap, sample.target, **kw)
            entry[cond] = result
        record["scores"][name] = entry
    return record


def _check_out(out: Path, settings: dict[str, Any]) -> None:
    if out.exists() and not out.is_dir():
        raise SaliencyError(f"--out {out}: exists and is not a folder")
    path = out / SETTINGS
    if path.is_file():
        old = json.loads(path.read_text(encoding="utf-8"))
        if old.get("fingerprint") != settings["fingerprint"]:
            raise SaliencyError(f"--out {out}: holds results of another config or model; choose a new folder")
    elif out.is_dir() and any(p for p in out.iterdir() if p.name != RECORDS):
        raise SaliencyError(f"--out {out}: a non-empty folder that is not a saliency run; choose a new folder")


def run_benchmark(config: SaliencyConfig, model_dir: str | Path, out: str | Path, *, shard: Shard | None = None,
                  device: str | None = None, progress: bool = True,
                  model: torch.nn.Module | None = None) -> list[dict[str, Any]]:
    """Score every (owned) sample not yet recorded in `out`; return all records of this run's samples."""
    out = Path(out)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    tm = load_trojan(model_dir, model=model)
    tm.model.to(dev)
    names = method_names(config.methods)
    cfg = config.to_dict()
    cfg.pop("model_dir", None)
    cfg["methods"].pop("batch_size", None)
    fingerprint = {"config": cfg, "model": str(Path(model_dir).resolve()),
                   "checkpoint_bytes": (Path(model_dir) / tm.manifest["model"]["checkpoint"]).stat().st_size}
    coverage = coverage_table(tm.model, names)
    settings = {"fingerprint": fingerprint, "methods": coverage, "baselines": list(config.methods.baselines),
                "model": tm.manifest["model"], "trojan_metrics": tm.manifest["metrics"],
                "device": str(dev), "torch_threads": torch.get_num_threads()}
    _check_out(out, settings)
    samples = select_samples(tm, config)
    if not any(s.kind == "trojan" for s in samples):
        raise SaliencyError(f"{model_dir}: no held-out patched image flips to its Trojan class")
    write_json_atomic(out / SETTINGS, settings)
    todo = [s for i, s in enumerate(samples) if shard is None or shard.owns(i)]
    records = []
    for s in tqdm(todo, desc="saliency", unit="sample", disable=not progress):
        path = out / RECORDS / f"{s.id}.json"
        if path.is_file():
            records.append(json.loads(path.read_text(encoding="utf-8")))
            continue
        rec = score_sample(tm, s, config, names, coverage, dev)
        write_json_atomic(path, rec)
        records.append(rec)
    return records
