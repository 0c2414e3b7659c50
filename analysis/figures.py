"""Figures (matplotlib, Agg backend), each saved as PNG and SVG.

- `figure4`: the paper's Figure 4 (left), stacked bars per condition of the
  share of ratings that agree with Score-CAM, disagree, or "can't decide".
- `rater_agreement`: each rater's agreement in the dense and in the SPADE
  condition, joined by a line, with the pooled agreement per condition.
"""
from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display; set before pyplot is imported
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from contracts.files import write_bytes_atomic  # noqa: E402

COND_LABELS = {"dense": "Dense", "spade": "SPADE"}
COLORS = {"agree": "#4c9a5b", "disagree": "#c8553d", "undecided": "#b8b8b8"}


def _save(fig: plt.Figure, stem: Path) -> list[Path]:
    paths = []
    # Fixed hash salt and no date: the same data give byte-identical SVGs.
    # Text kept as text in the SVG (editable, searchable) rather than as glyph paths.
    with matplotlib.rc_context({"svg.hashsalt": "spade-study", "svg.fonttype": "none"}):
        for ext, meta in (("png", {"Software": None}), ("svg", {"Date": None, "Creator": None})):
            buf = io.BytesIO()
            fig.savefig(buf, format=ext, dpi=150, bbox_inches="tight", metadata=meta)
            paths.append(write_bytes_atomic(stem.with_suffix(f".{ext}"), buf.getvalue()))
    plt.close(fig)
    return paths


def figure4(summary: dict, stem: str | Path) -> list[Path]:
    """Stacked bars of agree / disagree / can't decide shares per condition (the paper's Figure 4, left)."""
    conds = [c for c in ("dense", "spade") if summary[c]["n"] > 0]
    shares = {k: [] for k in COLORS}
    for c in conds:
        s = summary[c]  # rates from `analysis.metrics.rates`: agree = net, can't decide = 1 - decision rate
        shares["agree"].append(s["net"])
        shares["disagree"].append(s["decision_rate"] - s["net"])
        shares["undecided"].append(1 - s["decision_rate"])
    fig, ax = plt.subplots(figsize=(4.2, 4.0))
    x = np.arange(len(conds))
    bottom = np.zeros(len(conds))
    labels = {"agree": "agrees with Score-CAM", "disagree": "disagrees", "undecided": "can't decide"}
    for key, color in COLORS.items():
        vals = np.array(shares[key]) * 100
        ax.bar(x, vals, bottom=bottom, color=color, width=0.6, label=labels[key])
        for xi, b, v in zip(x, bottom, vals):
            if v >= 4:
                ax.text(xi, b + v / 2, f"{v:.1f}%", ha="center", va="center", fontsize=9)
        bottom += vals
    ax.set_xticks(x, [f"{COND_LABELS[c]}\n(n={summary[c]['n']})" for c in conds])
    ax.set_ylim(0, 100)
    ax.set_ylabel("share of ratings (%)")
    ax.set_title("Attribution to the Score-CAM region")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=3, fontsize=8, frameon=False)
    return _save(fig, Path(stem))


def rater_agreement(raters: pd.DataFrame, summary: dict, stem: str | Path) -> list[Path]:
    """Per-rater agreement (among decided) in each condition; excluded raters are left out."""
    kept = raters[~raters["excluded"]].reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(4.2, 4.0))
    # Fixed jitter per rater (the figure is reproducible), shared by the rater's points and line.
    jitter = np.random.default_rng(0).uniform(-0.06, 0.06, (len(kept), 2))
    dense, spade = kept["agreement_dense"].to_numpy() * 100, kept["agreement_spade"].to_numpy() * 100
    for k in np.flatnonzero(np.isfinite(dense) & np.isfinite(spade)):
        ax.plot([jitter[k, 0], 1 + jitter[k, 1]], [dense[k], spade[k]], color="#9aa7b8", lw=0.8, alpha=0.6, zorder=1)
    for i, (cond, vals) in enumerate((("dense", dense), ("spade", spade))):
        ok = np.isfinite(vals)
        ax.scatter(i + jitter[ok, i], vals[ok], s=14, color="#34495e", zorder=2)
        pooled = summary[cond]["agreement"]
        if pooled is not None:
            labelled = bool(ax.get_legend_handles_labels()[1])
            ax.hlines(100 * pooled, i - 0.25, i + 0.25, color="#c8553d", lw=2.5, zorder=3,
                      label=None if labelled else "pooled")
    ax.set_xticks([0, 1], ["Dense", "SPADE"])
    ax.set_xlim(-0.5, 1.5)
    ax.set_ylim(-2, 102)
    ax.set_ylabel("agreement with Score-CAM among decided (%)")
    ax.set_title(f"Per-rater agreement ({len(kept)} raters)")
    if ax.get_legend_handles_labels()[1]:
        ax.legend(loc="lower right", fontsize=8, frameon=False)
    return _save(fig, Path(stem))
