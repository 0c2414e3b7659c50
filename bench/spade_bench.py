"""Benchmark of the SPADE library: time per stage, peak memory, rel_error per solver, top-1 agreement.

For each (model, number of augmentations) a fresh process runs, so that its peak memory is its own:
  1. with at most 128 augmentations, `spade.prune` end to end with the sparsegpt solver (the public
     API, timed as a user sees it);
  2. one capture (augment, then one pass over all layers), then each solver in turn on the same
     Hessians (side by side), each pruned model checked for the dense top-1 class.
Results go to a JSON-lines file (one line per configuration and image), so an interrupted run
resumes where it stopped; `--readme` writes the table into the `## spade` section of bench/README.md.

    .venv/bin/python bench/spade_bench.py                 # the recorded CPU configurations
    .venv/bin/python bench/spade_bench.py --device cuda   # on a GPU machine: the GPU configurations

A configuration is MODEL:AUGMENTATIONS:THREADS:SOLVER+SOLVER (THREADS 0: torch's default).
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
GPU_CONFIGS = [  # issue 14's GPU targets: ResNet50 at 1024 augmentations <= 5 s, OBC <= 2 min
    "resnet50:1024:0:sparsegpt+magnitude",
    "resnet50:1024:0:obc",
    "efficientnet_lite0:1024:0:sparsegpt+obc+magnitude",
]
DEFAULT_CONFIGS = [
    "efficientnet_lite0:128:1:sparsegpt+obc+magnitude",
    "efficientnet_lite0:128:2:sparsegpt+magnitude",
    "efficientnet_lite0:1024:1:sparsegpt+magnitude",
    "resnet50:128:1:sparsegpt+magnitude",
    "resnet50:1024:1:sparsegpt+magnitude",
]
MODELS = {  # name -> (load_model weights, default schedule)
    "efficientnet_lite0": (None, "default"),
    "resnet50": ("random", "resnet50_tuned"),
}


def _images(n: int) -> list[Path]:
    import csv

    with open(SAMPLE_DIR / "labels.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return [SAMPLE_DIR / r["file"] for r in rows[7::41][:n]]


def run_one(model_name: str, n_aug: int, solvers: list[str], images: int, device: str, threads: int,
            end_to_end: bool) -> list[dict]:
    """One configuration, all its images, in this process; returns one record per image."""
    import torch

    if threads > 0:
        torch.set_num_threads(threads)
    import spade
    from spade import schedules
    from spade.augment import augmented_batches
    from spade.capture import capture_hessians, execution_order, grouped_weight, weight_groups
    from spade.prune import _flush_denormals, _sync, default_batch_size, select_layers
    from spade.solvers import get_solver
    from spade.trace import LayerTrace, Trace

    dev = torch.device(device)
    weights, schedule = MODELS[model_name]
    model, pp = spade.load_model(model_name, weights=weights, device=dev)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    sparsity = schedules.parse(schedule)
    batch_size = default_batch_size(dev)
    records = []
    for path in _images(images):
        rec = {"model": model_name, "augmentations": n_aug, "image": path.name, "device": device,
               "threads": threads, "solve_s": {}, "mean_rel_error": {}, "keeps_top1": {}}
        if end_to_end:  # the public API, timed as a user sees it
            t0 = time.perf_counter()
            trace = spade.prune(model, path, sparsity=sparsity, solver="sparsegpt", n_augmentations=n_aug,
                                preprocess=pp, device=dev, progress=False)
            _sync(dev)
            rec["prune_s"] = time.perf_counter() - t0
            rec["prune_stages"] = trace.timings
            rec["keeps_top1"]["prune()"] = trace.keeps_top1
        # one capture, then every solver on the same Hessians (side by side)
        modules = select_layers(model)
        with torch.inference_mode(), _flush_denormals():
            t = time.perf_counter()
            picture = pp.load(path).to(dev)
            x0 = pp.normalize(pp.crop(picture))[None]
            with execution_order(modules) as order:
                dense_top1 = int(model(x0).argmax())
            targets = schedules.resolve(sparsity, order, modules)
            active = {n: modules[n] for n in order if targets[n] > 0}
            _sync(dev)
            rec["probe_s"] = time.perf_counter() - t
            t = time.perf_counter()
            batches = list(augmented_batches(picture, n_aug, batch_size, 0, pp))
            _sync(dev)
            rec["augment_s"] = time.perf_counter() - t
            t = time.perf_counter()
            accs = capture_hessians(model, active, iter(batches), dev)
            _sync(dev)
            rec["capture_s"] = time.perf_counter() - t
            del batches
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
        print(f"{model_name} {n_aug} {path.name}: capture {rec['capture_s']:.1f} s, solve "
              + ", ".join(f"{k} {v:.1f} s" for k, v in rec["solve_s"].items()), file=sys.stderr, flush=True)
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
        keys.add((r["model"], r["augmentations"], r["device"], r["threads"], tuple(sorted(r["solve_s"]))))
    return keys


def table(results: Path) -> str:
    """Markdown table: one row per (model, augmentations, device, threads), means over images."""
    import pandas as pd

    rows = [json.loads(line) for line in results.read_text().splitlines()]
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["model"], r["augmentations"], r["device"], r["threads"]), []).append(r)
    out = []
    for (model, n_aug, device, threads), rs in groups.items():
        def mean(f):
            vals = [v for v in (f(r) for r in rs) if v is not None]
            return sum(vals) / len(vals) if vals else None

        row = {"model": model, "aug": n_aug, "device": f"{device} ({threads} thr)", "images": len(rs),
               "augment s": mean(lambda r: r["augment_s"]), "capture s": mean(lambda r: r["capture_s"])}
        for s in ("sparsegpt", "obc", "magnitude"):
            if any(s in r["solve_s"] for r in rs):
                row[f"solve s: {s}"] = mean(lambda r, s=s: r["solve_s"].get(s))
        row["sparsegpt total s"] = mean(lambda r: r["probe_s"] + r["augment_s"] + r["capture_s"] + r["solve_s"]["sparsegpt"]
                                        if "sparsegpt" in r["solve_s"] else None)
        row["prune() s"] = mean(lambda r: r.get("prune_s"))
        row["peak MiB"] = max(r["peak_memory_mib"] for r in rs)
        for s in ("sparsegpt", "obc", "magnitude"):
            if any(s in r["mean_rel_error"] for r in rs):
                row[f"rel_error: {s}"] = mean(lambda r, s=s: r["mean_rel_error"].get(s))
        for s in ("sparsegpt", "obc", "magnitude"):
            if any(s in r["keeps_top1"] for r in rs):
                row[f"top-1 kept: {s}"] = f"{sum(bool(r['keeps_top1'].get(s)) for r in rs)}/{len(rs)}"
        out.append(row)
    return pd.DataFrame(out).to_markdown(index=False, floatfmt=".3g")


def header(args: argparse.Namespace) -> str:
    """Machine, date and command of the run, for bench/README.md."""
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"- Machine: {os.cpu_count()} CPU cores ({cpu}, {platform.machine()}), device `{args.device}`.\n"
            f"- Date: {date.today()}.\n"
            f"- Command: `.venv/bin/python bench/spade_bench.py --configs {' '.join(args.configs)} --readme`")


BEGIN, END = "<!-- spade_bench: begin -->", "<!-- spade_bench: end -->"


def write_readme(block: str) -> None:
    """Replace the text between the spade_bench markers of bench/README.md (re-read first), else append it."""
    text = README.read_text() if README.exists() else "# Benchmarks\n"
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < 0:
        new = text.rstrip("\n") + f"\n\n{BEGIN}\n" + block.strip("\n") + f"\n{END}\n"
    else:
        new = text[:start + len(BEGIN)] + "\n" + block.strip("\n") + "\n" + text[end:]
    README.write_text(new)


def parse_config(config: str) -> tuple[str, int, int, list[str]]:
    """MODEL:AUGMENTATIONS:THREADS:SOLVER+SOLVER -> its parts; ValueError with a one-line reason."""
    from spade.solvers import SOLVERS

    parts = config.split(":")
    if len(parts) != 4 or not parts[1].isdigit() or not parts[2].isdigit() or int(parts[1]) < 1:
        raise ValueError(f"bad configuration {config!r} (expected MODEL:AUGMENTATIONS:THREADS:SOLVER+SOLVER)")
    if parts[0] not in MODELS:
        raise ValueError(f"unknown model {parts[0]!r} in {config!r} (choose from {', '.join(MODELS)})")
    solvers = parts[3].split("+")
    unknown = [s for s in solvers if s not in SOLVERS]
    if unknown:
        raise ValueError(f"unknown solver {unknown[0]!r} in {config!r} (choose from {', '.join(SOLVERS)})")
    return parts[0], int(parts[1]), int(parts[2]), solvers


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark configurations (each in a fresh process), then print/record the table."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", nargs="+", default=None,
                   help="MODEL:AUGMENTATIONS:THREADS:SOLVER+SOLVER... (default: the recorded CPU set, or the GPU set "
                        "with --device cuda)")
    p.add_argument("--images", type=int, default=3, help="images per configuration with at most 128 augmentations")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--results", type=Path, default=RESULTS)
    p.add_argument("--readme", action="store_true", help="write the table into the `## spade` section of bench/README.md")
    p.add_argument("--one", help=argparse.SUPPRESS)  # internal: one configuration, in this process
    args = p.parse_args(argv)
    if args.configs is None:
        args.configs = GPU_CONFIGS if args.device.startswith("cuda") else DEFAULT_CONFIGS
    try:
        for config in args.configs:
            parse_config(config)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            print(f"error: --device {args.device} but torch sees no CUDA device", file=sys.stderr)
            return 2

    if args.one:
        model, n_aug, threads, solvers = args.one.split(":")
        recs = run_one(model, int(n_aug), solvers.split("+"), args.images, args.device, int(threads),
                       end_to_end=int(n_aug) <= 128)
        print(json.dumps(recs))
        return 0

    from tqdm import tqdm

    args.results.parent.mkdir(parents=True, exist_ok=True)
    done = _done(args.results)
    for config in tqdm(args.configs, desc="spade bench", unit="config"):
        model, n_aug, threads, solvers = config.split(":")
        if (model, int(n_aug), args.device, int(threads), tuple(sorted(solvers.split("+")))) in done:
            continue  # resume: already measured
        images = args.images if int(n_aug) <= 128 else 1
        cmd = [sys.executable, __file__, "--one", config, "--images", str(images), "--device", args.device]
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
        if proc.returncode != 0:
            print(f"error: configuration {config} failed (exit {proc.returncode})", file=sys.stderr)
            return 1
        with open(args.results, "a") as f:
            for rec in json.loads(proc.stdout.strip().splitlines()[-1]):
                f.write(json.dumps(rec) + "\n")
    md = table(args.results)
    print(md)
    if args.readme:
        write_readme(f"{header(args)}\n\n{md}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
