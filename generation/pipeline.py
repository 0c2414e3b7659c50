"""The study generator (paper section 4.2.2): predict, screen with Score-CAM, SPADE, visualize, write.

    from generation.config import load_config
    from generation.pipeline import generate
    generate(load_config("data/configs/imagenet-sample.toml"), Path("bundle"))

Stages: `load` (model, dataset), `predict` (the dense model on every image, in batches),
`screen` (misclassified samples in seeded order; Score-CAM for the true and the predicted
class; keep a sample when the two regions do not intersect, until `items` are kept), then
per item `spade` (one trace, reused for both classes), `visualize` (true and predicted class
logits on the dense and the SPADE model, same seed) and `write` (atomic). Every stage resumes:
predictions and screening results are cached under `BUNDLE/.work`, finished items are never
redone. With a shard I/N, every shard screens the same candidates (deterministic) and builds
the items whose rank r (0-based, in selection order) has r % N == I.
"""
from __future__ import annotations

import json
import shutil
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from PIL import Image
from pytorch_grad_cam.utils.image import show_cam_on_image
from torchvision.transforms.functional import to_pil_image
from tqdm.auto import tqdm

import spade
from contracts.shards import Shard
from generation.bundle import (ITEM_JSON, ITEMS, WORK, finished_records, is_finished, item_ids, item_paths,
                               write_bundle_manifest, write_item)
from generation.candidates import misclassified, predict
from generation.classifier import Classifier, load_classifier
from generation.config import GenerationConfig, SpadeSettings
from generation.dataset import Dataset, ImageLoadError, Sample, load_dataset, load_rgb
from generation.errors import GenerationError
from contracts.manifest import boxes_intersect, write_json_atomic
from generation.provenance import code_version, device_description, package_versions, sha256_file
from generation.regions import find_target_layer, region_from_map, scorecam_maps
from generation.visualize import Method, RenderSettings, get_method, render

LOG_NAME = "generation.log"
# keys that change speed, not results: a resumed run may change them (and `items`, to extend a study)
SPEED_ONLY_KEYS = {("study", "items"), ("data", "batch_size"), ("data", "workers"), ("scorecam", "batch_size"),
                   ("spade", "batch_size"), ("spade", "save_traces")}


@dataclass
class Selected:
    """A screened sample kept for the study: its Score-CAM maps and regions."""

    rank: int
    id: str
    sample: Sample
    predicted: int
    maps: np.ndarray
    boxes: tuple[list[int], list[int]]


class _Log:
    """Lines to `BUNDLE/generation.log` (and to stderr, above the progress bars, unless quiet)."""

    def __init__(self, path: Path, echo: bool) -> None:
        self.path, self.echo = path, echo

    def __call__(self, message: str) -> None:
        stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(f"{stamp} {message}\n")
        if self.echo:
            tqdm.write(message, file=sys.stderr)


@contextmanager
def _timed(timings: dict[str, float], stage: str) -> Iterator[None]:
    t = time.perf_counter()
    try:
        yield
    finally:
        timings[stage] = round(timings.get(stage, 0.0) + time.perf_counter() - t, 3)


def _fingerprint(config: GenerationConfig, shard: Shard | None) -> dict[str, Any]:
    cfg = config.to_dict()
    for section, key in SPEED_ONLY_KEYS:
        cfg[section].pop(key, None)
    return {"config": cfg, "shard": str(shard) if shard else None}


def _check_out(out: Path, config: GenerationConfig, shard: Shard | None) -> None:
    """The output folder must be new, empty, or a bundle of these same settings (which is then resumed)."""
    if out.exists() and not out.is_dir():
        raise GenerationError(f"--out {out} is a file, not a folder")
    path = out / WORK / "fingerprint.json"
    if path.is_file():
        old, now = json.loads(path.read_text(encoding="utf-8")), _fingerprint(config, shard)
        if old != now:
            raise GenerationError(f"{out} was generated with other settings ({_first_difference(old, now)}); "
                                  "use a new --out folder or the original config")
    elif out.is_dir() and any(p.name not in (ITEMS, "manifest.json") for p in out.iterdir()):
        raise GenerationError(f"--out {out} is a folder with other files and no study in progress; "
                              "give a new or empty folder")


def _first_difference(old: Any, new: Any, where: str = "") -> str:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new)):
            if old.get(key) != new.get(key):
                return _first_difference(old.get(key), new.get(key), f"{where}.{key}" if where else key)
    return f"{where.removeprefix('config.')}: {old!r} then, {new!r} now"


