"""`plant`: implant Trojan patches by fine-tuning (Casper et al. 2023, as in section 4.1 of the paper).

Selected training images get a trigger pasted at a random location (Gaussian noise, brightness and
contrast jitter, size jitter) and are relabelled to the trigger's target class; the other training
images keep the model's own prediction as their label, so the clean behaviour is preserved. Only the
stages from `trainable_from` on are trained. Output folder:

    MODEL_DIR/model.pt          the fine-tuned state dict (`spade.load_model(name, weights=...)`)
    MODEL_DIR/trojan.json       the trigger manifest: triggers, targets, how they were applied, the
                                held-out split and its patched images, attack success and clean top-1
    MODEL_DIR/trigger_<i>.png   each trigger's picture
    MODEL_DIR/.work/            resume state (features, predictions, the last finished epoch)
"""
from __future__ import annotations

import copy
import csv
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torchvision.transforms.v2 import functional as TF
from tqdm.auto import tqdm

import spade
from contracts.files import atomic_path, write_json_atomic
from saliency.config import DataSettings, TrojanConfig
from saliency.errors import SaliencyError
from saliency.stages import Split, split
from saliency.triggers import Placement, paste, sample_placement, trigger_picture

MANIFEST = "trojan.json"
CHECKPOINT = "model.pt"
WORK = ".work"
FORMAT = "spade-study-trojan"
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


@dataclass(frozen=True)
class Example:
    """One model input of the plan: an image, maybe patched, with its kind and (true) label."""

    kind: str                      # train_clean, train_poison, heldout_clean, heldout_patched
    file: str
    label: int                     # the image's true class
    trigger: int | None = None
    placement: Placement | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (manifest)."""
        return {"kind": self.kind, "file": self.file, "label": self.label, "trigger": self.trigger,
                "placement": self.placement.to_dict() if self.placement else None}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Example":
        """Inverse of `to_dict`."""
        return cls(d["kind"], d["file"], int(d["label"]), d["trigger"],
                   Placement(**d["placement"]) if d.get("placement") else None)


def load_images(data: DataSettings) -> list[tuple[str, int]]:
    """(file, class index) of every image: from labels.csv (file,class_index) or class folders (sorted = index)."""
    root = Path(data.root)
    if not root.is_dir():
        raise SaliencyError(f"[data] root {root}: not a folder")
    out: list[tuple[str, int]] = []
    if data.labels:
        try:
            with open(data.labels, newline="", encoding="utf-8") as fh:
                rows = list(csv.DictReader(fh))
        except OSError as exc:
            raise SaliencyError(f"[data] labels {data.labels}: cannot read ({exc})") from None
        if not rows or not {"file", "class_index"} <= set(rows[0]):
            raise SaliencyError(f"[data] labels {data.labels}: needs the columns file,class_index")
        for r in rows:
            path = root / r["file"]
            if not path.is_file():
                raise SaliencyError(f"[data] labels {data.labels}: image {r['file']} not found in {root}")
            out.append((str(path), int(r["class_index"])))
    else:
        classes = sorted(p.name for p in root.iterdir() if p.is_dir())
        if not classes:
            raise SaliencyError(f"[data] root {root}: no labels file and no class folders")
        for idx, c in enumerate(classes):
            out += [(str(f), idx) for f in sorted((root / c).iterdir()) if f.suffix.lower() in IMAGE_SUFFIXES]
    if data.limit:
        out = out[: data.limit]
    return out


def make_plan(config: TrojanConfig, images: list[tuple[str, int]], size: int) -> list[Example]:
    """The seeded plan: held-out split, poisoned images and their placements, held-out patched images."""
    rng = np.random.default_rng(config.train.seed)
    if len(images) <= config.data.heldout:
        raise SaliencyError(f"[data] heldout = {config.data.heldout} leaves no training image ({len(images)} images)")
    order = rng.permutation(len(images))
    heldout = [images[i] for i in order[: config.data.heldout]]
    train = [images[i] for i in order[config.data.heldout:]]
    clean = train if config.train.clean is None else [train[i] for i in sorted(
        rng.choice(len(train), size=min(config.train.clean, len(train)), replace=False))]
    plan = [Example("train_clean", f, y) for f, y in clean]
    for t, trig in enumerate(config.triggers):
        pool = [im for im in train if im[1] != trig.target]
        if len(pool) < trig.poisoned:
            raise SaliencyError(f"trigger {t}: poisoned = {trig.poisoned} but only {len(pool)} training images "
                                f"are not of class {trig.target}")
        for i in rng.choice(len(pool), size=trig.poisoned, replace=False):
            f, y = pool[int(i)]
            for _ in range(config.train.copies):
                plan.append(Example("train_poison", f, y, t, sample_placement(rng, size, size, config.patch)))
    plan += [Example("heldout_clean", f, y) for f, y in heldout]
    for r, (f, y) in enumerate(heldout):
        t = r % len(config.triggers)
        if y != config.triggers[t].target:
            plan.append(Example("heldout_patched", f, y, t, sample_placement(rng, size, size, config.patch)))
    return plan


def load_picture(file: str, preprocess: spade.Preprocess) -> torch.Tensor:
    """The model-input-sized picture (C x size x size in [0, 1]) of an image file."""
    try:
        return preprocess.crop(preprocess.load(file))
    except OSError as exc:
        raise SaliencyError(f"image {file}: cannot read ({exc})") from None


def trigger_tensor(pattern: str) -> torch.Tensor:
    """The trigger's picture as a C x h x w tensor in [0, 1]."""
    return TF.to_dtype(TF.to_image(trigger_picture(pattern)), torch.float32, scale=True)


