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

from analysis.metrics import rates
from contracts.responses import CONDITIONS

DEFAULT_MIN_CATCH_ACCURACY = 1.0


def catch_accuracy(df: pd.DataFrame) -> pd.Series:
    """Catch accuracy per rater (NaN for a rater without catch trials), indexed by rater_id."""
    raters = pd.Index(sorted(df["rater_id"].unique()), name="rater_id")
    # Right answers / catch trials: the net agreement of the catch trials ("can't decide" is a miss).
    return rates(df[df["is_catch"] == 1], "rater_id").reindex(raters)["net"]


def failing_catch(df: pd.DataFrame, min_catch_accuracy: float = DEFAULT_MIN_CATCH_ACCURACY) -> list[str]:
    """Rater ids whose catch accuracy is below `min_catch_accuracy`."""
    acc = catch_accuracy(df)
    # A tiny tolerance so that 2/3 >= 0.6667-style thresholds behave as written.
    return sorted(acc.index[acc.notna() & (acc < min_catch_accuracy - 1e-9)])


def rater_table(df: pd.DataFrame, excluded: list[str] | tuple[str, ...] = ()) -> pd.DataFrame:
    """One row per rater: counts, catch accuracy, decision rate, agreement, net, median response time, excluded."""
    main = df[df["is_catch"] == 0]
    raters = pd.Index(sorted(df["rater_id"].unique()), name="rater_id")
    overall = rates(main, "rater_id", index=raters)
    out = pd.DataFrame(index=raters)
    out["n"] = overall["n"]
    out["n_catch"] = df[df["is_catch"] == 1].groupby("rater_id").size().reindex(raters, fill_value=0).astype(int)
    out["catch_accuracy"] = catch_accuracy(df)
    for col in ("decided", "correct", "decision_rate", "agreement", "net"):
        out[col] = overall[col]
    for cond in CONDITIONS:
        per = rates(main[main["condition"] == cond], "rater_id", index=raters)
        out[f"n_{cond}"] = per["n"]
        out[f"agreement_{cond}"] = per["agreement"]
        out[f"net_{cond}"] = per["net"]
    # Response time over all the rater's trials (catch included): a rushing rater rushes everywhere.
    out["median_response_ms"] = df.groupby("rater_id")["response_ms"].median().reindex(raters)
    out["excluded"] = np.isin(raters, list(excluded))
    return out.reset_index()
