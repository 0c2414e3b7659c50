"""`spade-study prune`: build the SPADE trace of one image and print its report and the time of each stage."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

USAGE_ERROR = 2


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `spade-study prune`."""
    p = argparse.ArgumentParser(prog="spade-study prune", description=__doc__)
    p.add_argument("--model", required=True, help="efficientnet_lite0, a torchvision classifier (resnet50, ...) or timm:NAME")
    p.add_argument("--weights", help="state-dict file (default: the packaged or cached weights; `random` for none)")
    p.add_argument("--image", required=True, type=Path, help="the image to build the trace of")
    p.add_argument("--out", required=True, type=Path, help="where to write the trace (.pt)")
    p.add_argument("--solver", default="sparsegpt", choices=["sparsegpt", "obc", "magnitude"])
    p.add_argument("--sparsity", default="default",
                   help="a number in [0, 1], linear(START,END), resnet50_tuned, paper (linear 0 -> 0.99) or default (linear by depth to 0.8, first layer dense, depthwise at most 0.5)")
    p.add_argument("--augmentations", type=int, default=1024, help="number of augmented samples (first: the image itself)")
    p.add_argument("--batch-size", type=int, default=None, help="samples per forward pass")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: cuda when available)")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for torch (default: torch's choice); on a machine shared with other jobs, 1 is "
                        "often fastest")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def _error(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return USAGE_ERROR


def main(argv: list[str]) -> int:
    """Entry point of `spade-study prune`."""
    args = build_parser().parse_args(argv)
    # imported here so that `--help` and argument errors stay fast
    import torch
    from PIL import Image, UnidentifiedImageError

    from . import schedules
    from .models import UnknownModelError, load_model
    from .prune import default_device, prune

    if args.threads is not None:
        if args.threads < 1:
            return _error(f"--threads must be at least 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    if args.augmentations < 1:
        return _error(f"--augmentations must be at least 1, got {args.augmentations}")
    try:
        sparsity = schedules.parse(args.sparsity)
    except ValueError as exc:
        return _error(str(exc))
    try:
        device = torch.device(args.device) if args.device else default_device()
        if device.type == "cuda" and not torch.cuda.is_available():
            return _error(f"device {args.device} requested but CUDA is not available")
    except RuntimeError as exc:
        return _error(f"bad device {args.device!r}: {exc}")

    stages: dict[str, float] = {}
    t = time.perf_counter()
    try:
        model, preprocess = load_model(args.model, args.weights, device=device)
    except UnknownModelError as exc:
        return _error(str(exc))
    except FileNotFoundError as exc:
        return _error(str(exc))
    except ValueError as exc:
        return _error(str(exc))
    stages["load"] = time.perf_counter() - t
    try:
        with Image.open(args.image) as im:
            image = im.convert("RGB")
    except FileNotFoundError:
        return _error(f"image not found: {args.image}")
    except (UnidentifiedImageError, OSError) as exc:
        return _error(f"cannot read image {args.image}: {exc.__class__.__name__}")

    try:
        trace = prune(model, image, sparsity=sparsity, solver=args.solver, n_augmentations=args.augmentations,
                      batch_size=args.batch_size, seed=args.seed, preprocess=preprocess, device=device,
                      progress=not args.quiet)
    except ValueError as exc:
        return _error(str(exc))
    stages.update(trace.timings)
    trace.settings["model_name"] = args.model
    trace.settings["weights"] = args.weights
    trace.settings["image"] = str(args.image)
    t = time.perf_counter()
    try:
        trace.save(args.out)
    except OSError as exc:
        return _error(f"cannot write {args.out}: {exc.strerror or exc}")
    stages["save"] = time.perf_counter() - t

    import pandas as pd

    with pd.option_context("display.max_rows", None, "display.width", 200):
        print(trace.report().to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print()
    print(f"top-1: dense {trace.dense_top1}, pruned {trace.pruned_top1} "
          f"({'kept' if trace.keeps_top1 else 'changed'})")
    print("time: " + ", ".join(f"{k} {v:.2f} s" for k, v in stages.items()) + f"; total {sum(stages.values()):.2f} s")
    print(f"trace written to {args.out}")
    return 0
