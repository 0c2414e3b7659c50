"""The primary test: a design-based permutation test over whole tasks, and its inverted interval.

One visualization is a *task* (item x condition x target), and every rating of a
task shares it; the condition varies between the tasks of one image. Under the
null hypothesis that the condition makes no difference, an image's SPADE tasks
and its dense tasks are exchangeable, so swapping their condition labels (all
their ratings together) gives an equally likely study. The test

- statistic: SPADE - dense in the pooled rate (net agreement = choices of the
  target's region / ratings; or the decision rate), the headline number itself;
- reference distribution: `n_permutations` seeded draws that swap the condition
  labels of each image's tasks (both targets at once) with probability 1/2,
  independently per image (an image rated in one condition only moves its tasks
  to the other one). Swapping both targets together keeps item x condition
  effects (an image's SPADE trace is good or bad for both targets) inside the
  reference distribution; `strata="item_target"` swaps per (item, target) instead;
- p-value: two-sided, (1 + #{|T_perm| >= |T_obs|}) / (1 + n_permutations);
- interval: the permutation test inverted under a shift of the SPADE ratings
  (Hodges-Lehmann style): every difference d whose shifted test is not rejected
  at alpha. It keeps the task, rater and item clustering (they travel with the
  tasks), unlike the naive Newcombe interval.

Raters see both conditions in near equal numbers (the planner balances them),
so rater effects cancel in the observed difference; the label swaps break that
balance and carry rater effects into the reference distribution, which made the
plain test conservative when rater effects are strong (1.8% false positives at
rater SD 1.0). So by default (`within_raters=True`) the test permutes the
rater-centred outcome (each rating minus its rater's mean): the statistic is then
the within-rater difference (returned as `statistic`, within a fraction of a
point of the plain `estimate` when raters are balanced), and the interval is
centred on it. When raters mostly saw one condition only, nothing is left within
raters and the plain outcome is tested (`within_raters` False in the result).
The false-positive rate and the power are measured in bench/calibration.py
(table in bench/README.md).

Written by hand because no library implements a stratified cluster permutation
test with an inverted interval; the whole Monte Carlo distribution is two matrix
products (flip matrix x per-stratum differences), so 10,000 permutations take
milliseconds whatever the number of ratings.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.io import add_outcomes

ALPHA = 0.05
DEFAULT_PERMUTATIONS = 9999
# outcome name -> the 0/1 column of `analysis.io.add_outcomes` it is the rate of (over all ratings)
OUTCOME_COLUMNS: dict[str, str] = {"net": "correct_region", "decided": "decided"}
# What is swapped together: "item" (default) swaps the condition labels of all four tasks of an image at
# once; "item_target" swaps within each (item, target) independently, which treats the two targets of an
# image as unrelated and so leaves item x condition effects out of the reference distribution (in a first
# run of the paper-like design, item x condition SD 0.5, it rejected 7.5% of 200 null studies; 5.4% of 500
# in a second, against 5.0% for "item").
STRATA = ("item", "item_target")
METHOD = ("design-based permutation test: condition labels of whole tasks swapped within each image (both targets "
          "together), statistic SPADE - dense in the pooled rate of the rater-centred outcome, two-sided; interval "
          "by inverting the test under a shift of the SPADE ratings")


def rater_centred(df: pd.DataFrame, column: str) -> np.ndarray:
    """`column` minus its rater's mean plus the overall mean: the within-rater part of the outcome."""
    y = df[column].to_numpy(dtype=float)
    _, rater = np.unique(df["rater_id"].to_numpy(), return_inverse=True)
    mean_r = np.bincount(rater, y) / np.bincount(rater)
    return y - mean_r[rater] + y.mean()