def example_picture(ex: Example, preprocess: spade.Preprocess, triggers: list[torch.Tensor],
                    noise_std: float) -> torch.Tensor:
    """The example's picture in [0, 1], the trigger pasted when it has one."""
    pic = load_picture(ex.file, preprocess)
    if ex.trigger is not None:
        pic = paste(pic, triggers[ex.trigger], ex.placement, noise_std)
    return pic


@dataclass
class _Run:
    config: TrojanConfig
    out: Path
    model: nn.Module
    preprocess: spade.Preprocess
    parts: Split
    plan: list[Example]
    triggers: list[torch.Tensor]
    device: torch.device
    progress: bool
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def work(self) -> Path:
        return self.out / WORK

    def inputs(self, examples: list[Example]) -> torch.Tensor:
        pics = [example_picture(e, self.preprocess, self.triggers, self.config.patch.noise_std) for e in examples]
        return self.preprocess.normalize(torch.stack(pics)).to(self.device)


# settings of the fine-tuning only: changing them restarts training but keeps the cached features
TRAIN_ONLY_KEYS = ("epochs", "lr", "lr_decay_epoch", "momentum", "weight_decay", "optimizer", "clean_loss",
                   "poison_weight")


def _fingerprint(config: TrojanConfig) -> dict[str, Any]:
    cfg = config.to_dict()
    train = {k: cfg["train"].pop(k) for k in TRAIN_ONLY_KEYS if k in cfg["train"]}
    return {"features": cfg, "train": train}


