"""The study's metrics per condition and their SPADE - dense differences.

Definitions (as in the paper, section 4.2.2; catch trials are excluded before):
- decision rate = decided / n, where decided means not "can't decide";
- agreement = choices of the target class's region / decided (agreement with Score-CAM);
- net agreement = choices of the target class's region / n (= decision rate x agreement).
Each proportion carries a Wilson 95% interval; differences carry a Newcombe
(hybrid score) interval and a pooled two-proportion z-test, both from
statsmodels. The differences are descriptive: one rater gives many ratings, so
ratings are not independent (see `analysis.models` for the clustered tests).
"""
from __future__ import annotations

import math

import pandas as pd
from statsmodels.stats.proportion import confint_proportions_2indep, proportion_confint, proportions_ztest

from contracts.responses import CONDITIONS

ALPHA = 0.05
# metric name -> (numerator column, denominator: None = all ratings, else a 0/1 column)
METRICS: dict[str, tuple[str, str | None]] = {
    "decision_rate": ("decided", None),
    "agreement": ("correct_region", "decided"),
    "net": ("correct_region", None),
}
DIFFERENCE_NOTE = "descriptive: ratings are not independent (several per rater and per item)"


def finite(x: float | None) -> float | None:
    """x as a float, or None when it is None, NaN or infinite (JSON has no NaN)."""
    return float(x) if x is not None and math.isfinite(x) else None


def ratio(num: int, den: int) -> float | None:
    """num / den, or None when den is 0."""
    return num / den if den else None


def wilson(count: int, nobs: int, alpha: float = ALPHA) -> tuple[float, float] | None:
    """Wilson score interval for count / nobs (statsmodels), or None when nobs is 0."""
    if nobs == 0:
        return None
    lo, hi = proportion_confint(count, nobs, alpha=alpha, method="wilson")
    return float(lo), float(hi)


COUNT_COLUMNS = ("n", "decided", "undecided", "correct")
RATE_COLUMNS = ("decision_rate", "agreement", "net")


def rates_from_counts(table: pd.DataFrame) -> pd.DataFrame:
    """Add undecided and the three rates to a table of n, decided and correct counts (NaN where undefined)."""
    table = table.astype(int)
    table["undecided"] = table["n"] - table["decided"]
    n, decided = table["n"].where(table["n"] > 0), table["decided"].where(table["decided"] > 0)
    table["decision_rate"] = (table["decided"] / n).astype(float)
    table["agreement"] = (table["correct"] / decided).astype(float)
    table["net"] = (table["correct"] / n).astype(float)
    return table[list(COUNT_COLUMNS + RATE_COLUMNS)]


def rates(df: pd.DataFrame, by: str | list[str] | tuple[str, ...] = (), index: object = None) -> pd.DataFrame:
    """Counts (n, decided, undecided, correct) and rates (decision rate, agreement, net) per group of `by`.

    The one place the study's rates are computed (per condition, rater, item, ...): the summary,
    tables, figures and simulations take them from here. `df` has the outcome columns of
    `analysis.io.add_outcomes`; `by` names the grouping columns (none: one row); `index` lists
    the groups to report even when absent (zero counts).
    """
    by = [by] if isinstance(by, str) else list(by)
    cells = pd.DataFrame({"n": 1, "decided": df["decided"].astype(int),
                          "correct": (df["correct_region"] * df["decided"]).astype(int)}, index=df.index)
    if by:
        # Keys as Series, not columns of `cells`: a grouping column may itself be named "correct".
        table = cells.groupby([df[col] for col in by], sort=True).sum()
    else:
        table = cells[["n", "decided", "correct"]].sum().to_frame().T
    if index is not None:
        table = table.reindex(index, fill_value=0)
    return rates_from_counts(table)


def condition_rates(df: pd.DataFrame) -> pd.DataFrame:
    """`rates` per condition, both conditions always present (index dense, spade)."""
    return rates(df, "condition", index=pd.Index(CONDITIONS, name="condition"))


def counts(df: pd.DataFrame) -> dict[str, int]:
    """n, decided, undecided and correct of a table with outcome columns (see `io.add_outcomes`)."""
    row = rates(df).iloc[0]
    return {k: int(row[k]) for k in COUNT_COLUMNS}


def proportions(c: dict[str, int], alpha: float = ALPHA) -> dict[str, object]:
    """Decision rate, agreement and net agreement with Wilson intervals, from `counts`."""
    row = rates_from_counts(pd.DataFrame([{k: c[k] for k in ("n", "decided", "correct")}])).iloc[0]
    out: dict[str, object] = {}
    for name in METRICS:
        out[name] = finite(row[name])
        out[f"{name}_ci"] = wilson(*_num_den(c, name), alpha)
    # Sensitivity for "can't decide": count it as a coin flip instead of a miss.
    out["net_undecided_as_guess"] = ratio(c["correct"] + 0.5 * c["undecided"], c["n"])
    return out


def condition_metrics(df: pd.DataFrame, alpha: float = ALPHA) -> dict[str, dict[str, object]]:
    """Counts and proportions for each condition (dense, spade)."""
    table = condition_rates(df)
    result = {}
    for cond in CONDITIONS:
        sub = df[df["condition"] == cond]
        c = {k: int(table.loc[cond, k]) for k in COUNT_COLUMNS}
        result[cond] = {**c, **proportions(c, alpha),
                        "raters": int(sub["rater_id"].nunique()), "items": int(sub["item_id"].nunique()),
                        "tasks": int(sub["task_id"].nunique())}
    return result


def _num_den(c: dict[str, int], metric: str) -> tuple[int, int]:
    num, den = METRICS[metric]
    k = c["correct"] if num == "correct_region" else c["decided"]
    return k, (c["n"] if den is None else c["decided"])


def difference(k1: int, n1: int, k2: int, n2: int, alpha: float = ALPHA) -> dict[str, object]:
    """k1/n1 - k2/n2 with a Newcombe interval and a pooled two-proportion z-test (None where undefined)."""
    out: dict[str, object] = {"estimate": None, "ci": None, "z": None, "p": None,
                              "method": "Newcombe hybrid score interval; pooled two-proportion z-test",
                              "note": DIFFERENCE_NOTE}
    if n1 == 0 or n2 == 0:
        return out
    out["estimate"] = k1 / n1 - k2 / n2
    lo, hi = confint_proportions_2indep(k1, n1, k2, n2, method="newcomb", compare="diff", alpha=alpha)
    out["ci"] = [float(lo), float(hi)]
    pooled = (k1 + k2) / (n1 + n2)
    if 0 < pooled < 1:  # the pooled z-test has no variance when every answer is the same
        z, p = proportions_ztest([k1, k2], [n1, n2])
        out["z"], out["p"] = finite(z), finite(p)
    return out


def differences(per_condition: dict[str, dict[str, object]], alpha: float = ALPHA) -> dict[str, dict[str, object]]:
    """SPADE - dense difference of each metric (see `difference`)."""
    s, d = per_condition["spade"], per_condition["dense"]
    return {m: difference(*_num_den(s, m), *_num_den(d, m), alpha=alpha) for m in METRICS}
