"""Tables 1 and 2 of the paper from the per-sample records: mean +- SD per method and condition, and
the paired SPADE - dense difference with a percentile bootstrap interval over samples (scipy).

Written as CSV (plain numbers), Markdown and LaTeX (pandas), plus the time per sample per method.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from contracts.files import write_text_atomic
from saliency.errors import SaliencyError
from saliency.methods import PAPER_METHODS

# Table 1 of the paper (ResNet50 / ImageNet, 140 samples) and the review's insertion/deletion table
PAPER_TABLE1 = {  # method: (AUC dense, AUC SPADE, pointing dense, pointing SPADE)
    "Saliency": (86.92, 95.32, 83.92, 93.71), "InputXGradient": (83.77, 93.73, 67.83, 88.81),
    "DeepLift": (93.47, 95.85, 89.51, 90.91), "LRP": (90.05, 99.11, 72.73, 96.5),
    "GuidedBackprop": (95.22, 96.45, 87.5, 86.81), "GuidedGradCam": (97.82, 98.12, 90.91, 93.71),
    "LIME": (91.93, 95.84, 70.63, 69.23), "Occlusion": (86.09, 93.73, 89.51, 86.71),
    "IntegratedGradients": (87.86, 94.77, 81.12, 88.81), "GradientShap": (87.74, 94.85, 81.12, 88.11),
    "Average": (90.09, 95.78, 81.41, 87.22),
}
PAPER_TABLE2 = {  # method: (insertion dense, insertion SPADE, deletion dense, deletion SPADE)
    "Saliency": (67.98, 85.81, 5.03, 2.5), "InputXGradient": (66.64, 84.29, 5.24, 2.54),
    "DeepLift": (84.77, 87.29, 2.23, 1.92), "LRP": (84.25, 92.88, 2.92, 1.67),
    "GuidedBackprop": (81.4, 84.75, 2.08, 1.93), "GuidedGradCam": (87.61, 88.54, 1.64, 1.62),
    "LIME": (95.25, 93.55, 4.58, 5.51), "Occlusion": (74.91, 88.89, 4.5, 2.35),
    "IntegratedGradients": (73.92, 85.1, 3.87, 2.28), "GradientShap": (73.24, 86.3, 3.62, 2.12),
    "Average": (79.0, 87.74, 3.57, 2.45),
}


def load_records(dirs: list[Path]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Records of every folder (one per sample id) and the first folder's settings."""
    records: dict[str, dict[str, Any]] = {}
    settings: dict[str, Any] = {}
    for d in dirs:
        s = Path(d) / "benchmark.json"
        if not s.is_file():
            raise SaliencyError(f"{d}: not a saliency result folder (no benchmark.json)")
        this = json.loads(s.read_text(encoding="utf-8"))
        if settings and this["fingerprint"] != settings["fingerprint"]:
            raise SaliencyError(f"{d}: results of another config or model than {dirs[0]}")
        settings = settings or this
        for f in sorted((Path(d) / "records").glob("*.json")):
            rec = json.loads(f.read_text(encoding="utf-8"))
            records[rec["id"]] = rec
    return [records[k] for k in sorted(records)], settings


