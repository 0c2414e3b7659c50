"""Per-item summary: how each image fared in each condition (catch trials excluded)."""
from __future__ import annotations

import pandas as pd

from analysis.metrics import RATE_COLUMNS, rates
from contracts.responses import CONDITIONS


def item_table(df: pd.DataFrame) -> pd.DataFrame:
    """One row per item: per condition n, decision rate, agreement and net agreement."""
    items = pd.Index(sorted(df["item_id"].unique()), name="item_id")
    out = pd.DataFrame(index=items)
    for cond in CONDITIONS:
        per = rates(df[df["condition"] == cond], "item_id", index=items)
        out[f"n_{cond}"] = per["n"]
        for m in RATE_COLUMNS:
            out[f"{m}_{cond}"] = per[m]
    out["net_difference"] = out["net_spade"] - out["net_dense"]
    return out.reset_index()
