"""The analysis tables, built from the summary, written as CSV, Markdown and LaTeX (booktabs).

CSV files hold the numbers (fractions in [0, 1]); the Markdown and LaTeX files
hold the same table formatted for reading (percent with one decimal, intervals
in brackets). Markdown goes through pandas + tabulate, LaTeX through pandas'
`to_latex`, which writes booktabs rules.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from contracts.files import write_text_atomic
from contracts.responses import CONDITIONS
from analysis.paper import PUBLISHED

RATE_LABELS = {"decision_rate": "decision rate", "agreement": "agreement", "net": "net agreement"}


def pct(x: float | None, digits: int = 1) -> str:
    """A fraction as a percent string, '--' when undefined."""
    return "--" if x is None or pd.isna(x) else f"{100 * x:.{digits}f}"


def pct_ci(ci: list[float] | tuple[float, float] | None) -> str:
    """An interval of fractions as '[lo, hi]' in percent ('' when undefined)."""
    return "" if ci is None or ci[0] is None or pd.isna(ci[0]) else f"[{pct(ci[0])}, {pct(ci[1])}]"


def pct_with_ci(x: float | None, ci: list[float] | tuple[float, float] | None) -> str:
    """'87.4 [83.7, 90.3]', or '--' when undefined."""
    return f"{pct(x)} {pct_ci(ci)}".strip()


def num(x: float | None, digits: int = 2) -> str:
    """A number with fixed decimals, '--' when undefined."""
    return "--" if x is None or pd.isna(x) else f"{x:.{digits}f}"


def pvalue(p: float | None) -> str:
    """A p-value for reading."""
    if p is None or pd.isna(p):
        return "--"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def headline_table(summary: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per condition and SPADE - dense: n, decided, rates with intervals, pair counts (numbers, display)."""
    rows, shown = [], []
    for cond in CONDITIONS:
        c = summary[cond]
        row = {"condition": cond, "n": c["n"], "decided": c["decided"], "correct": c["correct"]}
        disp = {"condition": cond, "n": str(c["n"]), "decided": str(c["decided"])}
        for m, label in RATE_LABELS.items():
            ci = c[f"{m}_ci"] or [None, None]
            row.update({m: c[m], f"{m}_lo": ci[0], f"{m}_hi": ci[1]})
            disp[f"{label} % [95% CI]"] = pct_with_ci(c[m], c[f"{m}_ci"])
        row.update({k: c[k] for k in ("pairs_agree", "pairs_disagree", "pairs_ratio")})
        disp["pairs agree / disagree"] = f"{c['pairs_agree']} / {c['pairs_disagree']}"
        disp["ratio"] = num(c["pairs_ratio"])
        rows.append(row)
        shown.append(disp)
    row = {"condition": "spade - dense"}
    disp = {"condition": "SPADE - dense", "n": "", "decided": ""}
    for m, label in RATE_LABELS.items():
        d = summary["difference"][m]
        ci = d["ci"] or [None, None]
        row.update({m: d["estimate"], f"{m}_lo": ci[0], f"{m}_hi": ci[1]})
        disp[f"{label} % [95% CI]"] = pct_with_ci(d["estimate"], d["ci"])
    disp["pairs agree / disagree"] = ""
    disp["ratio"] = ""
    rows.append(row)
    shown.append(disp)
    return pd.DataFrame(rows), pd.DataFrame(shown)


def paper_table(summary: dict) -> pd.DataFrame:
    """Each published number beside the measured one, its interval, and whether the published value is inside."""
    rows = []
    for cond in ("spade", "dense"):
        c = summary[cond]
        for m in ("decision_rate", "agreement", "net"):
            ci = c[f"{m}_ci"]
            pub = PUBLISHED[cond][m] / 100
            rows.append({"condition": cond, "metric": m, "published": pub, "measured": c[m],
                         "ci_lo": ci[0] if ci else None, "ci_hi": ci[1] if ci else None,
                         "published_inside_ci": bool(ci and ci[0] <= pub <= ci[1])})
        for m in ("pairs_agree", "pairs_disagree", "pairs_ratio"):
            rows.append({"condition": cond, "metric": m, "published": PUBLISHED[cond][m], "measured": c[m],
                         "ci_lo": None, "ci_hi": None, "published_inside_ci": None})
    return pd.DataFrame(rows)


def paper_display(table: pd.DataFrame) -> pd.DataFrame:
    """`paper_table` formatted for reading."""
    out = []
    for r in table.itertuples(index=False):
        is_rate = r.metric in RATE_LABELS
        fmt = pct if is_rate else (lambda x: num(x, 2) if r.metric == "pairs_ratio" else ("--" if x is None else f"{x:.0f}"))
        inside = "--" if r.published_inside_ci is None or pd.isna(r.published_inside_ci) else (
            "yes" if r.published_inside_ci else "no")
        out.append({"condition": r.condition, "metric": RATE_LABELS.get(r.metric, r.metric.replace("_", " ")),
                    "published": fmt(r.published), "measured": fmt(r.measured),
                    "95% CI": pct_ci([r.ci_lo, r.ci_hi]) if is_rate and not pd.isna(r.ci_lo) else "--",
                    "published inside CI": inside})
    return pd.DataFrame(out)


