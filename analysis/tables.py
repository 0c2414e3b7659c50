"""The analysis tables, built from the summary, written as CSV, Markdown and LaTeX (booktabs).

CSV files hold the numbers (fractions in [0, 1]); the Markdown and LaTeX files
hold the same table formatted for reading (percent with one decimal, intervals
in brackets). Markdown goes through pandas + tabulate, LaTeX through pandas'
`to_latex`, which writes booktabs rules.
"""
from __future__ import annotations

import re
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
    for kind, key, label in (("robust", "robust_ci", "SPADE - dense (clustered)"),
                             ("descriptive", "ci", "SPADE - dense (descriptive)")):
        row = {"condition": f"spade - dense ({kind})"}
        disp = {"condition": label, "n": "", "decided": ""}
        for m, mlabel in RATE_LABELS.items():
            d = summary["difference"][m]
            ci = d.get(key) or [None, None]
            row.update({m: d["estimate"], f"{m}_lo": ci[0], f"{m}_hi": ci[1]})
            disp[f"{mlabel} % [95% CI]"] = pct_with_ci(d["estimate"], d.get(key)) if d.get(key) else (
                f"{pct(d['estimate'])} [no interval]" if d["estimate"] is not None else "--")
        disp["pairs agree / disagree"] = ""
        disp["ratio"] = ""
        rows.append(row)
        shown.append(disp)
    return pd.DataFrame(rows), pd.DataFrame(shown)