def _stratum_sums(df: pd.DataFrame, column: str | np.ndarray, strata: str = "item",
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per stratum (an item, or an (item, target)): outcome sums and rating counts of its SPADE and dense tasks."""
    y = df[column].to_numpy(dtype=float) if isinstance(column, str) else np.asarray(column, dtype=float)
    spade = df["spade"].to_numpy(dtype=bool)
    keys = df["item_id"].astype(str)
    if strata == "item_target":
        keys = keys + "\x1f" + df["target"].astype(str)
    _, stratum = np.unique(keys.to_numpy(), return_inverse=True)
    n_strata = int(stratum.max()) + 1
    ys = np.bincount(stratum[spade], y[spade], n_strata)
    ns = np.bincount(stratum[spade], minlength=n_strata).astype(float)
    yd = np.bincount(stratum[~spade], y[~spade], n_strata)
    nd = np.bincount(stratum[~spade], minlength=n_strata).astype(float)
    return ys, ns, yd, nd


def _permuted(ys: np.ndarray, ns: np.ndarray, yd: np.ndarray, nd: np.ndarray, flips: np.ndarray) -> np.ndarray:
    """SPADE - dense of an outcome with stratum sums ys, yd (counts ns, nd) under each row of `flips` (1 = swap)."""
    spade_n = ns.sum() + flips @ (nd - ns)
    dense_n = nd.sum() + flips @ (ns - nd)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (ys.sum() + flips @ (yd - ys)) / spade_n - (yd.sum() + flips @ (ys - yd)) / dense_n


def _p_value(obs: float, perm: np.ndarray) -> float:
    ok = perm[np.isfinite(perm)]
    # A relative tolerance so that ties (frequent: rates are ratios of small integers) count as extreme.
    extreme = np.count_nonzero(np.abs(ok) >= abs(obs) - 1e-12)
    return float((1 + extreme) / (1 + len(ok)))


def _invert(obs_y: float, obs_s: float, stat_y: np.ndarray, stat_s: np.ndarray, alpha: float,
            ) -> tuple[float, float]:
    """The set of shifts d with p(d) > alpha, where p(d) tests the SPADE ratings shifted by -d; found by bisection."""
    def p_of(d: float) -> float:
        return _p_value(obs_y - d * obs_s, stat_y - d * stat_s)

    estimate = obs_y / obs_s

    spread = float(np.nanstd(stat_y)) or 0.01
    ends = []
    for sign in (-1.0, 1.0):
        inside, step = estimate, spread
        outside = estimate + sign * step
        # Rates lie in [0, 1], so their difference in [-1, 1]; beyond it nothing is to be found.
        while p_of(outside) > alpha and abs(outside) < 2:
            inside, step = outside, 2 * step
            outside = estimate + sign * step
        if p_of(outside) > alpha:
            ends.append(outside)
            continue
        for _ in range(40):  # 2^-40 of the bracket: far below the Monte Carlo error of the end points
            mid = 0.5 * (inside + outside)
            inside, outside = (mid, outside) if p_of(mid) > alpha else (inside, mid)
        ends.append(0.5 * (inside + outside))
    return max(ends[0], -1.0), min(ends[1], 1.0)


def primary_test(df: pd.DataFrame, outcome: str = "net", n_permutations: int = DEFAULT_PERMUTATIONS,
                 seed: int = 0, alpha: float = ALPHA, strata: str = "item",
                 within_raters: bool = True) -> dict[str, object]:
    """The primary test of SPADE - dense on `outcome` ("net" or "decided"); see the module docstring.

    `df`: validated responses (`analysis.io.validate_responses`), with or without the outcome
    columns; catch trials are left out. Returns estimate (SPADE - dense, a difference of
    fractions), p_value (two-sided), ci_low / ci_high (the inverted 1 - alpha interval),
    n_permutations, method; also statistic (the rater-centred difference that is tested),
    within_raters, outcome, alpha, spade_rate, dense_rate, ratings, tasks,
    strata, strata_with_both, seed, and reason (None, or why nothing could be tested, in
    which case the numbers are None).
    """
    if strata not in STRATA:
        raise ValueError(f"unknown strata {strata!r} (expected one of {', '.join(STRATA)})")
    if outcome not in OUTCOME_COLUMNS:
        raise ValueError(f"unknown outcome {outcome!r} (expected one of {', '.join(OUTCOME_COLUMNS)})")
    if not {"spade", "decided", "correct_region"} <= set(df.columns):
        df = add_outcomes(df)
    if "is_catch" in df:
        df = df[df["is_catch"].astype(int) == 0]
    out: dict[str, object] = {"outcome": outcome, "estimate": None, "p_value": None, "ci_low": None,
                              "ci_high": None, "n_permutations": int(n_permutations), "method": METHOD,
                              "alpha": float(alpha), "sided": "two-sided", "spade_rate": None, "dense_rate": None,
                              "ratings": int(len(df)), "tasks": int(df["task_id"].nunique()) if len(df) else 0,
                              "strata": 0, "strata_with_both": 0, "seed": int(seed), "reason": None}
    if len(df) == 0 or df["spade"].nunique() < 2:
        out["reason"] = "only one condition present" if len(df) else "no ratings"
        return out
    column = OUTCOME_COLUMNS[outcome]
    ys, ns, yd, nd = _stratum_sums(df, column, strata)
    estimate = float(ys.sum() / ns.sum() - yd.sum() / nd.sum())
    out.update(estimate=estimate, spade_rate=float(ys.sum() / ns.sum()), dense_rate=float(yd.sum() / nd.sum()),
               strata=int(len(ys)), strata_with_both=int(((ns > 0) & (nd > 0)).sum()),
               within_raters=bool(within_raters))
    if within_raters:
        # The rater-centred outcome: raters see both conditions about equally often, so centring leaves
        # the observed difference nearly unchanged, but swaps no longer carry rater effects from one
        # condition to the other (without it, rater SD 1.0 gave 1.8% false positives in 500 null studies).
        cs, _, cd, _ = _stratum_sums(df, rater_centred(df, column), strata)
        ss, _, sd_, _ = _stratum_sums(df, rater_centred(df, "spade"), strata)
        # The centred condition's own difference: 1 when every rater saw both conditions equally, 0 when
        # each saw one only (then nothing is left within raters, and the plain outcome is tested).
        if ss.sum() / ns.sum() - sd_.sum() / nd.sum() >= 0.5:
            ys, yd = cs, cd
        else:
            out["within_raters"] = False
    if not out["within_raters"]:
        ss, sd_ = ns.copy(), np.zeros_like(nd)
    if n_permutations < 1:
        out["reason"] = "no permutations asked for"
        return out
    rng = np.random.default_rng(seed)
    # In chunks of about a million flips, so that memory stays small with thousands of images.
    chunk = max(1, 1_000_000 // len(ys))
    stat_y, stat_s = [], []
    for start in range(0, n_permutations, chunk):
        flips = rng.integers(0, 2, size=(min(chunk, n_permutations - start), len(ys)), dtype=np.int8).astype(float)
        stat_y.append(_permuted(ys, ns, yd, nd, flips))
        stat_s.append(_permuted(ss, ns, sd_, nd, flips))
    stat_y, stat_s = np.concatenate(stat_y), np.concatenate(stat_s)
    obs_y = float(ys.sum() / ns.sum() - yd.sum() / nd.sum())
    obs_s = float(ss.sum() / ns.sum() - sd_.sum() / nd.sum())
    out["statistic"] = obs_y
    out["p_value"] = _p_value(obs_y, stat_y)
    out["ci_low"], out["ci_high"] = _invert(obs_y, obs_s, stat_y, stat_s, alpha)
    return out


def primary_tests(df: pd.DataFrame, n_permutations: int = DEFAULT_PERMUTATIONS, seed: int = 0,
                  alpha: float = ALPHA) -> dict[str, dict[str, object]]:
    """`primary_test` for net agreement (the primary outcome) and for deciding (secondary), same seed."""
    return {outcome: primary_test(df, outcome, n_permutations, seed, alpha) for outcome in OUTCOME_COLUMNS}