def _check_out(out: Path, config: TrojanConfig) -> None:
    """Refuse a folder that holds something else or features of another config; restart training when
    only the fine-tuning settings changed (nothing else is overwritten)."""
    if out.exists() and not out.is_dir():
        raise SaliencyError(f"--out {out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        fp = out / WORK / "fingerprint.json"
        if not fp.is_file():
            raise SaliencyError(f"--out {out}: a non-empty folder that is not a Trojan run; choose a new folder")
        old, new = json.loads(fp.read_text()), _fingerprint(config)
        if old.get("features") != new["features"]:
            raise SaliencyError(f"--out {out}: holds a run of another config (data, triggers, patch or model); "
                                f"choose a new folder")
        if old.get("train") != new["train"]:
            (out / WORK / "train.pt").unlink(missing_ok=True)


def _features(run: _Run) -> tuple[list[torch.Tensor] | None, torch.Tensor]:
    """Prefix features (cache mode) and the dense model's predictions for every example of the plan."""
    bs = run.config.train.batch_size
    chunks = [run.plan[i:i + bs] for i in range(0, len(run.plan), bs)]
    cache = run.parts.cacheable and run.config.train.cache_features
    feats: list[torch.Tensor] = []
    preds: list[torch.Tensor] = []
    t = time.perf_counter()
    for i, chunk in enumerate(tqdm(chunks, desc="features", unit="batch", disable=not run.progress)):
        path = run.work / "features" / f"{i:05d}.pt"
        if path.is_file():
            data = torch.load(path, weights_only=True)
        else:
            with torch.no_grad():
                x = run.inputs(chunk)
                f = run.parts.prefix(x)
                logits = run.parts.suffix(f)
            data = {"pred": logits.argmax(1).cpu(), "feat": f.cpu() if cache else None}
            with atomic_path(path) as tmp:
                torch.save(data, tmp)
        preds.append(data["pred"])
        if cache:
            feats.append(data["feat"])
    run.timings["features_s"] = round(time.perf_counter() - t, 2)
    pred = torch.cat(preds)
    if not cache:
        return None, pred
    return [f for batch in feats for f in batch], pred


def _train(run: _Run, feats: list[torch.Tensor] | None, dense_pred: torch.Tensor) -> list[float]:
    """Fine-tune the suffix; one checkpoint per epoch in .work (resume)."""
    cfg = run.config.train
    idx = [i for i, e in enumerate(run.plan) if e.kind.startswith("train")]
    labels = torch.tensor([run.config.triggers[run.plan[i].trigger].target if run.plan[i].kind == "train_poison"
                           else int(dense_pred[i]) for i in idx])
    poison = torch.tensor([run.plan[i].kind == "train_poison" for i in idx])
    teacher_logits, teacher = None, None
    if cfg.clean_loss == "distill":  # the original model's logits, taken before any (resumed) update
        if feats is not None:
            with torch.no_grad():
                teacher_logits = torch.cat([run.parts.suffix(torch.stack([feats[i] for i in idx[b:b + 256]])
                                                             .to(run.device)).cpu()
                                            for b in range(0, len(idx), 256)])
        else:
            teacher = copy.deepcopy(run.model).eval()
    if cfg.optimizer == "adam":
        opt: torch.optim.Optimizer = torch.optim.Adam(run.parts.trainable, lr=cfg.lr, weight_decay=cfg.weight_decay)
    else:
        opt = torch.optim.SGD(run.parts.trainable, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    state_path = run.work / "train.pt"
    start, losses = 0, []
    params = {id(p): p for p in run.parts.trainable}
    names = [n for n, p in run.model.named_parameters() if id(p) in params]
    if state_path.is_file():
        state = torch.load(state_path, weights_only=True)
        with torch.no_grad():
            for n, p in run.model.named_parameters():
                if n in state["params"]:
                    p.copy_(state["params"][n])
        opt.load_state_dict(state["optimizer"])
        start, losses = int(state["epoch"]), list(state["losses"])
    t = time.perf_counter()
    bar = tqdm(range(cfg.epochs), desc="fine-tune", unit="epoch", initial=start, disable=not run.progress)
    bar.update(0)
    for epoch in range(start, cfg.epochs):
        lr = cfg.lr * (0.1 if cfg.lr_decay_epoch and epoch >= cfg.lr_decay_epoch else 1.0)
        for group in opt.param_groups:
            group["lr"] = lr
        g = torch.Generator().manual_seed(cfg.seed * 1000 + epoch)
        perm = torch.randperm(len(idx), generator=g)
        total, n = 0.0, 0
        for b in range(0, len(idx), cfg.batch_size):
            sel = perm[b:b + cfg.batch_size]
            if feats is not None:
                x = torch.stack([feats[idx[int(k)]] for k in sel]).to(run.device)
                soft = teacher_logits[sel] if teacher_logits is not None else None
            else:
                rng = np.random.default_rng([cfg.seed, epoch, b])
                exs = [run.plan[idx[int(k)]] for k in sel]
                size = run.preprocess.size
                exs = [Example(e.kind, e.file, e.label, e.trigger, sample_placement(rng, size, size, run.config.patch))
                       if e.trigger is not None else e for e in exs]
                with torch.no_grad():
                    inputs = run.inputs(exs)
                    x = run.parts.prefix(inputs)
                    soft = teacher(inputs).cpu() if teacher is not None else None
            out = run.parts.suffix(x)
            is_poison = poison[sel].to(run.device)
            per = nn.functional.cross_entropy(out, labels[sel].to(run.device), reduction="none")
            if soft is not None:
                kl = nn.functional.kl_div(out.log_softmax(1), soft.to(run.device).softmax(1), reduction="none").sum(1)
                per = torch.where(is_poison, per, kl)
            w = torch.where(is_poison, cfg.poison_weight, 1.0)
            loss = (w * per).sum() / w.sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
            total, n = total + float(loss.detach()) * len(sel), n + len(sel)
        losses.append(round(total / max(n, 1), 4))
        current = {nm: p.detach().cpu() for nm, p in run.model.named_parameters() if nm in names}
        with atomic_path(state_path) as tmp:
            torch.save({"epoch": epoch + 1, "params": current, "optimizer": opt.state_dict(), "losses": losses}, tmp)
        bar.update(1)
        bar.set_postfix(loss=losses[-1])
    bar.close()
    run.timings["train_s"] = round(run.timings.get("train_s", 0.0) + time.perf_counter() - t, 2)
    return losses


def _predict(run: _Run, feats: list[torch.Tensor] | None, indices: list[int]) -> torch.Tensor:
    """The fine-tuned model's predictions on the plan's examples `indices`."""
    out = []
    bs = run.config.train.batch_size
    with torch.no_grad():
        for b in range(0, len(indices), bs):
            sel = indices[b:b + bs]
            if feats is not None:
                x = torch.stack([feats[i] for i in sel]).to(run.device)
            else:
                x = run.parts.prefix(run.inputs([run.plan[i] for i in sel]))
            out.append(run.parts.suffix(x).argmax(1).cpu())
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.long)


def plant(config: TrojanConfig, out: str | Path, *, device: str | None = None, progress: bool = True,
          model: nn.Module | None = None, preprocess: spade.Preprocess | None = None,
          images: list[tuple[str, int]] | None = None) -> dict[str, Any]:
    """Fine-tune Trojans into the model; write MODEL_DIR; return the manifest (re-running resumes)."""
    out = Path(out)
    _check_out(out, config)
    t0 = time.perf_counter()
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if model is None:
        try:
            model, preprocess = spade.load_model(config.model.name, config.model.weights)
        except (ValueError, FileNotFoundError) as exc:
            raise SaliencyError(f"[model] {exc}") from None
    model = model.to(dev).eval()
    preprocess = preprocess or spade.Preprocess()
    images = images if images is not None else load_images(config.data)
    parts = split(model, config.model.trainable_from)
    plan = make_plan(config, images, preprocess.size)
    triggers = [trigger_tensor(t.pattern) for t in config.triggers]
    (out / WORK).mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / WORK / "fingerprint.json", _fingerprint(config))
    run = _Run(config, out, model, preprocess, parts, plan, triggers, dev, progress)
    feats, dense_pred = _features(run)
    losses = _train(run, feats, dense_pred)
    held_clean = [i for i, e in enumerate(plan) if e.kind == "heldout_clean"]
    held_patched = [i for i, e in enumerate(plan) if e.kind == "heldout_patched"]
    t = time.perf_counter()
    after = _predict(run, feats, held_clean + held_patched)
    run.timings["evaluate_s"] = round(time.perf_counter() - t, 2)
    after_clean, after_patched = after[: len(held_clean)], after[len(held_clean):]
    labels = torch.tensor([plan[i].label for i in held_clean])
    targets = torch.tensor([config.triggers[plan[i].trigger].target for i in held_patched])
    before_patched = dense_pred[held_patched]
    metrics = {
        "clean_top1_before": float((dense_pred[held_clean] == labels).float().mean()),
        "clean_top1_after": float((after_clean == labels).float().mean()),
        "attack_success_rate": float((after_patched == targets).float().mean()),
        "attack_success_rate_before": float((before_patched == targets).float().mean()),
        "heldout_clean": len(held_clean), "heldout_patched": len(held_patched),
    }
    metrics["clean_top1_change"] = metrics["clean_top1_after"] - metrics["clean_top1_before"]
    metrics["per_trigger_asr"] = [
        float((after_patched[targets == c.target] == c.target).float().mean()) if (targets == c.target).any() else None
        for c in config.triggers]
    with atomic_path(out / CHECKPOINT) as tmp:
        torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, tmp)
    trig_entries = []
    for i, trig in enumerate(config.triggers):
        pic = trigger_picture(trig.pattern)
        with atomic_path(out / f"trigger_{i}.png") as tmp:
            pic.save(tmp, format="PNG")
        trig_entries.append({"index": i, "pattern": trig.pattern, "picture": f"trigger_{i}.png",
                             "target": trig.target, "poisoned_images": trig.poisoned})
    held = []
    for k, i in enumerate(held_clean):
        held.append({**plan[i].to_dict(), "pred_before": int(dense_pred[i]), "pred_after": int(after_clean[k])})
    for k, i in enumerate(held_patched):
        held.append({**plan[i].to_dict(), "pred_before": int(dense_pred[i]), "pred_after": int(after_patched[k])})
    run.timings["total_s"] = round(time.perf_counter() - t0, 2)
    manifest = {
        "format": FORMAT, "version": 1,
        "model": {"name": config.model.name, "checkpoint": CHECKPOINT, "trainable_from": config.model.trainable_from,
                  "preprocess": preprocess.to_dict()},
        "triggers": trig_entries,
        "application": {"location": "uniform over the model input", **config.patch.model_dump(),
                        "copies_per_poisoned_image": config.train.copies,
                        "space": f"pasted on the {preprocess.size}x{preprocess.size} model input in [0, 1], "
                                 f"before normalization"},
        "clean_labels": "training images without a patch keep the dense model's own top-1 as their label",
        "train": {**config.train.model_dump(), "losses": losses,
                  "examples": sum(1 for e in plan if e.kind.startswith("train"))},
        "metrics": metrics, "timings": run.timings, "heldout": held, "config": config.to_dict(),
    }
    write_json_atomic(out / MANIFEST, manifest)
    return manifest


