"""Figures (matplotlib, Agg backend), each saved as PNG and SVG.

- `figure4`: the paper's Figure 4 (left), stacked bars per condition of the
  share of ratings that agree with Score-CAM, disagree, or "can't decide".
  With Wilson 95% intervals on the agree share (net agreement) and on the
  decided share (decision rate), descriptive.
- `effect_plot`: SPADE - dense in net agreement and in deciding, the original
  (interval from its published counts) beside the replication (primary test's
  interval), with d33 marked.
- `item_panel`: net agreement per image, dense against SPADE (marker area: ratings).
- `target_panel`: net agreement per condition for the true and the predicted class.
- `rater_net`: each rater's net agreement per condition with its Wilson interval
  and n, sorted, excluded raters left out.
"""
from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display; set before pyplot is imported
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from statsmodels.stats.proportion import proportion_confint  # noqa: E402
from analysis.metrics import difference  # noqa: E402
from contracts.files import write_bytes_atomic  # noqa: E402
from contracts.responses import CONDITIONS, TARGETS  # noqa: E402

COND_LABELS = {"dense": "Dense", "spade": "SPADE"}
LABELLED = 80  # raters named in `rater_net` (beyond, the figure shows the sorted dots only)
LABELLED_ITEMS = 150  # images drawn with their interval in `item_panel` (beyond, dots only)
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
    # Intervals (Wilson, descriptive) on the two boundaries the paper's text quotes.
    for key, offset in (("net", -0.08), ("decision_rate", 0.08)):
        for xi, c in zip(x, conds):
            ci = summary[c][f"{key}_ci"]
            if ci is not None:
                v = 100 * summary[c][key]
                ax.errorbar(xi + offset, v, yerr=[[v - 100 * ci[0]], [100 * ci[1] - v]], fmt="none", ecolor="black",
                            elinewidth=1, capsize=3, zorder=4)
    ax.set_xticks(x, [f"{COND_LABELS[c]}\n(n={summary[c]['n']})" for c in conds])
    ax.set_ylim(0, 100)
    ax.set_ylabel("share of ratings (%)")
    ax.set_title("Attribution to the Score-CAM region")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=3, fontsize=8, frameon=False)
    fig.text(0.5, -0.12, "bars: Wilson 95% intervals of net agreement and decision rate", ha="center", fontsize=7)
    return _save(fig, Path(stem))


def effect_plot(summary: dict, stem: str | Path) -> list[Path]:
    """SPADE - dense (points) on the primary and secondary outcome: original vs replication, with d33."""
    verdict = summary["verdict"]
    fig, ax = plt.subplots(figsize=(5.2, 3.0))
    ys = []
    for row, (outcome, v) in enumerate(verdict.items()):
        y = 2 * (len(verdict) - 1 - row)
        for dy, label, part, color in ((0.35, "original (published counts)", v["original"], "#7f8c8d"),
                                        (-0.35, "replication (primary test)", v["replication"], "#c8553d")):
            if not part or part.get("ci") is None:
                continue
            est, (lo, hi) = 100 * part["estimate"], (100 * c for c in part["ci"])
            ax.errorbar(est, y + dy, xerr=[[est - lo], [hi - est]], fmt="o", color=color, capsize=3,
                        label=label if row == 0 else None)
        ax.plot([100 * v["original"]["d33"]] * 2, [y - 0.8, y + 0.8], ls=":", color="#34495e",
                label="d33 (33% power in the original)" if row == 0 else None)
        ys.append((y, v["label"]))
    ax.axvline(0, color="black", lw=0.8)
    ax.set_yticks([y for y, _ in ys], [label for _, label in ys], fontsize=8)
    ax.set_xlabel("SPADE - dense (percentage points), 95% intervals")
    ax.set_title("Effect: original vs replication", fontsize=10)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.28), ncol=2, fontsize=7, frameon=False)
    return _save(fig, Path(stem))


