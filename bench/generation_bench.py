"""Study generation benchmark: time per stage and per item, and the batching designs side by side.

    .venv/bin/python bench/generation_bench.py                      # demo-like settings, 2 items
    .venv/bin/python bench/generation_bench.py --preset paper --items 100 --device cuda --out /scratch/b

Part 1 runs the real pipeline (EfficientNet-Lite0 on ../shared/data/imagenet-sample) and reads
the per-stage and per-item timings that the bundle's manifest records; `--out` keeps the bundle,
so an interrupted benchmark resumes. Part 2 measures, in one run and on the same inputs, what
batching buys: the two classes rendered in one Lucent batch vs one after the other; Score-CAM
scoring both targets from one pass over the masked copies vs pytorch-grad-cam's ScoreCAM (one
pass per target); and Lucent rendering at the parameterization's size vs its default upsampling
to 224 px. Results are printed as Markdown tables for bench/README.md.
"""
from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO.parent / "shared" / "data" / "imagenet-sample"
sys.path.insert(0, str(REPO))

# Sample images: a few misclassified ones whose regions separate at these settings, and two right ones.
FILES = ["n01440764_tench.JPEG", "n01514859_hen.JPEG", "n01494475_hammerhead.JPEG", "n04200800_shoe_shop.JPEG",
         "n03876231_paintbrush.JPEG", "n03995372_power_drill.JPEG", "n01737021_water_snake.JPEG",
         "n01667778_terrapin.JPEG"]

PRESETS = {
    # what `make demo` can afford on a 2-core CPU: 128 augmentations, 128 steps at 128 px
    "demo": {"spade": {"augmentations": 128},
             "scorecam": {"layer": "_blocks.15", "batch_size": 32, "max_channels": 16, "threshold": 0.8},
             "visualization": {"steps": 128, "size": 128, "render_size": 128}},
    # the test suite's settings
    "small": {"spade": {"augmentations": 16, "layers": ["_blocks.15.*", "_conv_head", "_fc"]},
              "scorecam": {"layer": "_blocks.15", "batch_size": 16, "max_channels": 16, "threshold": 0.8},
              "visualization": {"steps": 8, "size": 64, "render_size": 64}},
    # the paper's settings (section 4.2.2), for a GPU
    "paper": {"spade": {"augmentations": 1024}, "scorecam": {"batch_size": 256},
              "visualization": {"steps": 512, "size": 224}},
}


def _config(preset: str, items: int, all_images: bool) -> dict:
    cfg = {"data": {"root": str(SAMPLE), "labels": str(SAMPLE / "labels.csv")}, "study": {"items": items, "seed": 0}}
    if not all_images:
        cfg["data"]["files"] = FILES
    for section, values in PRESETS[preset].items():
        cfg.setdefault(section, {}).update(values)
    return cfg


def pipeline_table(preset: str, items: int, out: Path, device: str | None, all_images: bool) -> str:
    """Run (or resume) the pipeline and tabulate its recorded timings."""
    from generation.config import config_from_dict
    from contracts.manifest import load_manifest
    from generation.pipeline import generate

    generate(config_from_dict(_config(preset, items, all_images)), out, device=device)
    m = load_manifest(out)
    study = m["study"]
    stages = study["timings"]["runs"][-1] if len(study["runs"]) == 1 else None
    lines = [f"Pipeline, preset `{preset}` ({len(m['items'])} items; {study['device']}):", "",
             "| stage | seconds |", "|---|---|"]
    if stages:
        cands = study["candidates"]
        lines += [f"| load (model, dataset) | {stages['load']:.1f} |",
                  f"| predict ({cands['predicted']} images) | {stages['predict']:.1f} |",
                  f"| screen ({cands['tried']} candidates, {cands['kept']} kept) | {stages['screen']:.1f} "
                  f"({stages['screen'] / max(cands['tried'], 1):.1f} per candidate) |"]
    else:
        lines.append("| (resumed bundle: stage times of the first run are in manifest.json) | |")
    per_item = study["timings"]["items"]
    spade_t = study["spade"]
    lines += ["", "| item | SPADE (augment / capture / solve) | visualize dense | visualize SPADE | write | total |",
              "|---|---|---|---|---|---|"]
    for id_, t in per_item.items():
        s = spade_t[id_]["timings"]
        lines.append(f"| {id_} | {t['spade']:.1f} ({s.get('augment', 0):.1f} / {s.get('capture', 0):.1f} / "
                     f"{s.get('solve', 0):.1f}) | {t['visualize_dense']:.1f} | {t['visualize_spade']:.1f} | "
                     f"{t['write']:.1f} | {sum(t.values()):.1f} |")
    lines.append(f"| mean per item | | | | | {study['timings']['mean_item_s']:.1f} |")
    return "\n".join(lines)


