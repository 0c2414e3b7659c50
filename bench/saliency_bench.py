"""Saliency benchmark on this CPU: plant the embedded Trojan model, run Tables 1-2, compare metrics with Quantus.

    .venv/bin/python bench/saliency_bench.py --work /tmp/bench-saliency

Steps (each resumes): `spade-study trojan data/configs/trojan-cpu.toml`, `spade-study saliency
data/configs/saliency-cpu.toml`, then Quantus (installed into the venv for this script only:
`.venv/bin/pip install quantus==0.6.0`) against `saliency.metrics` on the same maps: localisation AUC vs
`trojan_auroc`, PointingGame vs `pointing_game`, PixelFlipping vs `deletion_auc`, with the time of each.
Results: WORK/quantus.json and the tables in WORK/saliency/.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "spade_study"]


def _run(args: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(CLI + args, check=True, cwd=REPO)
    return time.perf_counter() - t


def quantus_side_by_side(model_dir: Path, config: Path, n: int) -> dict:
    """Our metrics and Quantus' on the dense Saliency / InputXGradient maps of the first n samples."""
    import numpy as np
    import quantus
    import torch

    from saliency.benchmark import select_samples
    from saliency.config import load_saliency_config
    from saliency.methods import get_method
    from saliency.metrics import deletion_auc, pointing_game, trojan_auroc
    from saliency.trojan import load_trojan

    cfg = load_saliency_config(config)
    tm = load_trojan(model_dir)
    samples = select_samples(tm, cfg)
    out: dict = {"samples": {}, "metrics": {}}
    for kind in ("trojan", "clean"):
        chosen = [s for s in samples if s.kind == kind][:n]
        x = torch.cat([tm.preprocess.normalize(tm.picture(s.example))[None] for s in chosen])
        y = np.array([s.target for s in chosen])
        for name in ("Saliency", "InputXGradient"):
            maps = np.stack([get_method(name).compute(tm.model, x[i:i + 1], int(y[i]), tm.picture(s.example),
                                                      cfg.methods) for i, s in enumerate(chosen)])
            a = maps[:, None].astype(np.float32)
            if kind == "trojan":
                masks = np.stack([s.example.placement.mask(*maps.shape[1:]) for s in chosen])
                t = time.perf_counter()
                ours_auc = [trojan_auroc(m, k) for m, k in zip(maps, masks)]
                t_ours_auc = time.perf_counter() - t
                t = time.perf_counter()
                q_auc = quantus.AUC(disable_warnings=True)(model=tm.model, x_batch=x.numpy(), y_batch=y, a_batch=a,
                                                           s_batch=masks[:, None].astype(np.float32), device="cpu")
                t_q_auc = time.perf_counter() - t
                t = time.perf_counter()
                ours_pg = [pointing_game(m, k) for m, k in zip(maps, masks)]
                t_ours_pg = time.perf_counter() - t
                t = time.perf_counter()
                q_pg = quantus.PointingGame(disable_warnings=True)(model=tm.model, x_batch=x.numpy(), y_batch=y,
                                                                    a_batch=a, s_batch=masks[:, None].astype(np.float32),
                                                                    device="cpu")
                t_q_pg = time.perf_counter() - t
                out["metrics"][f"{name}/auroc"] = {"ours": ours_auc, "quantus": q_auc, "ours_s": t_ours_auc,
                                                   "quantus_s": t_q_auc}
                out["metrics"][f"{name}/pointing"] = {"ours": ours_pg, "quantus": [bool(v) for v in q_pg],
                                                      "ours_s": t_ours_pg, "quantus_s": t_q_pg}
            else:
                steps = cfg.samples.insertion_steps
                h, w = maps.shape[1:]
                with torch.no_grad():
                    full = tm.model(x).softmax(1)[np.arange(len(y)), y].numpy()
                t = time.perf_counter()
                ours = [deletion_auc(tm.model, x[i:i + 1], maps[i], int(y[i]), steps=steps) for i in range(len(y))]
                t_ours = time.perf_counter() - t
                # Quantus broadcasts the map over the colour channels and flips `features_in_step` colour values per
                # step (its check wants a divisor of H*W): 3 x steps perturbations, every third one ends a pixel step
                pf = quantus.PixelFlipping(features_in_step=h * w // steps, perturb_baseline=0.0,
                                           disable_warnings=True)
                t = time.perf_counter()
                curves = np.array(pf(model=tm.model, x_batch=x.numpy(), y_batch=y, a_batch=a, device="cpu", softmax=True))
                curves = curves[:, x.shape[1] - 1::x.shape[1]]
                t_q = time.perf_counter() - t
                # Quantus' curve starts after the first step; prepend the full image and normalize as ours does
                q = [float(np.trapezoid(np.r_[full[i], curves[i]], dx=1 / steps) / full[i]) for i in range(len(y))]
                out["metrics"][f"{name}/deletion"] = {"ours": ours, "quantus": q, "ours_s": t_ours, "quantus_s": t_q}
        out["samples"][kind] = len(chosen)
    return out


def main() -> int:
    """Run the steps; print the summary."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", type=Path, default=Path("/tmp/bench-saliency"))
    p.add_argument("--config", type=Path, default=REPO / "data/configs/saliency-cpu.toml")
    p.add_argument("--name", default="saliency", help="results subfolder of WORK")
    p.add_argument("--shard", default=None, metavar="I/N")
    p.add_argument("--quantus-samples", type=int, default=5)
    p.add_argument("--skip-quantus", action="store_true")
    p.add_argument("--quantus-only", action="store_true")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    model_dir, out = args.work / "trojan-cpu", args.work / args.name
    times: dict = {}
    if not args.quantus_only:
        times["trojan_s"] = _run(["trojan", "data/configs/trojan-cpu.toml", "--out", str(model_dir), "--quiet"])
        extra = ["--shard", args.shard] if args.shard else []
        times["saliency_s"] = _run(["saliency", str(args.config), "--model", str(model_dir), "--out", str(out)] + extra)
        print(json.dumps(times))
    if args.skip_quantus:
        return 0
    try:
        q = quantus_side_by_side(model_dir, args.config, args.quantus_samples)
    except ImportError:
        q = {"error": "quantus is not installed (pip install quantus==0.6.0)"}
    (args.work / "quantus.json").write_text(json.dumps(q, indent=1, default=float))
    for key, v in q.get("metrics", {}).items():
        ours, theirs = np.array(v["ours"], float), np.array(v["quantus"], float)
        print(f"{key:28s} ours {ours.mean():.4f} ({v['ours_s']:.3f} s)  quantus {theirs.mean():.4f} "
              f"({v['quantus_s']:.3f} s)  max |diff| {np.abs(ours - theirs).max():.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
