"""Per-rater summary and the catch-trial exclusion rule.

A catch trial shows the crop of the correct region instead of a visualization,
so a careful rater always picks it. A rater "fails catch" when their catch
accuracy (correct choices / catch trials, "can't decide" counting as wrong) is
below `min_catch_accuracy` (default 1.0: one missed catch trial fails). Raters
without catch trials cannot fail.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

DEFAULT_MIN_CATCH_ACCURACY = 1.0


def catch_accuracy(df: pd.DataFrame) -> pd.Series:
    """Catch accuracy per rater (NaN for a rater without catch trials), indexed by rater_id."""
    raters = pd.Index(sorted(df["rater_id"].unique()), name="rater_id")
    catch = df[df["is_catch"] == 1]
    return catch.groupby("rater_id")["correct_region"].mean().reindex(raters)


def failing_catch(df: pd.DataFrame, min_catch_accuracy: float = DEFAULT_MIN_CATCH_ACCURACY) -> list[str]:
    """Rater ids whose catch accuracy is below `min_catch_accuracy`."""
    acc = catch_accuracy(df)
    # A tiny tolerance so that 2/3 >= 0.6667-style thresholds behave as written.
    return sorted(acc.index[acc.notna() & (acc < min_catch_accuracy - 1e-9)])


def _rate(num: pd.Series, den: pd.Series) -> pd.Series:
    return (num / den.where(den > 0)).astype(float)


def rater_table(df: pd.DataFrame, excluded: list[str] | tuple[str, ...] = ()) -> pd.DataFrame:
    """One row per rater: counts, catch accuracy, decision rate, agreement, net, median response time, excluded."""
    main = df[df["is_catch"] == 0]
    raters = pd.Index(sorted(df["rater_id"].unique()), name="rater_id")
    g = main.groupby("rater_id")
    out = pd.DataFrame(index=raters)
    out["n"] = g.size().reindex(raters, fill_value=0).astype(int)
    out["n_catch"] = df[df["is_catch"] == 1].groupby("rater_id").size().reindex(raters, fill_value=0).astype(int)
    out["catch_accuracy"] = catch_accuracy(df)
    decided = g["decided"].sum().reindex(raters, fill_value=0)
    correct = g["correct_region"].sum().reindex(raters, fill_value=0)
    out["decided"] = decided.astype(int)
    out["correct"] = correct.astype(int)
    out["decision_rate"] = _rate(decided, out["n"])
    out["agreement"] = _rate(correct, decided)
    out["net"] = _rate(correct, out["n"])
    for cond in ("dense", "spade"):
        sub = main[main["condition"] == cond].groupby("rater_id")
        d = sub["decided"].sum().reindex(raters, fill_value=0)
        c = sub["correct_region"].sum().reindex(raters, fill_value=0)
        n = sub.size().reindex(raters, fill_value=0)
        out[f"n_{cond}"] = n.astype(int)
        out[f"agreement_{cond}"] = _rate(c, d)
        out[f"net_{cond}"] = _rate(c, n)
    # Response time over all the rater's trials (catch included): a rushing rater rushes everywhere.
    out["median_response_ms"] = df.groupby("rater_id")["response_ms"].median().reindex(raters)
    out["excluded"] = np.isin(raters, list(excluded))
    return out.reset_index()