def bootstrap_ci(diffs: np.ndarray, n: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% percentile bootstrap interval of the mean of paired differences."""
    diffs = np.asarray(diffs, dtype=float)
    if len(diffs) < 2 or np.ptp(diffs) == 0:
        v = float(diffs.mean()) if len(diffs) else float("nan")
        return v, v
    res = stats.bootstrap((diffs,), np.mean, n_resamples=n, method="percentile", random_state=seed)
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def _values(records: list[dict[str, Any]], kind: str, name: str, cond: str, metric: str) -> dict[str, float]:
    out = {}
    for r in records:
        e = r["scores"].get(name, {}).get(cond, {})
        if r["kind"] == kind and e.get("status") == "ok" and metric in e:
            out[r["id"]] = float(e[metric]) * 100.0
    return out


def _pair(records, kind, name, metric, n_boot) -> dict[str, float]:
    d = _values(records, kind, name, "dense", metric)
    s = _values(records, kind, name, "spade", metric)
    both = sorted(set(d) & set(s))
    row: dict[str, float] = {
        f"{metric}_dense_mean": np.mean(list(d.values())) if d else np.nan,
        f"{metric}_dense_sd": np.std(list(d.values()), ddof=1) if len(d) > 1 else np.nan,
        f"{metric}_spade_mean": np.mean(list(s.values())) if s else np.nan,
        f"{metric}_spade_sd": np.std(list(s.values()), ddof=1) if len(s) > 1 else np.nan,
        f"{metric}_n": len(both) if s else len(d),
    }
    if both:
        diffs = np.array([s[k] - d[k] for k in both])
        lo, hi = bootstrap_ci(diffs, n_boot)
        row.update({f"{metric}_diff": float(diffs.mean()), f"{metric}_diff_lo": lo, f"{metric}_diff_hi": hi})
    else:
        row.update({f"{metric}_diff": np.nan, f"{metric}_diff_lo": np.nan, f"{metric}_diff_hi": np.nan})
    return row


def build_table(records: list[dict[str, Any]], settings: dict[str, Any], kind: str, metrics: tuple[str, str],
                n_boot: int = 2000) -> pd.DataFrame:
    """One row per method (then the average of the paper's methods that ran, then the baselines)."""
    methods = list(settings["methods"])
    rows = []
    for name in methods + list(settings.get("baselines", [])):
        row: dict[str, Any] = {"method": name, "kind": "method" if name in methods else "baseline"}
        cov = settings["methods"].get(name, {"status": "ok", "reason": ""})
        for m in metrics:
            row.update(_pair(records, kind, name, m, n_boot))
        fails = sorted({e.get("reason", "") for r in records for e in r["scores"].get(name, {}).values()
                        if e.get("status") == "failed"})
        row["status"] = "failed" if fails and cov["status"] == "ok" else cov["status"]
        row["note"] = "; ".join([cov.get("reason", "")] + fails).strip("; ")
        rows.append(row)
    df = pd.DataFrame(rows)
    ran = df[(df.kind == "method") & df[f"{metrics[0]}_dense_mean"].notna()]
    if len(ran):
        avg = {"method": "Average", "kind": "average", "status": f"{len(ran)} methods", "note": ""}
        for col in df.columns:
            if col.endswith(("_mean", "_diff")):
                avg[col] = ran[col].mean()
        # the paired difference of per-sample averages over methods, bootstrapped over samples
        for m in metrics:
            per = {}
            for r in records:
                if r["kind"] != kind:
                    continue
                vals = [(r["scores"][n]["spade"][m] - r["scores"][n]["dense"][m]) * 100 for n in ran.method
                        if r["scores"].get(n, {}).get("spade", {}).get("status") == "ok"
                        and r["scores"].get(n, {}).get("dense", {}).get("status") == "ok"]
                if vals:
                    per[r["id"]] = np.mean(vals)
            if per:
                avg[f"{m}_diff_lo"], avg[f"{m}_diff_hi"] = bootstrap_ci(np.array(list(per.values())), n_boot)
            avg[f"{m}_n"] = len(per)
        df = pd.concat([df[df.kind == "method"], pd.DataFrame([avg]), df[df.kind == "baseline"]], ignore_index=True)
    return df


def _fmt(mean: float, sd: float | None = None) -> str:
    if mean is None or (isinstance(mean, float) and np.isnan(mean)):
        return "-"
    if sd is None or (isinstance(sd, float) and np.isnan(sd)):
        return f"{mean:.2f}"
    return f"{mean:.2f} ± {sd:.2f}"


def _fmt_diff(row: pd.Series, m: str) -> str:
    d = row.get(f"{m}_diff")
    if d is None or (isinstance(d, float) and np.isnan(d)):
        return "-"
    return f"{d:+.2f} [{row[f'{m}_diff_lo']:+.2f}, {row[f'{m}_diff_hi']:+.2f}]"


def display(df: pd.DataFrame, metrics: tuple[str, str], labels: tuple[str, str], paper: dict[str, tuple]) -> pd.DataFrame:
    """The human-readable table: mean ± SD per condition, the paired difference [95% CI], the paper's numbers."""
    rows = []
    for _, r in df.iterrows():
        out = {"Method": r["method"]}
        p = paper.get(r["method"])
        for i, (m, lab) in enumerate(zip(metrics, labels)):
            sd = (lambda c: r.get(c)) if m != "pointing" else (lambda c: None)
            out[f"{lab} dense"] = _fmt(r[f"{m}_dense_mean"], sd(f"{m}_dense_sd"))
            out[f"{lab} SPADE"] = _fmt(r[f"{m}_spade_mean"], sd(f"{m}_spade_sd"))
            out[f"{lab} SPADE − dense [95% CI]"] = _fmt_diff(r, m)
            out[f"{lab} paper dense → SPADE"] = f"{p[2 * i]} → {p[2 * i + 1]}" if p else ""
        out["n"] = int(r.get(f"{metrics[0]}_n") or 0)
        out["Status"] = r["status"] + (f" ({r['note']})" if r["note"] else "")
        rows.append(out)
    return pd.DataFrame(rows)


def timing_table(records: list[dict[str, Any]], settings: dict[str, Any]) -> pd.DataFrame:
    """Mean seconds per sample per method and condition (and of the SPADE trace)."""
    rows = []
    for name in list(settings["methods"]) + list(settings.get("baselines", [])):
        row: dict[str, Any] = {"method": name}
        for cond in ("dense", "spade"):
            secs = [r["scores"].get(name, {}).get(cond, {}).get("seconds") for r in records]
            secs = [s for s in secs if s is not None]
            row[f"{cond}_s"] = round(float(np.mean(secs)), 3) if secs else np.nan
        rows.append(row)
    tr = [r["spade"]["seconds"] for r in records]
    rows.append({"method": "SPADE trace (once per sample)", "dense_s": np.nan,
                 "spade_s": round(float(np.mean(tr)), 3) if tr else np.nan})
    return pd.DataFrame(rows)


def write_tables(dirs: list[Path], out: Path) -> list[Path]:
    """Write table1.{csv,md,tex}, table2.{csv,md,tex} and timing.{csv,md} to `out`; return the .csv paths."""
    records, settings = load_records([Path(d) for d in dirs])
    if not records:
        raise SaliencyError(f"{', '.join(map(str, dirs))}: no finished sample yet")
    out = Path(out)
    written = []
    specs = [("table1", "trojan", ("auroc", "pointing"), ("AUC", "Pointing game"), PAPER_TABLE1),
             ("table2", "clean", ("insertion", "deletion"), ("Insertion", "Deletion"), PAPER_TABLE2)]
    for stem, kind, metrics, labels, paper in specs:
        if not any(r["kind"] == kind for r in records):
            continue
        df = build_table(records, settings, kind, metrics)
        shown = display(df, metrics, labels, paper)
        n = sum(r["kind"] == kind for r in records)
        what = ("Trojan AUROC x100 and pointing game (% hits) on patched held-out images that flip to the Trojan "
                "class" if kind == "trojan" else "insertion / deletion AUC x100 (dense model's confidence, "
                "normalized by the full image's) on clean correctly classified held-out images")
        caption = f"{what}; {n} samples; SPADE − dense: mean paired difference, 95% percentile bootstrap CI"
        write_text_atomic(out / f"{stem}.csv", df.to_csv(index=False))
        write_text_atomic(out / f"{stem}.md", f"{caption}\n\n{shown.to_markdown(index=False)}\n")
        write_text_atomic(out / f"{stem}.tex", shown.to_latex(index=False, caption=caption, label=f"tab:{stem}"))
        written.append(out / f"{stem}.csv")
    tt = timing_table(records, settings)
    write_text_atomic(out / "timing.csv", tt.to_csv(index=False))
    write_text_atomic(out / "timing.md", "Mean seconds per sample\n\n" + tt.to_markdown(index=False) + "\n")
    written.append(out / "timing.csv")
    return written