HEADLINE_NOTE = ("Clustered: the net agreement and decision rate intervals invert the primary permutation test "
                 "(condition labels of whole tasks permuted); the agreement interval is the two-way cluster "
                 "bootstrap (raters x images), \"no interval\" without the models or with too few raters or images. "
                 "Descriptive: Newcombe intervals "
                 "that treat ratings as independent; they are too narrow and are not a test.")


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
    labels = {"mixed_net": "mixed logit, net", "mixed_decided": "mixed logit, deciding",
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


def verdict_table(summary: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The replication verdict per outcome: original and replication effects with intervals (numbers, display)."""
    rows, shown = [], []
    for outcome, v in summary["verdict"].items():
        o, r = v["original"], v["replication"] or {}
        st = v.get("small_telescopes") or {}
        rows.append({"outcome": outcome, "original": o["estimate"], "original_lo": o["ci"][0], "original_hi": o["ci"][1],
                     "replication": r.get("estimate"), "replication_lo": (r.get("ci") or [None])[0],
                     "replication_hi": (r.get("ci") or [None, None])[1], "p": r.get("p"),
                     "compatibility_p": v.get("compatibility_p"), "d33": o["d33"], "verdict": v["verdict"]})
        shown.append({"outcome": v["label"], "original (published counts)": pct_with_ci(o["estimate"], o["ci"]),
                      "replication": pct_with_ci(r.get("estimate"), r.get("ci")) if r else "--",
                      "p": pvalue(r.get("p")), "compatible (p)": pvalue(v.get("compatibility_p")),
                      "d33": pct(o["d33"]),
                      "one-sided upper": pct(st.get("upper_one_sided_95")), "verdict": v["verdict"]})
    return pd.DataFrame(rows), pd.DataFrame(shown)


def comparable_table(summary: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Chance-corrected inter-rater agreement on the same strata for both conditions, with intervals."""
    ca = summary["inter_rater_comparable"]
    labels = {"pair_agreement": f"agreeing pairs % ({ca['strata_pairable']} strata)",
              "krippendorff_alpha": f"Krippendorff alpha ({ca['strata_pairable']} strata)",
              "fleiss_kappa": f"Fleiss kappa ({ca['strata_equal']} strata x "
                              f"{ca['ratings_per_task_equal'] or '--'} ratings)"}
    rows, shown = [], []
    for key, label in labels.items():
        e = ca[key]
        row = {"measure": key}
        disp = {"measure": label}
        fmt = pct_with_ci if key == "pair_agreement" else (lambda x, ci: f"{num(x, 3)} "
                                                           + (f"[{num(ci[0], 3)}, {num(ci[1], 3)}]" if ci else ""))
        for part, head in (("dense", "dense"), ("spade", "SPADE"), ("difference", "SPADE - dense")):
            row[part], row[f"{part}_lo"], row[f"{part}_hi"] = (e[part]["estimate"], *(e[part]["ci"] or [None, None]))
            disp[f"{head} [95% CI]"] = fmt(e[part]["estimate"], e[part]["ci"]).strip()
        if key == "pair_agreement":
            disp["chance (dense / SPADE)"] = f"{pct(e['dense_chance']['estimate'])} / {pct(e['spade_chance']['estimate'])}"
            row["dense_chance"], row["spade_chance"] = e["dense_chance"]["estimate"], e["spade_chance"]["estimate"]
        else:
            disp["chance (dense / SPADE)"] = "0 by construction"
        rows.append(row)
        shown.append(disp)
    return pd.DataFrame(rows), pd.DataFrame(shown)


def raters_display(raters: pd.DataFrame) -> pd.DataFrame:
    """The per-rater table for reading: 8 columns, percent, excluded raters marked with *."""
    def count_of(k: float, n: int) -> str:
        return "--" if n == 0 or pd.isna(k) else f"{int(round(k * n))}/{n}"

    return pd.DataFrame({
        "rater": [f"{r}{' *' if x else ''}" for r, x in zip(raters["rater_id"], raters["excluded"])],
        "ratings": raters["n"].astype(int).astype(str),
        "catch right": [count_of(a, n) for a, n in zip(raters["catch_accuracy"], raters["n_catch"])],
        "decision rate %": [pct(x) for x in raters["decision_rate"]],
        "agreement %": [pct(x) for x in raters["agreement"]],
        "net dense % (n)": [f"{pct(x)} ({n})" for x, n in zip(raters["net_dense"], raters["n_dense"])],
        "net SPADE % (n)": [f"{pct(x)} ({n})" for x, n in zip(raters["net_spade"], raters["n_spade"])],
        "median time s": [num(x / 1000, 1) for x in raters["median_response_ms"]],
    })


def items_display(items: pd.DataFrame) -> pd.DataFrame:
    """The per-item table for reading: 8 columns, percent."""
    out = {"image": items["item_id"]}
    for cond, head in (("dense", "dense"), ("spade", "SPADE")):
        out[f"{head} n"] = items[f"n_{cond}"].astype(int).astype(str)
        out[f"{head} decided %"] = [pct(x) for x in items[f"decision_rate_{cond}"]]
        out[f"{head} net %"] = [pct(x) for x in items[f"net_{cond}"]]
    out["net SPADE - dense"] = [pct(x) for x in items["net_difference"]]
    return pd.DataFrame(out)


CAPTIONS: dict[str, str] = {
    "headline": "Per condition: ratings, decisions and rates with Wilson 95\\% intervals; SPADE $-$ dense with "
                "clustered and descriptive intervals, in points. Pairs: raters who both decided on one task.",
    "paper_comparison": "The published rates and pair counts beside the replication's, with Wilson 95\\% intervals.",
    "verdict": "Replication verdict: SPADE $-$ dense in points, the original's interval from its published counts, "
               "the replication's from the primary permutation test; d33: the effect the original had 33\\% power "
               "to detect.",
    "models": "Secondary analyses of SPADE $-$ dense: mixed logistic models and GEE (odds ratios) and cluster "
              "bootstraps (points).",
    "inter_rater": "Raw inter-rater pair counts per condition (they depend on the ratings per task) with "
                   "Krippendorff's alpha and Fleiss' kappa.",
    "inter_rater_comparable": "Chance-corrected inter-rater agreement on the same image and target strata for both "
                              "conditions, with stratum-bootstrap 95\\% intervals.",
    "raters": "Per rater (* excluded): ratings, catch trials answered right, rates in percent, median response time.",
    "items": "Per image: ratings, decision rate and net agreement per condition, in percent.",
}
LONG_TABLE_ROWS = 30  # longer tables become longtable (they break across pages)


def _is_text(column: pd.Series) -> bool:
    """Object or string dtype (pandas 3 reads text as `str`, older pandas as `object`)."""
    return pd.api.types.is_object_dtype(column) or pd.api.types.is_string_dtype(column)


def to_markdown(table: pd.DataFrame) -> str:
    """A table as GitHub Markdown (tabulate), `|` in cells escaped so that cells stay cells."""
    table = table.copy()
    for col in table.columns:
        if _is_text(table[col]):
            table[col] = [v.replace("|", "\\|") if isinstance(v, str) else v for v in table[col]]
    table.columns = [str(c).replace("|", "\\|") for c in table.columns]
    # Display tables hold formatted strings: keep them as written ("1.000", "0.40"), no re-parsing.
    shown_as_text = all(_is_text(table[c]) for c in table.columns)
    return table.to_markdown(index=False, floatfmt=".4g", missingval="--", disable_numparse=shown_as_text)


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(table: pd.DataFrame) -> pd.DataFrame:
    """Text cells that a spreadsheet would run as a formula (=, +, -, @ first) prefixed with ' (OWASP advice)."""
    table = table.copy()
    for col in table.columns:
        if _is_text(table[col]):
            table[col] = ["'" + v if isinstance(v, str) and v.startswith(FORMULA_START) else v for v in table[col]]
    return table


def to_latex(table: pd.DataFrame, name: str) -> str:
    """A display table as LaTeX: booktabs, caption and label, longtable beyond `LONG_TABLE_ROWS` rows."""
    if table.shape[1] > 8:
        raise ValueError(f"{name}: {table.shape[1]} columns, a printed table takes at most 8")
    caption = CAPTIONS.get(name, name.replace("_", " "))
    long = len(table) > LONG_TABLE_ROWS
    fmt = "l" * (1 if table.shape[1] else 0) + "r" * max(0, table.shape[1] - 1)
    text = table.astype(str).to_latex(index=False, escape=True, na_rep="--", caption=caption,
                                      label=f"tab:{name.replace('_', '-')}", longtable=long, column_format=fmt,
                                      position=None if long else "htbp")
    # pandas escapes the caption too; the captions above are written as LaTeX already.
    text = text.replace(_escaped(caption), caption).replace("\\begin{table}[htbp]\n", "\\begin{table}[htbp]\n\\centering\n")
    # Typography that escape=True leaves alone: < and > are other glyphs in OT1 fonts, and a
    # number's minus sign is not a hyphen.
    text = text.replace("<", "\\textless{}").replace(">", "\\textgreater{}")
    return re.sub(r"(?<![\w$])-(?=\d)", "$-$", text)


def _escaped(text: str) -> str:
    return pd.DataFrame({"x": [text]}).to_latex(index=False, escape=True, header=False).splitlines()[3].rstrip(" \\")


def write_table(table: pd.DataFrame, out_dir: str | Path, name: str, display: pd.DataFrame | None = None) -> list[Path]:
    """Write NAME.csv (numbers, formula-safe) and NAME.md / NAME.tex (`display`, else the numbers) into out_dir."""
    out_dir = Path(out_dir)
    shown = table if display is None else display
    return [
        write_text_atomic(out_dir / f"{name}.csv", csv_safe(table).to_csv(index=False, lineterminator="\n")),
        write_text_atomic(out_dir / f"{name}.md", to_markdown(shown) + "\n"),
        write_text_atomic(out_dir / f"{name}.tex", to_latex(shown, name)),
    ]
