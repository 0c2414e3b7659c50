"""A/B position bias: do raters favour the region shown as A, whatever it is?

Which region is A is randomized per rater, so the share of decided answers that
pick A should be near 1/2 (exact binomial test, scipy), and agreement should not
depend on whether the target's region was shown as A or as B (descriptive
difference with a Newcombe interval from `analysis.metrics`).
"""
from __future__ import annotations

import pandas as pd
from scipy.stats import binomtest

from analysis.metrics import finite, difference, rates, ratio, wilson


def position_bias(df: pd.DataFrame) -> dict[str, object]:
    """Share of decided answers choosing A (binomial test vs 1/2) and agreement by the target's side."""
    decided = df[df["decided"] == 1]
    n = int(len(decided))
    chose_a = int((decided["choice"] == "A").sum())
    out: dict[str, object] = {
        "decided": n, "chose_a": chose_a, "share_a": ratio(chose_a, n), "share_a_ci": wilson(chose_a, n),
        "binomial_p": float(binomtest(chose_a, n, 0.5).pvalue) if n else None,
        "target_shown_as_a": ratio(int((df["correct"] == "A").sum()), int(len(df))),
    }
    by_side = rates(df, "correct", index=pd.Index(["A", "B"], name="correct"))
    for side in ("A", "B"):
        out[f"agreement_target_{side}"] = finite(by_side.loc[side, "agreement"])
    out["agreement_difference_a_minus_b"] = difference(
        *(int(by_side.loc[side, k]) for side in ("A", "B") for k in ("correct", "decided")))
    return out
