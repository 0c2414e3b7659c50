"""Measured effect of the library's deviations from the reference SPADE code (docs/spade.md, issue 14).

Sections (EfficientNet-Lite0, real weights, sample images, torch at one thread):
  dead      D1: weights on dead inputs of `_fc` at 95% sparsity, kept by the mask-only handling (the old
            code: a unit diagonal on dead inputs, their weights left in place) and by the fix; rel_error of
            both on the capture Hessian and on a held-out Hessian (other augmentations of the same image).
  schedules D3: fraction of the prunable weights each schedule removes (Lite0, ResNet18, ResNet50).
  augment   D5/D6: the trace built from four augmentation variants (ours; no random erasing; crops from
            the original photograph; both, i.e. the reference notebook's), each pruned model scored by
            top-1 agreement with the dense model on the image and on held-out augmentations of both kinds.

    .venv/bin/python bench/spade_deviations.py dead schedules augment --images 5 --augmentations 32
"""
from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_DIR = ROOT.parent / "shared" / "data" / "imagenet-sample"


def _images(n: int, offset: int = 5, step: int = 37) -> list[Path]:
    with open(SAMPLE_DIR / "labels.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return [SAMPLE_DIR / r["file"] for r in rows[offset::step][:n]]


def dead(n_images: int, n_aug: int) -> None:
    """D1 on `_fc`: kept weights on dead inputs and rel_error, mask-only handling vs the fix."""
    import torch

    import spade
    from spade.augment import augmented_batches
    from spade.capture import capture_hessians, grouped_weight
    from spade.solvers import get_solver, relative_error
    from spade.solvers.damping import prepare_hessian

    model, pp = spade.load_model("efficientnet_lite0")
    fc = model._fc
    W = grouped_weight(fc.weight.detach(), 1)
    print(f"D1: _fc ({W.shape[1]}x{W.shape[2]}), 95% sparsity, {n_aug} augmentations (held-out: {n_aug} others)")
    print("| image | dead inputs | solver | weights on dead inputs kept: old / fix | rel_error old / fix "
          "| held-out rel_error old / fix |")
    print("|---|---:|---|---:|---:|---:|")
    for path in _images(n_images):
        picture = pp.load(path)
        H = capture_hessians(model, {"_fc": fc}, augmented_batches(picture, n_aug, 32, 0, pp),
                             torch.device("cpu"))["_fc"].H
        H2 = capture_hessians(model, {"_fc": fc}, augmented_batches(picture, n_aug, 32, 1, pp),
                              torch.device("cpu"))["_fc"].H
        is_dead = H[0].diagonal() == 0
        for solver in ("sparsegpt", "magnitude"):  # obc on 1000 x 1280: minutes per solve on this CPU
            solve = get_solver(solver)
            old, new = solve(W, prepare_hessian(H), 0.95), solve(W, H, 0.95)
            kept_old, kept_new = int(old.mask[:, :, is_dead].sum()), int(new.mask[:, :, is_dead].sum())
            print(f"| {path.stem} | {int(is_dead.sum())} | {solver} | {kept_old} / {kept_new} of "
                  f"{W.shape[1] * int(is_dead.sum())} | {relative_error(W, old.weight, H):.4f} / "
                  f"{relative_error(W, new.weight, H):.4f} | {relative_error(W, old.weight, H2):.4f} / "
                  f"{relative_error(W, new.weight, H2):.4f} |")


def schedules_table() -> None:
    """D3: fraction of the prunable weights removed by each schedule."""
    import torch
    import torchvision

    from spade import schedules
    from spade.capture import execution_order
    from spade.models import RANDOM, load_model
    from spade.prune import select_layers

    models = {"efficientnet_lite0": load_model("efficientnet_lite0", weights=RANDOM)[0],
              "resnet18": torchvision.models.resnet18(), "resnet50": torchvision.models.resnet50()}
    print("D3: fraction of the prunable (Conv2d/Linear) weights removed; kept fraction in brackets")
    print("| model | prunable weights | default | paper (linear 0 -> 0.99) | resnet50_tuned |")
    print("|---|---:|---:|---:|---:|")
    for name, m in models.items():
        mods = select_layers(m.eval())
        with execution_order(mods) as order, torch.no_grad():
            m(torch.zeros(1, 3, 224, 224))
        numel = {n: mods[n].weight.numel() for n in order}
        total = sum(numel.values())
        cells = []
        for spec in (schedules.DEFAULT, schedules.PAPER, schedules.resnet50_tuned):
            if spec is schedules.resnet50_tuned and name != "resnet50":
                cells.append("-")
                continue
            t = schedules.resolve(spec, order, mods)
            removed = sum(t[n] * numel[n] for n in order) / total
            cells.append(f"{removed:.1%} ({1 - removed:.1%})")
        print(f"| {name} | {total / 1e6:.2f} M | " + " | ".join(cells) + " |")


def _variant_inputs(path: Path, pp, n: int, seed: int, erase: bool, original: bool):
    """n model inputs of `path`: row 0 the image itself, then augmentations of the chosen kind."""
    import torch
    from PIL import Image

    from spade.augment import Augmentations, apply_params, sample_params
    from spade.preprocess import Preprocess

    aug = Augmentations() if erase else Augmentations(erase_p=0.0)
    if original:
        with Image.open(path) as im:
            short = min(im.size)
        source = Preprocess(resize=short, size=pp.size, mean=pp.mean, std=pp.std).load(path)  # no resampling
    else:
        source = pp.load(path)
    params = sample_params(n, source.shape[-2], source.shape[-1], pp.size, seed, aug)
    x = apply_params(source, params, 0, n, pp)
    x[0] = pp(path)[0]  # the image as the model sees it, whatever the crop source
    return x


def augment(n_images: int, n_aug: int, n_held: int = 32) -> None:
    """D5/D6: top-1 agreement of traces built from the four augmentation variants."""
    import torch

    import spade

    model, pp = spade.load_model("efficientnet_lite0")
    variants = {"ours (resized crops, erasing)": (True, False), "no erasing (D5 off)": (False, False),
                "original crops (D6 off)": (True, True), "reference (both off)": (False, True)}
    scores = {v: [0, 0, 0, 0.0] for v in variants}  # image agreement, held-out ref-style, held-out ours-style, rel_error
    t0 = time.perf_counter()
    for i, path in enumerate(_images(n_images)):
        held_ref = _variant_inputs(path, pp, n_held + 1, 1000 + i, erase=False, original=True)[1:]
        held_ours = _variant_inputs(path, pp, n_held + 1, 2000 + i, erase=True, original=False)[1:]
        with torch.no_grad():
            dense_ref, dense_ours = model(held_ref).argmax(1), model(held_ours).argmax(1)
        for v, (erase, original) in variants.items():
            x = _variant_inputs(path, pp, n_aug, i, erase, original)
            trace = spade.prune_inputs(model, x, sparsity=spade.schedules.DEFAULT)
            pruned = trace.apply(model).eval()
            with torch.no_grad():
                scores[v][0] += int(bool(trace.keeps_top1))
                scores[v][1] += int((pruned(held_ref).argmax(1) == dense_ref).sum())
                scores[v][2] += int((pruned(held_ours).argmax(1) == dense_ours).sum())
            scores[v][3] += float(trace.report().rel_error.mean())
            # one line per image and variant, so that an interrupted run still reports what it measured
            print(f"  {path.stem} | {v} | kept {int(bool(trace.keeps_top1))} | held-out ref "
                  f"{int((pruned(held_ref).argmax(1) == dense_ref).sum())}/{n_held} | ours "
                  f"{int((pruned(held_ours).argmax(1) == dense_ours).sum())}/{n_held}", flush=True)
        print(f"  {i + 1}/{n_images} images, {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    n = n_images
    print(f"D5/D6: EfficientNet-Lite0, default schedule, sparsegpt, {n_aug} augmentations, {n} images; "
          f"held-out: {n_held} augmentations per image of each kind")
    print("| augmentations of the trace | top-1 kept on the image | held-out agreement, reference-style "
          "| held-out agreement, ours-style | mean layer rel_error |")
    print("|---|---:|---:|---:|---:|")
    for v, (a, r, o, e) in scores.items():
        print(f"| {v} | {a}/{n} | {r / (n * n_held):.1%} | {o / (n * n_held):.1%} | {e / n:.4f} |")


def main(argv: list[str]) -> int:
    """Run the chosen sections."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("sections", nargs="+", choices=["dead", "schedules", "augment"])
    p.add_argument("--images", type=int, default=5)
    p.add_argument("--augmentations", type=int, default=32)
    p.add_argument("--held-out", type=int, default=32, help="held-out augmentations of each kind per image")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    if min(args.images, args.augmentations, args.threads) < 1:
        print("error: --images, --augmentations and --threads must be at least 1", file=sys.stderr)
        return 2
    import torch

    torch.set_num_threads(args.threads)
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load average {os.getloadavg()[0]:.1f}")
    for section in args.sections:
        {"dead": lambda: dead(args.images, args.augmentations), "schedules": schedules_table,
         "augment": lambda: augment(args.images, args.augmentations, args.held_out)}[section]()
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