def _check_labels(dataset: Dataset, clf: Classifier) -> None:
    """Every label must be one of the model's classes; an ImageNet layout must map folders to all of them."""
    n = clf.num_classes
    for s in dataset.samples:
        if s.class_index >= n:
            raise GenerationError(f"label {s.class_index} of {s.source} is outside the model's {n} classes (0..{n - 1})")
    if dataset.layout == "imagenet" and dataset.n_class_folders != n:
        raise GenerationError(
            f"{dataset.root} has {dataset.n_class_folders} class folders but the model has {n} classes, so the "
            "sorted-folder class indices would be wrong: give [data] wnids (all class ids, one per line) or labels")


def _sparsity(settings: SpadeSettings) -> spade.schedules.SparsitySpec:
    value = settings.sparsity
    return spade.schedules.parse(value) if isinstance(value, str) else value


def build_trace(clf: Classifier, image: Image.Image, settings: SpadeSettings, seed: int,
                progress: bool = False) -> spade.Trace:
    """The SPADE trace of one image on the dense model, with the configured solver, sparsity and augmentations."""
    try:
        return spade.prune(clf.model, image, sparsity=_sparsity(settings), solver=settings.solver,
                           n_augmentations=settings.augmentations, batch_size=settings.batch_size, seed=seed,
                           layers=settings.layers, preprocess=clf.preprocess, device=clf.device, progress=progress,
                           block_size=settings.block_size, damping=settings.damping)
    except spade.schedules.UnmatchedKeyError as exc:  # a config error, e.g. a typo in a sparsity table's key
        raise GenerationError(f"config: [spade] sparsity: {exc}") from None


def _model_input(clf: Classifier, image: Image.Image) -> tuple[torch.Tensor, Image.Image]:
    """The normalized 1 x C x H x W input and the display image (the same center crop, as shown to raters)."""
    p = clf.preprocess
    crop = p.crop(p.load(image))
    return p.normalize(crop)[None].to(clf.device), to_pil_image(crop.clamp(0, 1).cpu())


def _screen(clf: Classifier, layer: torch.nn.Module, candidates: list[tuple[Sample, int]], ids: dict[str, str],
            config: GenerationConfig, work: Path, log: _Log, progress: bool) -> tuple[list[Selected], list[dict[str, Any]]]:
    """Walk the candidates in order; keep those whose two Score-CAM regions do not intersect, up to `items`."""
    sc, needed = config.scorecam, config.study.items
    cache = work / "screen"
    cache.mkdir(parents=True, exist_ok=True)
    kept: list[Selected] = []
    entries: list[dict[str, Any]] = []
    bar = tqdm(total=needed, desc="screen (kept)", unit="item", disable=not progress)
    for sample, predicted in candidates:
        if len(kept) >= needed:
            break
        id_ = ids[sample.source]
        record_path, maps_path = cache / f"{id_}.json", cache / f"{id_}.npy"
        if record_path.is_file():
            entry = json.loads(record_path.read_text(encoding="utf-8"))
        else:
            entry = {"source": sample.source, "true_class": sample.class_index, "predicted_class": predicted}
            try:
                image, _ = load_rgb(sample.path)
            except ImageLoadError as exc:  # the file changed since it was predicted
                entry.update(status="dropped", reason=str(exc))
            else:
                x, _ = _model_input(clf, image)
                maps = scorecam_maps(clf.model, layer, x, [sample.class_index, predicted], target=sc.target,
                                     batch_size=sc.batch_size, max_channels=sc.max_channels, progress=progress)
                boxes = [region_from_map(m, sc.threshold, sc.component) for m in maps]
                entry["regions"] = {"true": boxes[0], "predicted": boxes[1]}
                if boxes_intersect(*boxes):
                    entry.update(status="dropped", reason="the Score-CAM regions of the two classes intersect")
                else:
                    entry["status"] = "kept"
                    np.save(maps_path, maps.astype(np.float32))
            write_json_atomic(record_path, entry)
        entries.append(entry)
        if entry["status"] == "kept":
            boxes = (entry["regions"]["true"], entry["regions"]["predicted"])
            kept.append(Selected(len(kept), id_, sample, predicted, np.load(maps_path), boxes))
            bar.update(1)
        else:
            log(f"dropped {sample.source}: {entry['reason']}")
    bar.close()
    return kept, entries