def models_table(summary: dict) -> pd.DataFrame:
    """Model-based SPADE effects: mixed models, GEE and the cluster bootstrap."""
    rows = []
    labels = {"mixed_net": "mixed logit (primary), net", "mixed_decided": "mixed logit (primary), deciding",
              "gee_net": "GEE by rater, net", "gee_decided": "GEE by rater, deciding"}
    models = summary.get("models") or {}
    for key, label in labels.items():
        m = models.get(key)
        if not m:
            continue
        if not m.get("fitted"):
            rows.append({"model": label, "estimate": None, "ci_lo": None, "ci_hi": None, "scale": "odds ratio",
                         "z": None, "p": None, "note": m.get("reason", "")})
            continue
        rows.append({"model": label, "estimate": m["odds_ratio"], "ci_lo": m["odds_ratio_ci"][0],
                     "ci_hi": m["odds_ratio_ci"][1], "scale": "odds ratio", "z": m["z"], "p": m["p"],
                     "note": "" if m.get("converged", True) else "optimizer did not report convergence"})
    boot = models.get("bootstrap")
    schemes = (("raters_and_items", "bootstrap raters x items", ("decision_rate", "agreement", "net")),
               ("raters", "bootstrap raters only", ("net",)), ("items", "bootstrap items only", ("net",)))
    for scheme, label, metrics in schemes if boot else ():
        for m in metrics:
            b = boot[scheme]
            ci = b[m]["ci"] or [None, None]
            rows.append({"model": f"{label}, {RATE_LABELS[m]}", "estimate": summary["difference"][m]["estimate"],
                         "ci_lo": ci[0], "ci_hi": ci[1], "scale": "difference", "z": None, "p": None,
                         "note": f"{b['replicates']} replicates"})
    return pd.DataFrame(rows, columns=["model", "estimate", "ci_lo", "ci_hi", "scale", "z", "p", "note"])


def models_display(table: pd.DataFrame) -> pd.DataFrame:
    """`models_table` formatted for reading."""
    out = []
    for r in table.itertuples(index=False):
        if r.scale == "difference":
            est = "--" if r.estimate is None or pd.isna(r.estimate) else f"{pct(r.estimate)} pts"
            ci = pct_ci([r.ci_lo, r.ci_hi]) or "--"
        else:
            est = num(r.estimate)
            ci = "--" if pd.isna(r.ci_lo) else f"[{num(r.ci_lo)}, {num(r.ci_hi)}]"
        out.append({"model": r.model, "SPADE effect": est, "95% interval": ci, "z": num(r.z),
                    "p": pvalue(r.p), "note": r.note})
    return pd.DataFrame(out)


def interrater_table(summary: dict) -> pd.DataFrame:
    """Pair counts, Krippendorff's alpha and Fleiss' kappa per condition."""
    rows = []
    for cond in CONDITIONS:
        ir = summary["inter_rater"][cond]
        rows.append({"condition": cond, **{k: ir[k] for k in (
            "pairs_agree", "pairs_disagree", "pairs_ratio", "pair_agreement", "tasks_with_pairs",
            "krippendorff_alpha_undecided_missing", "krippendorff_alpha_undecided_category",
            "fleiss_kappa", "fleiss_tasks", "fleiss_ratings_per_task")}})
    return pd.DataFrame(rows)


def interrater_display(table: pd.DataFrame) -> pd.DataFrame:
    """`interrater_table` formatted for reading."""
    out = []
    for r in table.itertuples(index=False):
        out.append({"condition": r.condition, "pairs agree / disagree": f"{r.pairs_agree} / {r.pairs_disagree}",
                    "ratio": num(r.pairs_ratio), "agreeing pairs %": pct(r.pair_agreement),
                    "alpha (can't decide missing)": num(r.krippendorff_alpha_undecided_missing, 3),
                    "alpha (can't decide a category)": num(r.krippendorff_alpha_undecided_category, 3),
                    "Fleiss kappa": num(r.fleiss_kappa, 3),
                    "kappa on": "--" if pd.isna(r.fleiss_ratings_per_task) else
                    f"{r.fleiss_tasks} tasks x {int(r.fleiss_ratings_per_task)}"})
    return pd.DataFrame(out)


def to_markdown(table: pd.DataFrame) -> str:
    """A table as GitHub Markdown (tabulate)."""
    return table.to_markdown(index=False, floatfmt=".4g", missingval="--")


def write_table(table: pd.DataFrame, out_dir: str | Path, name: str, display: pd.DataFrame | None = None) -> list[Path]:
    """Write NAME.csv (numbers) and NAME.md / NAME.tex (`display`, else the numbers) into out_dir."""
    out_dir = Path(out_dir)
    shown = table if display is None else display
    return [
        write_text_atomic(out_dir / f"{name}.csv", table.to_csv(index=False, lineterminator="\n")),
        write_text_atomic(out_dir / f"{name}.md", to_markdown(shown) + "\n"),
        write_text_atomic(out_dir / f"{name}.tex", shown.to_latex(index=False, escape=True, na_rep="--",
                                                                   float_format="%.4g")),
    ]
