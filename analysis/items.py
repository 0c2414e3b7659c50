"""Per-item summary: how each image fared in each condition (catch trials excluded)."""
from __future__ import annotations

import pandas as pd

from contracts.responses import CONDITIONS


def item_table(df: pd.DataFrame) -> pd.DataFrame:
    """One row per item: per condition n, decision rate, agreement and net agreement."""
    items = pd.Index(sorted(df["item_id"].unique()), name="item_id")
    out = pd.DataFrame(index=items)
    for cond in CONDITIONS:
        g = df[df["condition"] == cond].groupby("item_id")
        n = g.size().reindex(items, fill_value=0)
        d = g["decided"].sum().reindex(items, fill_value=0)
        c = g["correct_region"].sum().reindex(items, fill_value=0)
        out[f"n_{cond}"] = n.astype(int)
        out[f"decision_rate_{cond}"] = (d / n.where(n > 0)).astype(float)
        out[f"agreement_{cond}"] = (c / d.where(d > 0)).astype(float)
        out[f"net_{cond}"] = (c / n.where(n > 0)).astype(float)
    out["net_difference"] = out["net_spade"] - out["net_dense"]
    return out.reset_index()