def _heatmap(display: Image.Image, cam: np.ndarray) -> Image.Image:
    rgb = np.asarray(display, dtype=np.float32) / 255.0
    return Image.fromarray(show_cam_on_image(rgb, cam, use_rgb=True))


def _build_item(sel: Selected, clf: Classifier, config: GenerationConfig, method: Method,
                settings: RenderSettings, names: dict[int, str], out: Path, progress: bool) -> dict[str, Any]:
    """Run SPADE and the four visualizations of one item and write it atomically; return its record."""
    timings: dict[str, float] = {}
    seed = config.study.seed
    image, notes = load_rgb(sel.sample.path, clf.preprocess.size)
    classes = [sel.sample.class_index, sel.predicted]
    with _timed(timings, "spade"):
        trace = build_trace(clf, image, config.spade, seed, progress)
        pruned = trace.apply(clf.model)
    with _timed(timings, "visualize_dense"):
        dense = render(method, clf.model, classes, settings, seed)
    with _timed(timings, "visualize_spade"):
        sparse = render(method, pruned, classes, settings, seed)
    del pruned
    with _timed(timings, "write"):
        _, display = _model_input(clf, image)
        paths = item_paths(sel.id)
        boxes = dict(zip(("true", "predicted"), sel.boxes))
        files: dict[str, Image.Image] = {paths["image"]: display}
        for t, cam in zip(("true", "predicted"), sel.maps):
            files[paths["scorecam"][t]] = _heatmap(display, cam)
            files[paths["crops"][t]] = display.crop(tuple(boxes[t]))
        for cond, images in (("dense", dense), ("spade", sparse)):
            for t, im in zip(("true", "predicted"), images):
                files[paths["visualizations"][cond][t]] = im
        entry = {
            "id": sel.id, "image": paths["image"], "source": sel.sample.source,
            "true_class": classes[0], "true_label": clf.label(classes[0], names),
            "predicted_class": classes[1], "predicted_label": clf.label(classes[1], names),
            "regions": {t: list(b) for t, b in boxes.items()},
            "visualizations": paths["visualizations"], "scorecam": paths["scorecam"], "crops": paths["crops"],
        }
        report = trace.report()
        pruned_layers = report[report.target_sparsity > 0]
        record = {
            "entry": entry, "rank": sel.rank, "notes": notes,
            "spade": {"keeps_top1": trace.keeps_top1, "dense_top1": trace.dense_top1, "pruned_top1": trace.pruned_top1,
                      "layers_pruned": int(len(pruned_layers)),
                      "mean_sparsity": float(pruned_layers.sparsity.mean()) if len(pruned_layers) else 0.0,
                      "timings": {k: round(v, 3) for k, v in trace.timings.items()}},
            "timings": timings,
            "built_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        if config.spade.save_traces:
            trace.save(out / WORK / "traces" / f"{sel.id}.pt")
        final = write_item(out, sel.id, files, record)
    # the record inside the item was written before the write's own time was known; add it
    # (an atomic replace: a kill here leaves the item whole, just without that one number)
    record["timings"] = timings
    write_json_atomic(final / ITEM_JSON, record)
    return record


def _study_block(config: GenerationConfig, clf: Classifier, shard: Shard | None, layer: str, provenance: dict[str, Any],
                 candidates: dict[str, Any], selection: list[Selected], runs: list[dict[str, Any]],
                 records: list[dict[str, Any]]) -> dict[str, Any]:
    item_timings = {r["entry"]["id"]: r["timings"] for r in records}
    per_item = [sum(t.values()) for t in item_timings.values()]
    return {
        "generator": "spade-study generate",
        "code_version": provenance["code_version"],
        "package_versions": provenance["package_versions"],
        "config": config.to_dict(),
        "model": {"name": clf.name, "weights": str(clf.weights_path) if clf.weights_path else config.model.weights,
                  "weights_sha256": provenance["weights_sha256"], "num_classes": clf.num_classes,
                  "preprocess": clf.preprocess.to_dict()},
        "device": device_description(clf.device),
        "seeds": {"candidate_order": config.study.seed, "spade": config.study.seed,
                  "visualization": config.study.seed},
        "scorecam_layer": layer,
        "visualization_method": config.visualization.method,
        "shard": {"index": shard.index, "count": shard.count} if shard else None,
        "selection": [s.id for s in selection],
        "candidates": candidates,
        "timings": {"runs": [r["stages"] for r in runs], "items": item_timings,
                    "mean_item_s": round(sum(per_item) / len(per_item), 3) if per_item else None},
        "runs": runs,
        "spade": {r["entry"]["id"]: r["spade"] for r in records},
    }


def generate(config: GenerationConfig, out: str | Path, shard: Shard | None = None,
             device: str | torch.device | None = None, progress: bool = True) -> Path:
    """Build (or resume) the study bundle of `config` in `out`; return `out`."""
    out = Path(out)
    work = out / WORK
    _check_out(out, config, shard)  # before anything is loaded or written
    stages: dict[str, float] = {}
    with _timed(stages, "load"):
        clf = load_classifier(config.model, device)
        d = config.data
        dataset = load_dataset(d.root, d.labels, d.wnids, d.files, d.limit)
        _check_labels(dataset, clf)
        method = get_method(config.visualization.method)
        layer_name, layer = find_target_layer(clf.model, config.scorecam.layer, clf.preprocess.size)
        settings = RenderSettings.from_config(config.visualization, clf.preprocess.mean, clf.preprocess.std, clf.device)
        provenance = {"code_version": code_version(), "package_versions": package_versions(),
                      "weights_sha256": sha256_file(clf.weights_path) if clf.weights_path else None}

    # every input is valid: from here on the bundle folder is written
    work.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(work / "tmp", ignore_errors=True)  # half-written items of a killed run
    fingerprint = work / "fingerprint.json"
    if not fingerprint.is_file():
        write_json_atomic(fingerprint, _fingerprint(config, shard))
    log = _Log(out / LOG_NAME, echo=progress)
    run: dict[str, Any] = {"started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                           "shard": str(shard) if shard else None, "device": device_description(clf.device),
                           "built": [], "skipped": [], "stages": stages}
    runs_path = work / "runs.json"
    runs = json.loads(runs_path.read_text(encoding="utf-8")) if runs_path.is_file() else []
    runs.append(run)
    log(f"run started (shard {shard or 'all'}, {run['device']})")
    with _timed(stages, "predict"):
        predictions = predict(clf, dataset.samples, batch_size=d.batch_size, workers=d.workers,
                              checkpoint=work / "predictions.json", progress=progress)
    for source, reason in sorted(predictions.skipped.items()):
        log(f"skipped {source}: {reason}")
    candidates = misclassified(dataset.samples, predictions, config.study.seed)
    with _timed(stages, "screen"):
        ids = item_ids([s.source for s in dataset.samples])
        selection, screened = _screen(clf, layer, candidates, ids, config, work, log, progress)
    if len(selection) < config.study.items:
        log(f"only {len(selection)} of {config.study.items} items: the dataset has too few misclassified "
            "samples whose two regions do not intersect")
    candidate_log = {
        "images": len(dataset.samples), "predicted": len(predictions.predicted),
        "unreadable": [{"source": s, "reason": r} for s, r in sorted(predictions.skipped.items())],
        "converted": [{"source": s, "notes": n} for s, n in sorted(predictions.notes.items())],
        "misclassified": len(candidates), "tried": len(screened),
        "kept": sum(e["status"] == "kept" for e in screened),
        "dropped": [{"source": e["source"], "reason": e["reason"]} for e in screened if e["status"] == "dropped"],
        "screened": screened,
    }
    mine = [s for s in selection if shard is None or shard.owns(s.rank)]
    order = [s.id for s in mine]

    def save_manifest() -> None:
        records = finished_records(out, order)
        write_json_atomic(runs_path, runs)
        study = _study_block(config, clf, shard, layer_name, provenance, candidate_log, selection, runs, records)
        write_bundle_manifest(out, study, records)

    save_manifest()
    names = dataset.names
    stages["items"] = 0.0
    for sel in tqdm(mine, desc="items", unit="item", disable=not progress):
        if is_finished(out, sel.id):
            run["skipped"].append(sel.id)
            log(f"skip {sel.id} (finished)")
            continue
        with _timed(stages, "items"):  # per item, so that a killed run still records its time
            record = _build_item(sel, clf, config, method, settings, names, out, progress)
            run["built"].append(sel.id)
            save_manifest()
        log(f"built {sel.id} in {sum(record['timings'].values()):.1f}s "
            f"({', '.join(f'{k} {v:.1f}s' for k, v in record['timings'].items())})")
    run["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    save_manifest()
    done = sum(is_finished(out, i) for i in order)
    log(f"run finished: {done} of {len(order)} items in {out / ITEMS}")
    return out