def _time(fn, repeat: int = 1) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def batching_table(device: str | None, steps: int, size: int) -> str:
    """Side-by-side ratios of the batched designs against their unbatched alternatives."""
    from pytorch_grad_cam import ScoreCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    from generation.classifier import load_classifier
    from generation.config import ModelSettings, VisualizationSettings
    from generation.dataset import load_rgb
    from generation.pipeline import _model_input
    from generation.regions import scorecam_maps
    from generation.visualize import RenderSettings, render

    clf = load_classifier(ModelSettings(), device)
    p = clf.preprocess
    rows = []

    def settings(render_size: int | None) -> RenderSettings:
        vis = VisualizationSettings(steps=steps, size=size, render_size=render_size)
        return RenderSettings.from_config(vis, p.mean, p.std, clf.device)

    both = _time(lambda: render("lucent_logit", clf.model, [4, 842], settings(size), 0))
    one_by_one = _time(lambda: [render("lucent_logit", clf.model, [c], settings(size), 0) for c in (4, 842)])
    rows.append((f"two classes: one Lucent batch vs two renders ({steps} steps, {size} px)", both, one_by_one))
    upsampled = _time(lambda: render("lucent_logit", clf.model, [4, 842], settings(None), 0))
    rows.append((f"Lucent at {size} px vs its default upsampling to 224 px", both, upsampled))

    image, _ = load_rgb(SAMPLE / "n01494475_hammerhead.JPEG")
    x, _ = _model_input(clf, image)
    layer = dict(clf.model.named_modules())["_blocks.15"]
    shared = _time(lambda: scorecam_maps(clf.model, layer, x, [4, 842], batch_size=64))

    def library() -> np.ndarray:
        # the same rectified maps as generation.regions, through the library's own per-target loop
        with ScoreCAM(clf.model, [layer], reshape_transform=torch.relu) as cam:
            cam.batch_size = 64
            return cam(input_tensor=x.expand(2, -1, -1, -1), targets=[ClassifierOutputTarget(4), ClassifierOutputTarget(842)])

    per_target = _time(library)
    rows.append(("Score-CAM, 2 targets, 320 channels: one pass over the masks vs one per target", shared, per_target))
    subset = _time(lambda: scorecam_maps(clf.model, layer, x, [4, 842], batch_size=64, max_channels=64))
    rows.append(("Score-CAM with max_channels = 64 vs all 320 channels", subset, shared))
    lines = ["Batching, side by side in one run:", "", "| design vs alternative | design s | alternative s | speed-up |",
             "|---|---|---|---|"]
    lines += [f"| {name} | {a:.1f} | {b:.1f} | {b / a:.2f}x |" for name, a, b in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its tables."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", choices=sorted(PRESETS), default="demo")
    ap.add_argument("--items", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None, help="bundle folder (kept; re-running resumes)")
    ap.add_argument("--device", default=None)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    ap.add_argument("--all-images", action="store_true", help="predict all 500 sample images, not a subset")
    ap.add_argument("--skip-pipeline", action="store_true")
    ap.add_argument("--skip-batching", action="store_true")
    ap.add_argument("--batching-steps", type=int, default=32)
    ap.add_argument("--batching-size", type=int, default=128)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, "
          f"torch {torch.__version__}, CUDA {'yes: ' + torch.cuda.get_device_name() if torch.cuda.is_available() else 'no'}; "
          f"date {date.today().isoformat()}; command: {' '.join(sys.argv)}\n")
    if not args.skip_pipeline:
        out = args.out or Path(tempfile.mkdtemp(prefix="generation-bench-"))
        print(pipeline_table(args.preset, args.items, out, args.device, args.all_images), "\n", flush=True)
    if not args.skip_batching:
        print(batching_table(args.device, args.batching_steps, args.batching_size))
    return 0


if __name__ == "__main__":
    sys.exit(main())