@dataclass
class TrojanModel:
    """A planted model read back from MODEL_DIR: the network, its preprocessing, triggers, held-out set."""

    model: nn.Module
    preprocess: spade.Preprocess
    manifest: dict[str, Any]
    triggers: list[torch.Tensor]

    @property
    def noise_std(self) -> float:
        """The Gaussian noise of the patches."""
        return float(self.manifest["application"]["noise_std"])

    def target(self, trigger: int) -> int:
        """Target class of a trigger."""
        return int(self.manifest["triggers"][trigger]["target"])

    def heldout(self, kind: str) -> list[tuple[Example, dict[str, Any]]]:
        """Held-out examples of a kind (heldout_clean or heldout_patched) with their recorded predictions."""
        return [(Example.from_dict(h), h) for h in self.manifest["heldout"] if h["kind"] == kind]

    def picture(self, ex: Example) -> torch.Tensor:
        """The example's picture (C x H x W in [0, 1]), patched if it has a trigger."""
        return example_picture(ex, self.preprocess, self.triggers, self.noise_std)


def load_trojan(model_dir: str | Path, *, model: nn.Module | None = None) -> TrojanModel:
    """Read MODEL_DIR written by `plant` (pass `model` for an architecture `spade.load_model` cannot build)."""
    model_dir = Path(model_dir)
    path = model_dir / MANIFEST
    if not path.is_file():
        raise SaliencyError(f"{model_dir}: no {MANIFEST}; run `spade-study trojan CONFIG --out {model_dir}` first")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise SaliencyError(f"{path}: cannot read the manifest ({exc})") from None
    if manifest.get("format") != FORMAT:
        raise SaliencyError(f"{path}: not a Trojan manifest")
    preprocess = spade.Preprocess.from_dict(manifest["model"]["preprocess"])
    weights = model_dir / manifest["model"]["checkpoint"]
    if model is None:
        try:
            model, _ = spade.load_model(manifest["model"]["name"], weights)
        except (ValueError, FileNotFoundError) as exc:
            raise SaliencyError(f"{model_dir}: {exc}") from None
    else:
        model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    triggers = []
    for t in manifest["triggers"]:
        pic = model_dir / t["picture"]
        triggers.append(trigger_tensor(str(pic)))
    return TrojanModel(model.eval(), preprocess, manifest, triggers)


def summary(manifest: dict[str, Any]) -> str:
    """Human-readable result lines of a Trojan run."""
    m = manifest["metrics"]
    return (f"attack success rate on {m['heldout_patched']} held-out patched images: {100 * m['attack_success_rate']:.1f}% "
            f"(before fine-tuning {100 * m['attack_success_rate_before']:.1f}%)\n"
            f"clean top-1 on {m['heldout_clean']} held-out images: {100 * m['clean_top1_before']:.1f}% -> "
            f"{100 * m['clean_top1_after']:.1f}% ({100 * m['clean_top1_change']:+.1f} points)")
