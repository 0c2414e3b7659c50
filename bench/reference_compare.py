"""Side by side: the reference SPADE (`FOBC_core` of IST-DASLab/SPADE's notebook) against `spade.prune`.

The reference has no license, so it is never copied into this project: pass a local checkout
(`git clone https://github.com/IST-DASLab/SPADE`) with --reference. Its `FOBC_core` is loaded at
run time from the notebook's cells, with the `.cuda()` calls removed so that it runs on the CPU.

For every model (torchvision ResNets with seeded random weights) and torch thread count, in ONE
process and interleaved (reference, then ours, same image, same per-layer targets):
  - the whole call is timed (wall and CPU seconds, the reference's DataLoader workers included);
  - each pruned layer is scored on a common held-out Hessian (the dense model's, from other
    augmentations): rel_error = ||(W' - W) X||^2 / ||W X||^2, averaged over the pruned layers.

    .venv/bin/python bench/reference_compare.py --reference /tmp/spade-ref --readme
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import os
import re
import sys
import time
import types
import warnings
from datetime import date
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
SAMPLE_DIR = ROOT.parent / "shared" / "data" / "imagenet-sample"
RESULTS = ROOT / "bench" / "out" / "reference_compare.jsonl"
README = ROOT / "bench" / "README.md"
BEGIN, END = "<!-- reference_compare: begin -->", "<!-- reference_compare: end -->"
HELD_OUT_SEED = 10_000


class ReferenceError(ValueError):
    """The --reference folder is not a usable checkout of IST-DASLab/SPADE."""


def load_fobc_core(reference: Path) -> Callable[..., Any]:
    """`FOBC_core` of the reference notebook, executed at run time with `.cuda()` calls removed."""
    notebook = reference / "sample_notebook.ipynb"
    sparsegpt = reference / "src" / "sparseGPT.py"
    if not notebook.is_file() or not sparsegpt.is_file():
        raise ReferenceError(f"{reference} is not a checkout of IST-DASLab/SPADE "
                             "(sample_notebook.ipynb and src/sparseGPT.py expected)")
    try:
        cells = ["".join(c["source"]) for c in json.loads(notebook.read_text())["cells"] if c["cell_type"] == "code"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ReferenceError(f"cannot read {notebook}: {exc}") from None
    wanted = [c for c in cells if "def FOBC_core" in c]
    data = [c for c in cells if "class SingleImageDataset" in c]
    if not wanted or not data:
        raise ReferenceError(f"{notebook} has no cell defining FOBC_core and SingleImageDataset")
    stubbed = False
    if "transformers" not in sys.modules:
        try:
            import transformers  # noqa: F401  (sparseGPT.py only needs its Conv1D class for isinstance)
        except ModuleNotFoundError:
            stub = types.ModuleType("transformers")
            stub.Conv1D = type("Conv1D", (), {})
            sys.modules["transformers"] = stub
            stubbed = True
    import numpy as np
    import torch
    import torchvision.transforms as transforms
    from torch import nn
    from torch.utils.data import DataLoader, Dataset

    namespace: dict[str, Any] = {"__name__": "spade_reference"}
    try:
        exec(compile(_cpu_only(sparsegpt.read_text()), str(sparsegpt), "exec"), namespace)
    finally:
        if stubbed:  # the stub must not stand in for transformers anywhere else
            del sys.modules["transformers"]
    namespace.update(torch=torch, nn=nn, np=np, transforms=transforms, DataLoader=DataLoader, Dataset=Dataset)
    for cell in data + wanted:
        exec(compile(_cpu_only(cell), f"{notebook}:cell", "exec"), namespace)
    return namespace["FOBC_core"], namespace["SingleImageDataset"]


def _cpu_only(source: str) -> str:
    """The source with `.cuda()` calls removed (the reference moves each batch to the GPU)."""
    return re.sub(r"\.cuda\(\)", "", source)


def _model(name: str, seed: int):
    import torch
    import torchvision

    torch.manual_seed(seed)
    return torchvision.models.get_model(name, weights=None).eval()


def _targets(model, sparsity) -> dict[str, float]:
    """The project's default schedule for `model`, resolved once: both sides get the same dict."""
    import torch

    from spade import schedules
    from spade.capture import execution_order
    from spade.prune import select_layers

    modules = select_layers(model)
    with execution_order(modules) as order, torch.inference_mode():
        model(torch.zeros(1, 3, 224, 224))
    return schedules.resolve(sparsity, order, modules)