def item_panel(items: pd.DataFrame, stem: str | Path) -> list[Path]:
    """Per image: net dense against SPADE (area: ratings), and SPADE - dense sorted with Newcombe intervals."""
    both = items[(items["n_dense"] > 0) & (items["n_spade"] > 0)].reset_index(drop=True)
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(8.4, 4.0), gridspec_kw={"width_ratios": [1, 1.1]})
    size = 8 + 6 * (both["n_dense"] + both["n_spade"]).to_numpy()
    # Fixed jitter (reproducible): many images share the same small-integer rates.
    jit = np.random.default_rng(0).uniform(-1.2, 1.2, (len(both), 2))
    ax.scatter(100 * both["net_dense"] + jit[:, 0], 100 * both["net_spade"] + jit[:, 1], s=size, alpha=0.5,
               color="#34495e", edgecolor="white", lw=0.5)
    ax.plot([0, 100], [0, 100], color="#c8553d", lw=1, ls="--", label="no difference")
    ax.set_xlim(-4, 104)
    ax.set_ylim(-4, 104)
    ax.set_xlabel("net agreement, dense (%)")
    ax.set_ylabel("net agreement, SPADE (%)")
    ax.set_title(f"Per image ({len(both)} rated in both; area: ratings)", fontsize=10)
    ax.legend(loc="lower right", fontsize=8, frameon=False)
    order = both.sort_values(["net_difference", "item_id"]).reset_index(drop=True)
    y = np.arange(len(order))
    diff = 100 * order["net_difference"].to_numpy()
    if 0 < len(order) <= LABELLED_ITEMS:
        k_s = np.round(order["net_spade"] * order["n_spade"]).astype(int)
        k_d = np.round(order["net_dense"] * order["n_dense"]).astype(int)
        ci = np.array([difference(a, n, b, m)["ci"] for a, n, b, m in zip(k_s, order["n_spade"], k_d, order["n_dense"])])
        bx.errorbar(diff, y, xerr=[np.clip(diff - 100 * ci[:, 0], 0, None), np.clip(100 * ci[:, 1] - diff, 0, None)],
                    fmt="o", ms=2.5, color="#34495e", elinewidth=0.6, alpha=0.8)
        bx.set_xlabel("SPADE - dense, net agreement (points), Newcombe 95%")
    else:  # hundreds of interval bars would be a solid band: dots only
        bx.scatter(diff, y, s=3, color="#34495e", lw=0)
        bx.set_xlabel("SPADE - dense, net agreement (points)")
    bx.axvline(0, color="#c8553d", lw=1, ls="--")
    bx.set_xlim(-105, 105)
    bx.set_yticks([])
    bx.set_ylabel("images, sorted")
    bx.set_title("Per-image difference (descriptive)", fontsize=10)
    fig.tight_layout()
    return _save(fig, Path(stem))


def target_panel(summary: dict, stem: str | Path) -> list[Path]:
    """Net agreement per condition for the true and the predicted class, Wilson 95% intervals and n."""
    fig, ax = plt.subplots(figsize=(4.6, 3.6))
    width = 0.36
    for j, cond in enumerate(CONDITIONS):
        for i, target in enumerate(TARGETS):
            m = summary["targets"][target][cond]
            if not m["n"]:
                continue
            x = i + (j - 0.5) * width
            v = 100 * m["net"]
            lo, hi = (100 * c for c in m["net_ci"])
            ax.bar(x, v, width * 0.95, color=("#9aa7b8", "#c8553d")[j], label=COND_LABELS[cond] if i == 0 else None)
            ax.errorbar(x, v, yerr=[[v - lo], [hi - v]], fmt="none", ecolor="black", capsize=3)
            ax.text(x, 2, f"n={m['n']}", ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(len(TARGETS)), [f"{t} class" for t in TARGETS])
    ax.set_ylim(0, 100)
    ax.set_ylabel("net agreement (%)")
    ax.set_title("True vs predicted class visualized", fontsize=10)
    ax.legend(loc="upper right", fontsize=8, frameon=False)
    return _save(fig, Path(stem))


def rater_net(raters: pd.DataFrame, stem: str | Path) -> list[Path]:
    """Each kept rater's net agreement in both conditions (Wilson 95% intervals), labelled with the rater's n."""
    kept = raters[~raters["excluded"] & (raters["n"] > 0)].copy()
    kept["order"] = kept[["net_dense", "net_spade"]].mean(axis=1)
    kept = kept.sort_values(["order", "rater_id"]).reset_index(drop=True)
    # Beyond LABELLED raters the names would not be readable: the dots stay, sorted, unlabelled.
    named = len(kept) <= LABELLED
    fig, ax = plt.subplots(figsize=(5.2, 1.2 + 0.22 * len(kept) if named else 6.0))
    y = np.arange(len(kept))
    for cond, dy, color in (("dense", -0.15, "#7f8c8d"), ("spade", 0.15, "#c8553d")):
        n = kept[f"n_{cond}"].to_numpy()
        has = n > 0
        v = kept[f"net_{cond}"].to_numpy()[has]
        k = np.round(v * n[has]).astype(int)
        lo, hi = proportion_confint(k, n[has], alpha=0.05, method="wilson")
        if named:
            ax.errorbar(100 * v, y[has] + dy, xerr=[100 * np.clip(v - lo, 0, None), 100 * np.clip(hi - v, 0, None)],
                        fmt="o", ms=3, color=color, elinewidth=0.8, label=COND_LABELS[cond])
        else:  # thousands of interval bars would be a grey band (and a huge SVG): dots only
            ax.scatter(100 * v, y[has], s=2, color=color, alpha=0.5, label=COND_LABELS[cond], lw=0)
    if named:
        labels = [f"{str(r)[:14]} (n={int(d)}/{int(s_)})"
                  for r, d, s_ in zip(kept["rater_id"], kept["n_dense"], kept["n_spade"])]
        ax.set_yticks(y, labels, fontsize=7)
        ax.set_title(f"Per rater ({len(kept)} raters; n = dense/SPADE ratings)", fontsize=10)
    else:
        ax.set_yticks([])
        ax.set_ylabel(f"raters, sorted (median n = {int(kept['n_dense'].median())} dense / "
                      f"{int(kept['n_spade'].median())} SPADE)")
        ax.set_title(f"Per rater ({len(kept)} raters; n and intervals per rater in raters.csv)", fontsize=10)
    ax.set_xlim(0, 100)
    ax.set_xlabel("net agreement (%)" + (", Wilson 95% intervals" if named else ""))
    ax.legend(loc="lower right", fontsize=8)
    return _save(fig, Path(stem))
