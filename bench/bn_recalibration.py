"""Top-1 agreement of SPADE-pruned models with the dense model, with and without BatchNorm recalibration.

The paper reports 96.5% agreement on ResNet50/ImageNet "once batch normalizations are re-calibrated
post-pruning". For each of `--images` sample images this builds the trace (`spade.prune`), applies it,
and compares the pruned model's top-1 on the image with the dense model's top-1:
  - as pruned (the BatchNorm statistics of the dense model);
  - after `spade.recalibrate.recalibrate_batchnorm` on `--calibration` generic sample images (never
    the traced image nor its augmentations; the calibration images are disjoint from the test images).
A control row recalibrates the *dense* model on the same generic images: how much recalibration alone moves.
Each image's result is one line of a JSON-lines file, so an interrupted run resumes where it stopped.

    .venv/bin/python bench/bn_recalibration.py                       # EfficientNet-Lite0, 50 images, 64 augmentations
    .venv/bin/python bench/bn_recalibration.py --sparsity paper --augmentations 64
    for i in 0 1 2 3; do .venv/bin/python bench/bn_recalibration.py --part $i/4 & done; wait  # 4 processes
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_DIR = ROOT.parent / "shared" / "data" / "imagenet-sample"
RESULTS = ROOT / "bench" / "out" / "bn_recalibration.jsonl"


def _rows() -> list[dict[str, str]]:
    with open(SAMPLE_DIR / "labels.csv", newline="") as f:
        return list(csv.DictReader(f))


def split(n_images: int, n_calibration: int) -> tuple[list[dict[str, str]], list[Path]]:
    """Test images (every 10th sample row) and disjoint calibration images (the others, evenly spread)."""
    rows = _rows()
    tests = rows[3::10][:n_images]
    taken = {r["file"] for r in tests}
    others = [r for r in rows if r["file"] not in taken]
    step = max(1, len(others) // max(n_calibration, 1))
    return tests, [SAMPLE_DIR / r["file"] for r in others[::step][:n_calibration]]


def main(argv: list[str]) -> int:
    """Run the benchmark; print the summary table."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="efficientnet_lite0")
    p.add_argument("--sparsity", default="default", help="as `spade-study prune --sparsity` (default, paper, ...)")
    p.add_argument("--solver", default="sparsegpt", choices=["sparsegpt", "obc", "magnitude"])
    p.add_argument("--images", type=int, default=50)
    p.add_argument("--augmentations", type=int, default=64)
    p.add_argument("--calibration", type=int, default=64, help="generic images for BatchNorm recalibration")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--part", default="0/1", help="I/N: start at the I-th of N equal parts of the image list "
                   "(N processes on the same --out share the work; each skips the images already done)")
    args = p.parse_args(argv)
    try:
        part, parts = (int(v) for v in args.part.split("/"))
        assert 0 <= part < parts
    except (ValueError, AssertionError):
        print(f"error: --part must be I/N with 0 <= I < N, got {args.part!r}", file=sys.stderr)
        return 2
    if min(args.images, args.augmentations, args.calibration, args.threads) < 1:
        print("error: --images, --augmentations, --calibration and --threads must be at least 1", file=sys.stderr)
        return 2

    import torch
    from tqdm.auto import tqdm

    torch.set_num_threads(args.threads)
    import spade
    from spade import schedules
    from spade.recalibrate import calibration_set, recalibrate_batchnorm

    try:
        sparsity = schedules.parse(args.sparsity)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    model, pp = spade.load_model(args.model)
    tests, calib_paths = split(args.images, args.calibration)
    calib = calibration_set(calib_paths, pp)
    batches = lambda: iter(calib.split(32))  # noqa: E731
    config = {"model": args.model, "sparsity": args.sparsity, "solver": args.solver,
              "augmentations": args.augmentations, "calibration": len(calib_paths)}
    def finished() -> dict[str, dict]:
        if not args.out.exists():
            return {}
        recs = (json.loads(line) for line in args.out.read_text().splitlines() if line.strip())
        return {r["image"]: r for r in recs if r["config"] == config}

    args.out.parent.mkdir(parents=True, exist_ok=True)

    dense_recal = recalibrate_batchnorm(model, batches())
    t_start = time.perf_counter()
    with open(args.out, "a") as out:
        start = part * len(tests) // parts
        for row in tqdm(tests[start:] + tests[:start], desc="images", unit="image"):
            if row["file"] in finished():  # re-read: another process may have done it meanwhile
                continue
            path = SAMPLE_DIR / row["file"]
            t = time.perf_counter()
            trace = spade.prune(model, path, sparsity=sparsity, solver=args.solver, preprocess=pp,
                                n_augmentations=args.augmentations, progress=False)
            elapsed = time.perf_counter() - t
            x = pp(path)
            pruned = trace.apply(model).eval()
            with torch.no_grad():
                recal_top1 = int(recalibrate_batchnorm(pruned, batches())(x).argmax())
                dense_recal_top1 = int(dense_recal(x).argmax())
            rep = trace.report()
            numel = sum(l.numel for l in trace.layers.values())
            removed = sum(l.numel * l.sparsity for l in trace.layers.values())
            rec = {"config": config, "image": row["file"], "label": int(row["class_index"]),
                   "dense_top1": trace.dense_top1, "pruned_top1": trace.pruned_top1, "recal_top1": recal_top1,
                   "dense_recal_top1": dense_recal_top1, "removed_fraction": removed / numel,
                   "mean_rel_error": float(rep.rel_error.mean()), "prune_s": elapsed,
                   "load": os.getloadavg()[0]}
            out.write(json.dumps(rec) + "\n")  # one short line per write: appends of two processes do not mix
            out.flush()
    done = finished()
    missing = [r["file"] for r in tests if r["file"] not in done]
    if missing:
        print(f"{len(missing)} image(s) still being measured by another process: run again to summarize")
        return 0
    recs = [done[r["file"]] for r in tests]
    n = len(recs)
    agree = sum(r["pruned_top1"] == r["dense_top1"] for r in recs)
    agree_recal = sum(r["recal_top1"] == r["dense_top1"] for r in recs)
    control = sum(r["dense_recal_top1"] == r["dense_top1"] for r in recs)
    acc = {k: sum(r[k] == r["label"] for r in recs) for k in ("dense_top1", "pruned_top1", "recal_top1")}
    removed = sum(r["removed_fraction"] for r in recs) / n
    print(f"{args.model}, sparsity {args.sparsity} ({removed:.1%} of the prunable weights removed), solver "
          f"{args.solver}, {args.augmentations} augmentations, {len(calib_paths)} calibration images, {n} images, "
          f"{time.perf_counter() - t_start:.0f} s this run")
    print("| model | top-1 agreement with the dense model | label accuracy |")
    print("|---|---:|---:|")
    print(f"| dense | - | {acc['dense_top1']}/{n} |")
    print(f"| pruned, no recalibration | {agree}/{n} ({agree / n:.0%}) | {acc['pruned_top1']}/{n} |")
    print(f"| pruned, BatchNorm recalibrated | {agree_recal}/{n} ({agree_recal / n:.0%}) | {acc['recal_top1']}/{n} |")
    print(f"| dense, BatchNorm recalibrated (control) | {control}/{n} ({control / n:.0%}) | - |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
