"""Agreement between raters who rated the same task.

Raters are compared on the REGION they chose (the target class's region or the
other one), never on the letter: which region is shown as A is randomized per
rater. The pair counts are those of the authors' answer in the review: among
pairs of raters who both decided on the same task, how many chose the same
region (agree) and how many did not (disagree). Krippendorff's alpha (package
`krippendorff`, nominal) is given with "can't decide" as missing and as a third
category; Fleiss' kappa (statsmodels) needs the same number of ratings per task,
so it is computed on the tasks that have the most common number of ratings.
"""
from __future__ import annotations

from math import comb

import krippendorff
import numpy as np
import pandas as pd
from statsmodels.stats.inter_rater import fleiss_kappa

from contracts.responses import CONDITIONS
from analysis.metrics import ratio

# Category columns of the per-task count table.
TARGET_REGION, OTHER_REGION, UNDECIDED = "target_region", "other_region", "undecided"


def task_counts(df: pd.DataFrame) -> pd.DataFrame:
    """Per task: how many raters chose the target's region, the other region, or could not decide."""
    region = np.where(df["decided"] == 0, UNDECIDED, np.where(df["correct_region"] == 1, TARGET_REGION, OTHER_REGION))
    table = pd.crosstab(df["task_id"], pd.Categorical(region, categories=[TARGET_REGION, OTHER_REGION, UNDECIDED]),
                        dropna=False)
    table.columns = [str(c) for c in table.columns]
    return table.astype(int)


def pair_counts(table: pd.DataFrame) -> tuple[int, int]:
    """(agree, disagree) pairs of raters who both decided on the same task, from `task_counts`."""
    c = table[TARGET_REGION].to_numpy()
    w = table[OTHER_REGION].to_numpy()
    agree = int(sum(comb(int(a), 2) + comb(int(b), 2) for a, b in zip(c, w)))
    return agree, int((c * w).sum())


def krippendorff_alpha(table: pd.DataFrame, undecided: str = "missing") -> float | None:
    """Nominal Krippendorff's alpha over tasks; `undecided` is "missing" or "category"; None if undefined."""
    cols = [TARGET_REGION, OTHER_REGION] + ([UNDECIDED] if undecided == "category" else [])
    if undecided not in ("missing", "category"):
        raise ValueError(f"undecided must be 'missing' or 'category', not {undecided!r}")
    counts = table[cols].to_numpy()
    pairable = counts[counts.sum(axis=1) >= 2]
    # Alpha needs at least one task with two values and more than one value used overall.
    if len(pairable) == 0 or (pairable.sum(axis=0) > 0).sum() < 2:
        return None
    value = float(krippendorff.alpha(value_counts=pairable, level_of_measurement="nominal"))
    return value if np.isfinite(value) else None


def fleiss(table: pd.DataFrame) -> dict[str, object]:
    """Fleiss' kappa (3 categories, "can't decide" included) on the tasks with the modal number (>= 2) of ratings."""
    per_task = table.sum(axis=1)
    rated = per_task[per_task >= 2]
    if rated.empty:
        return {"fleiss_kappa": None, "fleiss_tasks": 0, "fleiss_ratings_per_task": None, "fleiss_all_tasks": False}
    counts = rated.value_counts()
    # The most common number of ratings; the larger one on a tie, for the more informative subset.
    m = int(max(counts[counts == counts.max()].index))
    sub = table.loc[per_task == m]
    kappa = None
    if (sub.sum(axis=0) > 0).sum() >= 2:
        value = float(fleiss_kappa(sub.to_numpy(), method="fleiss"))
        kappa = value if np.isfinite(value) else None
    return {"fleiss_kappa": kappa, "fleiss_tasks": int(len(sub)), "fleiss_ratings_per_task": m,
            "fleiss_all_tasks": bool(len(rated) == len(sub))}


def condition_agreement(df: pd.DataFrame) -> dict[str, object]:
    """Pair counts, ratio, alpha and kappa for the ratings of one condition."""
    table = task_counts(df)
    agree, disagree = pair_counts(table)
    decided_per_task = table[TARGET_REGION] + table[OTHER_REGION]
    return {
        "pairs_agree": agree,
        "pairs_disagree": disagree,
        "pairs_ratio": ratio(agree, disagree),
        "pair_agreement": ratio(agree, agree + disagree),
        "tasks": int(len(table)),
        "tasks_with_pairs": int((decided_per_task >= 2).sum()),
        "krippendorff_alpha_undecided_missing": krippendorff_alpha(table, "missing"),
        "krippendorff_alpha_undecided_category": krippendorff_alpha(table, "category"),
        **fleiss(table),
    }


def inter_rater(df: pd.DataFrame) -> dict[str, dict[str, object]]:
    """`condition_agreement` for each condition."""
    return {cond: condition_agreement(df[df["condition"] == cond]) for cond in CONDITIONS}
