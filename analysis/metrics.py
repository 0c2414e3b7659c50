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


def _finite(x: float) -> float | None:
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


def counts(df: pd.DataFrame) -> dict[str, int]:
    """n, decided, undecided and correct of a table with outcome columns (see `io.add_outcomes`)."""
    n = int(len(df))
    decided = int(df["decided"].sum())
    correct = int((df["correct_region"] * df["decided"]).sum())
    return {"n": n, "decided": decided, "undecided": n - decided, "correct": correct}


def proportions(c: dict[str, int], alpha: float = ALPHA) -> dict[str, object]:
    """Decision rate, agreement and net agreement with Wilson intervals, from `counts`."""
    out: dict[str, object] = {}
    for name, (num, den) in METRICS.items():
        k = c["correct"] if num == "correct_region" else c["decided"]
        m = c["n"] if den is None else c["decided"]
        out[name] = ratio(k, m)
        out[f"{name}_ci"] = wilson(k, m, alpha)
    # Sensitivity for "can't decide": count it as a coin flip instead of a miss.
    out["net_undecided_as_guess"] = ratio(c["correct"] + 0.5 * c["undecided"], c["n"])
    return out


def condition_metrics(df: pd.DataFrame, alpha: float = ALPHA) -> dict[str, dict[str, object]]:
    """Counts and proportions for each condition (dense, spade)."""
    result = {}
    for cond in CONDITIONS:
        sub = df[df["condition"] == cond]
        c = counts(sub)
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
        out["z"], out["p"] = _finite(z), _finite(p)
    return out


def differences(per_condition: dict[str, dict[str, object]], alpha: float = ALPHA) -> dict[str, dict[str, object]]:
    """SPADE - dense difference of each metric (see `difference`)."""
    s, d = per_condition["spade"], per_condition["dense"]
    return {m: difference(*_num_den(s, m), *_num_den(d, m), alpha=alpha) for m in METRICS}
