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


def _stratum_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per (item, target) stratum and condition: counts of target region, other region, can't decide."""
    table = task_counts(df)
    keys = df.drop_duplicates("task_id").set_index("task_id")[["item_id", "target", "condition"]]
    return table.join(keys).set_index(["item_id", "target", "condition"]).sort_index()


def _kappa(counts: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Fleiss' kappa of tasks with equal numbers of ratings, for each row of weights `w` (replicates x tasks)."""
    m = counts.sum(axis=1)[0]
    p_task = ((counts ** 2).sum(axis=1) - m) / (m * (m - 1))
    total = w.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        p_bar = (w @ p_task) / total
        p_cat = (w @ counts) / (total * m)[:, None]
        p_e = (p_cat ** 2).sum(axis=1)
        return (p_bar - p_e) / (1 - p_e)


def _alpha(counts: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Nominal Krippendorff's alpha of tasks (>= 2 values each), for each row of weights `w`."""
    m_u = counts.sum(axis=1)
    within = (m_u ** 2 - (counts ** 2).sum(axis=1)) / (m_u - 1)  # disagreeing ordered pairs / (m_u - 1)
    n_c = w @ counts
    n = n_c.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return 1 - (n - 1) * (w @ within) / (n ** 2 - (n_c ** 2).sum(axis=1))


def _pairs(counts: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Share of agreeing pairs among decided pairs, and its chance level (independent raters), per row of `w`."""
    c, o = counts[:, 0], counts[:, 1]
    agree, disagree = c * (c - 1) / 2 + o * (o - 1) / 2, c * o
    with np.errstate(invalid="ignore", divide="ignore"):
        share = (w @ agree) / (w @ (agree + disagree))
        p = (w @ c) / (w @ (c + o))
        return share, p ** 2 + (1 - p) ** 2


def comparable_agreement(df: pd.DataFrame, n_boot: int = 2000, seed: int = 0) -> dict[str, object]:
    """Chance-corrected agreement per condition on the same (item, target) strata, task-bootstrap intervals.

    Raw pair counts grow with the ratings per task (a design choice), and the conditions' task
    sets differ; so both conditions are compared here on the strata whose dense AND SPADE tasks
    have >= 2 ratings (pair agreement, its chance level, Krippendorff's alpha with "can't decide"
    missing), and Fleiss' kappa (3 categories) on the strata whose two tasks have the same number
    m of ratings (m: the most strata). Intervals: percentile, resampling strata (both tasks
    together). Vectorised over replicates by hand; the point estimates equal statsmodels'
    `fleiss_kappa` and `krippendorff.alpha` (tests/analysis/test_interrater.py).
    """
    cols = [TARGET_REGION, OTHER_REGION, UNDECIDED]
    table = _stratum_table(df)
    wide = table[cols].unstack("condition", fill_value=0)
    both = {cond: wide.xs(cond, axis=1, level="condition")[cols].to_numpy() if cond in
            wide.columns.get_level_values("condition") else np.zeros((len(wide), 3), int) for cond in CONDITIONS}
    rated = {cond: both[cond].sum(axis=1) for cond in CONDITIONS}
    decided = {cond: both[cond][:, :2].sum(axis=1) for cond in CONDITIONS}
    pairable = (decided["dense"] >= 2) & (decided["spade"] >= 2)
    same = (rated["dense"] == rated["spade"]) & (rated["dense"] >= 2)
    sizes = pd.Series(rated["dense"][same]).value_counts()
    m = int(max(sizes[sizes == sizes.max()].index)) if len(sizes) else None
    equal = same & (rated["dense"] == m) if m else np.zeros(len(wide), bool)
    out: dict[str, object] = {"strata_pairable": int(pairable.sum()), "strata_equal": int(equal.sum()),
                              "ratings_per_task_equal": m, "replicates": int(n_boot), "seed": int(seed),
                              "method": "strata (item, target) rated >= 2 times (decided) in both conditions; "
                                        "Fleiss' kappa on strata with m ratings of each task; "
                                        "percentile intervals resampling strata"}
    rng = np.random.default_rng(seed)
    results: dict[str, dict[str, np.ndarray]] = {}
    for key, mask, fn in (("pair_agreement", pairable, None), ("krippendorff_alpha", pairable, _alpha),
                          ("fleiss_kappa", equal, _kappa)):
        k = int(mask.sum())
        if k == 0 or (key == "fleiss_kappa" and k < 2):
            names = [*CONDITIONS, *(f"{c}_chance" for c in CONDITIONS)] if fn is None else list(CONDITIONS)
            results[key] = {name: np.array([np.nan]) for name in names}
            continue
        res: dict[str, list[np.ndarray]] = {}
        # Row 0 weighs every stratum once (the estimate); then the replicates, in chunks of about
        # 4 million weights so that memory stays small with thousands of strata.
        chunk = max(1, 4_000_000 // k)
        blocks = [np.ones((1, k))] + [rng.multinomial(k, np.full(k, 1.0 / k), size=min(chunk, n_boot - start))
                                      for start in range(0, n_boot, chunk)]
        for w in blocks:
            w = w.astype(float)
            for cond in CONDITIONS:
                counts = both[cond][mask].astype(float)
                if key == "krippendorff_alpha":
                    counts = counts[:, :2]  # "can't decide" as missing: tasks keep their decided ratings only
                if fn is None:
                    share, chance = _pairs(counts, w)
                    res.setdefault(cond, []).append(share)
                    res.setdefault(f"{cond}_chance", []).append(chance)
                else:
                    res.setdefault(cond, []).append(fn(counts, w))
        res = {name: np.concatenate(parts) for name, parts in res.items()}
        results[key] = res
    for key, res in results.items():
        entry: dict[str, object] = {}
        for cond in CONDITIONS:
            entry[cond] = _point_ci(res[cond])
            if f"{cond}_chance" in res:
                entry[f"{cond}_chance"] = _point_ci(res[f"{cond}_chance"])
        entry["difference"] = _point_ci(res["spade"] - res["dense"])
        out[key] = entry
    return out


def _point_ci(values: np.ndarray) -> dict[str, object]:
    """Row 0 is the estimate, the rest bootstrap replicates: estimate and percentile 95% interval (None if undefined)."""
    est = values[0]
    rest = values[1:][np.isfinite(values[1:])]
    return {"estimate": float(est) if np.isfinite(est) else None,
            "ci": [float(np.percentile(rest, 2.5)), float(np.percentile(rest, 97.5))] if len(rest) >= 20 else None}