def _held_out(model, image: Path, targets: dict[str, float], n: int) -> dict[str, Any]:
    """Dense-model Hessians of the pruned layers, from augmentations neither side trained on."""
    import torch

    from spade.augment import augmented_batches
    from spade.capture import capture_hessians
    from spade.preprocess import Preprocess
    from spade.prune import select_layers

    pp = Preprocess()
    modules = {k: m for k, m in select_layers(model).items() if targets.get(k, 0) > 0}
    with torch.inference_mode():
        accs = capture_hessians(model, modules, augmented_batches(pp.load(image), n, 32, HELD_OUT_SEED, pp),
                                torch.device("cpu"))
    return {k: a.H for k, a in accs.items()}


def _rel_error(dense, weights: dict[str, Any], held_out: dict[str, Any]) -> float:
    """Mean over the pruned layers of the relative output error on the held-out Hessians."""
    from spade.capture import grouped_weight, weight_groups
    from spade.solvers import relative_error

    modules = dict(dense.named_modules())
    errors = []
    for name, H in held_out.items():
        g = weight_groups(modules[name])
        errors.append(relative_error(grouped_weight(modules[name].weight.detach().float(), g),
                                     grouped_weight(weights[name].float(), g), H))
    return sum(errors) / len(errors)


def _timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    t, c = time.perf_counter(), os.times()
    out = fn()
    c2 = os.times()
    cpu = (c2.user - c.user) + (c2.system - c.system) + (c2.children_user - c.children_user) + (
        c2.children_system - c.children_system)
    return out, time.perf_counter() - t, cpu


def run_reference(fobc_core, dataset_cls, dense, image: Path, targets: dict[str, float], n: int) -> dict[str, Any]:
    """One whole `FOBC_core` call (its own augmentations, DataLoader, hooks and solver) on a copy of `dense`."""
    from PIL import Image

    model = copy.deepcopy(dense)
    with Image.open(image) as im:
        picture = im.convert("RGB")
    pruned = {k for k, v in targets.items() if v > 0}
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pin_memory without a GPU
        fobc_core(dataset_cls(picture, n, normalize=True), model, lambda k: k in pruned,
                  sparsity_function=lambda k: [targets[k]])
    return {k: m.weight.detach().clone() for k, m in model.named_modules() if k in pruned}


def run_ours(dense, image: Path, targets: dict[str, float], n: int) -> dict[str, Any]:
    """One whole `spade.prune` call on `dense` (left unchanged); returns the pruned weights."""
    import spade

    trace = spade.prune(dense, image, sparsity=targets, n_augmentations=n, progress=False)
    return {k: layer.weight() for k, layer in trace.layers.items() if targets.get(k, 0) > 0}


