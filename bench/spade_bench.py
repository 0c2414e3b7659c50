"""Benchmark of the SPADE library: time per stage, peak memory, rel_error per solver, top-1 agreement.

For each (model, number of augmentations) a fresh process runs, so that its peak memory is its own:
  1. `spade.prune` end to end with the sparsegpt solver (the public API; the per-image target);
  2. on the Hessians of that same capture, each solver in turn (side by side, same inputs), each
     pruned model checked for the dense top-1 class.
Results go to a JSON-lines file (one line per configuration and image), so an interrupted run
resumes where it stopped; `--readme` writes the table into the `## spade` section of bench/README.md.

    .venv/bin/python bench/spade_bench.py                       # the recorded CPU configuration
    .venv/bin/python bench/spade_bench.py --device cuda --augmentations 128 1024 --solvers sparsegpt obc magnitude
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_DIR = ROOT.parent / "shared" / "data" / "imagenet-sample"
RESULTS = ROOT / "bench" / "out" / "spade_bench.jsonl"
README = ROOT / "bench" / "README.md"
MODELS = {  # name -> (load_model weights, default schedule)
    "efficientnet_lite0": (None, "default"),
    "resnet50": ("random", "resnet50_tuned"),
}


def _images(n: int) -> list[Path]:
    import csv

    with open(SAMPLE_DIR / "labels.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return [SAMPLE_DIR / r["file"] for r in rows[7::41][:n]]


def run_one(model_name: str, n_aug: int, solvers: list[str], images: int, device: str, threads: int) -> list[dict]:
    """One configuration, all its images, in this process; returns one record per image."""
    import torch

    torch.set_num_threads(threads)
    import spade
    from spade import schedules
    from spade.augment import augmented_batches
    from spade.capture import capture_hessians, execution_order, grouped_weight, weight_groups
    from spade.prune import _flush_denormals, _sync, select_layers
    from spade.solvers import get_solver
    from spade.trace import LayerTrace, Trace

    dev = torch.device(device)
    weights, schedule = MODELS[model_name]
    model, pp = spade.load_model(model_name, weights=weights, device=dev)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    sparsity = schedules.parse(schedule)
    records = []
    for path in _images(images):
        t0 = time.perf_counter()
        trace = spade.prune(model, path, sparsity=sparsity, solver="sparsegpt", n_augmentations=n_aug,
                            preprocess=pp, device=dev, progress=False)
        _sync(dev)
        total = time.perf_counter() - t0
        rec = {"model": model_name, "augmentations": n_aug, "image": path.name, "device": device,
               "threads": threads, "end_to_end_s": total, "stages": trace.timings,
               "keeps_top1": {"sparsegpt (end to end)": trace.keeps_top1}, "solve_s": {}, "mean_rel_error": {}}
        # side by side: every solver on the Hessians of one capture
        modules = select_layers(model)
        picture = pp.load(path).to(dev)
        x0 = pp.normalize(pp.crop(picture))[None]
        with torch.inference_mode(), _flush_denormals():
            with execution_order(modules) as order:
                dense_top1 = int(model(x0).argmax())
            targets = schedules.resolve(sparsity, order, modules)
            active = {n: modules[n] for n in order if targets[n] > 0}
            t = time.perf_counter()
            accs = capture_hessians(model, active, augmented_batches(picture, n_aug, 128 if dev.type == "cuda" else 32,
                                                                     0, pp), dev)
            _sync(dev)
            rec["capture_shared_s"] = time.perf_counter() - t
            for solver in solvers:
                solve = get_solver(solver)
                layers, errors = {}, []
                t = time.perf_counter()
                for name in active:
                    m = modules[name]
                    res = solve(grouped_weight(m.weight.detach().float(), weight_groups(m)), accs[name].H, targets[name])
                    layers[name] = LayerTrace.from_weight(name, res.weight.reshape(m.weight.shape),
                                                          res.mask.reshape(m.weight.shape), targets[name],
                                                          res.rel_error, res.damping)
                    errors.append(res.rel_error)
                _sync(dev)
                rec["solve_s"][solver] = time.perf_counter() - t
                rec["mean_rel_error"][solver] = sum(errors) / len(errors)
                rec["keeps_top1"][solver] = int(Trace(layers).apply(model)(x0).argmax()) == dense_top1
        records.append(rec)
    peak = (torch.cuda.max_memory_allocated(dev) if dev.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    for rec in records:
        rec["peak_memory_mib"] = peak / 2 ** 20
        rec["peak_memory_kind"] = "GPU allocated" if dev.type == "cuda" else "process RSS"
    return records


def _done(results: Path) -> set[tuple]:
    if not results.exists():
        return set()
    keys = set()
    for line in results.read_text().splitlines():
        r = json.loads(line)
        keys.add((r["model"], r["augmentations"], r["device"], tuple(sorted(r["solve_s"]))))
    return keys


def table(results: Path) -> str:
    """Markdown table: one row per (model, augmentations, device), means over images."""
    import pandas as pd

    rows = [json.loads(line) for line in results.read_text().splitlines()]
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["model"], r["augmentations"], r["device"]), []).append(r)
    solvers = ["sparsegpt", "obc", "magnitude"]
    out = []
    for (model, n_aug, device), rs in groups.items():
        def mean(f):
            vals = [f(r) for r in rs]
            vals = [v for v in vals if v is not None]
            return sum(vals) / len(vals) if vals else None

        row = {"model": model, "aug": n_aug, "device": device, "images": len(rs),
               "end to end s": mean(lambda r: r["end_to_end_s"]),
               "augment s": mean(lambda r: r["stages"]["augment"]), "capture s": mean(lambda r: r["stages"]["capture"]),
               "solve s (sparsegpt)": mean(lambda r: r["stages"]["solve"]),
               "peak MiB": max(r["peak_memory_mib"] for r in rs)}
        for s in solvers:
            if any(s in r["solve_s"] for r in rs):
                row[f"{s}: solve s"] = mean(lambda r, s=s: r["solve_s"].get(s))
                row[f"{s}: rel_error"] = mean(lambda r, s=s: r["mean_rel_error"].get(s))
                row[f"{s}: top-1 kept"] = f"{sum(r['keeps_top1'].get(s, False) for r in rs)}/{len(rs)}"
        out.append(row)
    df = pd.DataFrame(out)
    return df.to_markdown(index=False, floatfmt=".3g")


def write_readme(section: str) -> None:
    """Replace (or append) the `## spade` section of bench/README.md, re-reading the file first."""
    text = README.read_text() if README.exists() else "# Benchmarks\n"
    start = text.find("\n## spade\n")
    if start < 0:
        new = text.rstrip("\n") + "\n\n" + section.strip("\n") + "\n"
    else:
        nxt = text.find("\n## ", start + 1)
        new = text[:start + 1] + section.strip("\n") + "\n" + (text[nxt:] if nxt >= 0 else "")
    README.write_text(new)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark configurations (each in a fresh process), then print/record the table."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    p.add_argument("--augmentations", nargs="+", type=int, default=[128, 1024])
    p.add_argument("--solvers", nargs="+", default=["sparsegpt", "magnitude"])
    p.add_argument("--obc-for", nargs="*", default=["efficientnet_lite0:128"],
                   help="MODEL:AUG configurations that also run the (slow) exact OBC solver")
    p.add_argument("--images", type=int, default=3)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--results", type=Path, default=RESULTS)
    p.add_argument("--readme", action="store_true", help="write the table into bench/README.md")
    p.add_argument("--one", help=argparse.SUPPRESS)  # internal: MODEL:AUG, run in this process
    args = p.parse_args(argv)

    if args.one:
        model, n_aug = args.one.split(":")
        recs = run_one(model, int(n_aug), args.solvers, args.images, args.device, args.threads)
        print(json.dumps(recs))
        return 0

    from tqdm import tqdm

    args.results.parent.mkdir(parents=True, exist_ok=True)
    done = _done(args.results)
    configs = []
    for model in args.models:
        for n_aug in args.augmentations:
            solvers = list(args.solvers) + (["obc"] if f"{model}:{n_aug}" in args.obc_for and "obc" not in args.solvers else [])
            configs.append((model, n_aug, solvers))
    for model, n_aug, solvers in tqdm(configs, desc="spade bench", unit="config"):
        if (model, n_aug, args.device, tuple(sorted(solvers))) in done:
            continue  # resume: already measured
        images = args.images if n_aug <= 128 else 1
        cmd = [sys.executable, __file__, "--one", f"{model}:{n_aug}", "--solvers", *solvers, "--images", str(images),
               "--device", args.device, "--threads", str(args.threads)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            print(f"error: {model} with {n_aug} augmentations failed:\n{proc.stderr[-2000:]}", file=sys.stderr)
            return 1
        with open(args.results, "a") as f:
            for rec in json.loads(proc.stdout.strip().splitlines()[-1]):
                f.write(json.dumps(rec) + "\n")
    md = table(args.results)
    print(md)
    if args.readme:
        cpu = platform.processor() or platform.machine()
        write_readme(f"## spade\n\n(machine {cpu}, {os.cpu_count()} cores, {date.today()})\n\n{md}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