def compare(reference: Path, models: list[str], threads: list[int], n: int, image: Path, seed: int,
            results: Path) -> list[dict[str, Any]]:
    """Run every (model, threads) configuration side by side; append one JSON line each to `results`."""
    import torch

    from spade import schedules

    fobc_core, dataset_cls = load_fobc_core(reference)
    records = []
    for name in models:
        dense = _model(name, seed)
        targets = _targets(dense, schedules.DEFAULT)
        torch.set_num_threads(2)
        held_out = _held_out(dense, image, targets, n)
        for t in threads:
            torch.set_num_threads(t)
            load = os.getloadavg()
            ref, ref_wall, ref_cpu = _timed(lambda: run_reference(fobc_core, dataset_cls, dense, image, targets, n))
            ours, our_wall, our_cpu = _timed(lambda: run_ours(dense, image, targets, n))
            load2 = os.getloadavg()
            rec = {"model": name, "threads": t, "augmentations": n, "image": image.name, "date": str(date.today()),
                   "loadavg_1min": [load[0], load2[0]], "cpus": os.cpu_count(),
                   "reference_wall_s": ref_wall, "reference_cpu_s": ref_cpu,
                   "ours_wall_s": our_wall, "ours_cpu_s": our_cpu,
                   "reference_rel_error": _rel_error(dense, ref, held_out),
                   "ours_rel_error": _rel_error(dense, ours, held_out), "layers": len(held_out)}
            records.append(rec)
            print(json.dumps(rec), file=sys.stderr, flush=True)
            results.parent.mkdir(parents=True, exist_ok=True)
            with open(results, "a") as f:
                f.write(json.dumps(rec) + "\n")
    return records


def table(records: list[dict[str, Any]]) -> str:
    """Markdown table of one run: times, ratios and held-out errors."""
    lines = ["| model | torch threads | load avg (1 min, before/after) | reference wall s (CPU s) | `spade.prune` wall s (CPU s) "
             "| speed-up wall (CPU) | rel_error reference / ours |",
             "|---|---:|---|---:|---:|---:|---:|"]
    for r in records:
        lines.append(
            f"| {r['model']} | {r['threads']} | {r['loadavg_1min'][0]:.1f} / {r['loadavg_1min'][1]:.1f} "
            f"| {r['reference_wall_s']:.1f} ({r['reference_cpu_s']:.1f}) | {r['ours_wall_s']:.1f} ({r['ours_cpu_s']:.1f}) "
            f"| {r['reference_wall_s'] / r['ours_wall_s']:.2f}x ({r['reference_cpu_s'] / r['ours_cpu_s']:.2f}x) "
            f"| {r['reference_rel_error']:.4f} / {r['ours_rel_error']:.4f} "
            f"({r['reference_rel_error'] / r['ours_rel_error']:.2f}x lower) |")
    return "\n".join(lines)


def write_readme(block: str) -> None:
    """Replace the text between the reference_compare markers of bench/README.md (re-read first)."""
    text = README.read_text()
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < 0:
        raise SystemExit(f"error: {README} has no {BEGIN} ... {END} block")
    README.write_text(text[:start + len(BEGIN)] + "\n" + block.strip("\n") + "\n" + text[end:])


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run the comparison, print (and optionally record) the table."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reference", type=Path, required=True, help="local checkout of IST-DASLab/SPADE (never vendored)")
    p.add_argument("--models", nargs="+", default=["resnet18", "resnet50"])
    p.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    p.add_argument("--augmentations", type=int, default=128)
    p.add_argument("--image", type=Path, default=SAMPLE_DIR / "n01440764_tench.JPEG")
    p.add_argument("--seed", type=int, default=0, help="seed of the random model weights")
    p.add_argument("--results", type=Path, default=RESULTS)
    p.add_argument("--readme", action="store_true", help="write the table into bench/README.md")
    args = p.parse_args(argv)
    if not args.image.is_file():
        print(f"error: image not found: {args.image}", file=sys.stderr)
        return 2
    if args.augmentations < 1 or any(t < 1 for t in args.threads):
        print("error: --augmentations and --threads must be >= 1", file=sys.stderr)
        return 2
    try:
        load_fobc_core(args.reference)
        records = compare(args.reference, args.models, args.threads, args.augmentations, args.image, args.seed,
                          args.results)
    except ReferenceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    md = table(records)
    print(md)
    if args.readme:
        cmd = " ".join(["bench/reference_compare.py"] + (argv if argv is not None else sys.argv[1:]))
        write_readme(f"Command: `.venv/bin/python {cmd}`, {date.today()}, {os.cpu_count()} CPUs "
                     f"(shared with other engineers' jobs).\n\n{md}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
