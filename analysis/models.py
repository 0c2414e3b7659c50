"""Secondary tests of the SPADE - dense differences that respect the study's clustering.

Ratings are nested in raters and crossed with items (each image appears in both
conditions, rated by different raters), and all ratings of one task (item x
condition x target) share one visualization, so they are not independent. The
primary test is the permutation test of `analysis.permutation`; here:
- Secondary: a logistic mixed model with crossed random intercepts,
  `y ~ spade + (1|rater) + (1|item) + (1|task) + (1|item:condition)`
  (statsmodels `BinomialBayesMixedGLM`, variational Bayes, sparse indicators),
  for net correctness and for deciding. Its interval is the 95% posterior
  interval and its z = posterior mean / posterior SD. Against lme4's glmer
  (Laplace; tests/reference/) the estimates agree within 0.03 log-odds, but with
  the task terms mean-field VB understates the SD by up to 17% where the task
  variance is large, so its p-values run small (calibration: bench/README.md).
  Skipped above MIXED_MAX_RATINGS ratings.
- Robustness: GEE logistic regression clustered by rater (exchangeable working
  correlation, robust standard errors).
- A seeded two-way cluster bootstrap over raters and items of the differences
  in decision rate, agreement and net agreement. With crossed, sparse data
  (each rater sees a third of the images) the two-way "pigeonhole" bootstrap
  counts the rating-level noise more than once and is conservative (Owen 2007);
  the one-way bootstraps over raters only and over items only are reported
  beside it, and each of them understates the other source of variation.
"""
from __future__ import annotations

import warnings
from typing import Callable

import numpy as np
import pandas as pd
import statsmodels.api as sm
import statsmodels.formula.api as smf
from scipy import sparse
from scipy.stats import norm
from statsmodels.genmod.bayes_mixed_glm import BinomialBayesMixedGLM
from statsmodels.tools.sm_exceptions import ConvergenceWarning, PerfectSeparationWarning

# outcome name -> (0/1 column, rows it is defined on: None = all, else a 0/1 column)
OUTCOMES: dict[str, tuple[str, str | None]] = {
    "net": ("correct_region", None),
    "decided": ("decided", None),
}
Z95 = float(norm.ppf(0.975))
# Random intercepts of the secondary model, in lme4 terms (1|rater) + (1|item) + (1|task) + (1|item:condition):
# a task (item x condition x target) is one visualization, which every rating of it shares.
RANDOM_TERMS: tuple[str, ...] = ("rater", "item", "task", "item_condition")
TERM_COLUMNS: dict[str, str] = {"rater": "rater_id", "item": "item_id", "task": "task_id",
                                "item_condition": "item_condition"}


def _skip(reason: str) -> dict[str, object]:
    return {"fitted": False, "reason": reason}


def _check(df: pd.DataFrame, y: str) -> str | None:
    if df["spade"].nunique() < 2:
        return "only one condition present"
    if df[y].nunique() < 2:
        return f"every rating has the same {y}"
    return None


def _random_effects(data: pd.DataFrame, terms: tuple[str, ...]) -> tuple[sparse.csr_array, np.ndarray]:
    """The sparse indicator matrix of the random intercepts of `terms` (one block per term) and its `ident`."""
    blocks, ident = [], []
    for k, term in enumerate(terms):
        _, idx = np.unique(data[term].to_numpy(), return_inverse=True)
        blocks.append(sparse.csr_array((np.ones(len(idx)), (np.arange(len(idx)), idx)), shape=(len(idx), idx.max() + 1)))
        ident.append(np.full(idx.max() + 1, k))
    return sparse.hstack(blocks, format="csr"), np.concatenate(ident)


def mixed_logit(df: pd.DataFrame, outcome: str = "net", seed: int = 0, task_terms: bool = True) -> dict[str, object]:
    """Secondary model: logistic mixed `y ~ spade` with random intercepts for rater, item and (default) task, item:condition."""
    y, _ = OUTCOMES[outcome]
    data = df[[y, "spade", "rater_id", "item_id", "task_id"]].rename(columns={y: "y"})
    reason = _check(data, "y")
    if reason:
        return _skip(reason)
    if data["rater_id"].nunique() < 2:
        return _skip("fewer than 2 raters: a rater variance cannot be estimated")
    data = data.assign(item_condition=data["item_id"].astype(str) + "/" + data["spade"].astype(str))
    terms = RANDOM_TERMS if task_terms else RANDOM_TERMS[:2]
    # Indicator matrices built sparse: the formula interface builds them dense first (200,000 ratings x
    # 5,000 raters is 8 GB), statsmodels then stores them sparse anyway.
    exog_vc, ident = _random_effects(data, tuple(TERM_COLUMNS[t] for t in terms))
    exog = np.column_stack([np.ones(len(data)), data["spade"].to_numpy(dtype=float)])
    model = BinomialBayesMixedGLM(data["y"].to_numpy(dtype=float), exog, exog_vc, ident,
                                  fep_names=["Intercept", "spade"], vcp_names=list(terms))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        # scale_fe centres the 0/1 condition column: mean-field VB treats the intercept and
        # the SPADE effect as independent, and with an uncentred 0/1 column (correlation
        # ~ -0.7) it understates the effect's SD by ~30% (z-test at 5% rejected 19% of
        # null simulations; centred: 7-9%).
        # L-BFGS-B instead of the default BFGS: the same optimum, but BFGS keeps a dense
        # inverse Hessian over every random effect and is ~6x slower at 500 raters.
        # The seeded rng makes the starting point (and so the result) reproducible.
        fit = model.fit_vb(fit_method="L-BFGS-B", scale_fe=True, rng=np.random.default_rng(seed))
    mean, sd = float(fit.fe_mean[1]), float(fit.fe_sd[1])
    z = mean / sd
    out = {
        "fitted": True,
        "model": "BinomialBayesMixedGLM, variational Bayes: y ~ spade + " + " + ".join(
            f"(1 | {t.replace('_', ':')})" for t in terms),
        "outcome": outcome,
        "n": int(len(data)), "raters": int(data["rater_id"].nunique()), "items": int(data["item_id"].nunique()),
        "tasks": int(data["task_id"].nunique()),
        "log_odds": mean, "sd": sd, "ci": [mean - Z95 * sd, mean + Z95 * sd],
        "odds_ratio": float(np.exp(mean)), "odds_ratio_ci": [float(np.exp(mean - Z95 * sd)), float(np.exp(mean + Z95 * sd))],
        "z": z, "p": float(2 * norm.sf(abs(z))),
        "converged": bool(fit.optim_retvals.success),
    }
    for k, term in enumerate(terms):  # statsmodels' variance parameters are log standard deviations
        out[f"{term}_sd"] = float(np.exp(fit.vcp_mean[k]))
    return out


def gee_logit(df: pd.DataFrame, outcome: str = "net") -> dict[str, object]:
    """Robustness check: GEE logistic regression `y ~ spade` clustered by rater (robust SEs)."""
    y, _ = OUTCOMES[outcome]
    data = df[[y, "spade", "rater_id"]].rename(columns={y: "y"})
    reason = _check(data, "y")
    if reason:
        return _skip(reason)
    if data["rater_id"].nunique() < 2:
        return _skip("fewer than 2 raters")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", PerfectSeparationWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        fit = smf.gee("y ~ spade", groups="rater_id", data=data, family=sm.families.Binomial(),
                      cov_struct=sm.cov_struct.Exchangeable()).fit()
    est, se = float(fit.params["spade"]), float(fit.bse["spade"])
    if not (np.isfinite(est) and np.isfinite(se)) or se == 0:
        return _skip("GEE did not give a finite estimate")
    return {
        "fitted": True,
        "model": "GEE logistic, exchangeable within rater, robust SE: y ~ spade",
        "outcome": outcome,
        "n": int(len(data)), "clusters": int(data["rater_id"].nunique()),
        "log_odds": est, "se": se, "ci": [est - Z95 * se, est + Z95 * se],
        "odds_ratio": float(np.exp(est)), "odds_ratio_ci": [float(np.exp(est - Z95 * se)), float(np.exp(est + Z95 * se))],
        "z": est / se, "p": float(fit.pvalues["spade"]),
        "working_correlation": float(fit.cov_struct.dep_params),
    }


BOOTSTRAP_SCHEMES: dict[str, tuple[bool, bool]] = {
    # name -> (resample raters, resample items)
    "raters_and_items": (True, True),
    "raters": (True, False),
    "items": (False, True),
}


def cluster_bootstrap(df: pd.DataFrame, n_boot: int = 2000, seed: int = 0, raters: bool = True, items: bool = True,
                      chunk: int = 500) -> dict[str, object]:
    """Cluster bootstrap of the SPADE - dense differences, resampling raters and/or items; seeded.

    With both (the two-way "pigeonhole" bootstrap) a replicate keeps the rows of the
    drawn raters x drawn items, each weighted by the product of the multiplicities.
    """
    rater_ids, r_idx = np.unique(df["rater_id"].to_numpy(), return_inverse=True)
    item_ids, i_idx = np.unique(df["item_id"].to_numpy(), return_inverse=True)
    R, I = len(rater_ids), len(item_ids)
    # Per condition, rater x item sums of n, decided and correct: a replicate's weighted
    # totals are then sum_ri m_r q_i X_ri = rowsum((M @ X) * Q), with M, Q the multiplicities.
    cells = {}
    for s in (0, 1):
        mask = df["spade"].to_numpy() == s
        for name, col in (("n", None), ("decided", "decided"), ("correct", "correct_region")):
            x = np.ones(mask.sum()) if col is None else df[col].to_numpy()[mask].astype(float)
            mat = np.zeros((R, I))
            np.add.at(mat, (r_idx[mask], i_idx[mask]), x)
            cells[s, name] = mat
    rng = np.random.default_rng(seed)
    stats: dict[str, list[np.ndarray]] = {k: [] for k in ("decision_rate", "agreement", "net")}
    done = 0
    while done < n_boot:
        b = min(chunk, n_boot - done)
        m = rng.multinomial(R, np.full(R, 1.0 / R), size=b).astype(float) if raters else np.ones((b, R))
        q = rng.multinomial(I, np.full(I, 1.0 / I), size=b).astype(float) if items else np.ones((b, I))
        tot = {key: ((m @ mat) * q).sum(axis=1) for key, mat in cells.items()}
        with np.errstate(invalid="ignore", divide="ignore"):
            rate = {s: {"decision_rate": tot[s, "decided"] / tot[s, "n"],
                        "agreement": tot[s, "correct"] / tot[s, "decided"],
                        "net": tot[s, "correct"] / tot[s, "n"]} for s in (0, 1)}
        for k in stats:
            stats[k].append(rate[1][k] - rate[0][k])
        done += b
    over = " and ".join(w for w, on in (("raters", raters), ("items", items)) if on) or "nothing"
    out: dict[str, object] = {"replicates": n_boot, "seed": seed, "raters": R, "items": I,
                              "method": f"cluster bootstrap resampling {over}, percentile interval"}
    for k, chunks in stats.items():
        v = np.concatenate(chunks) if chunks else np.array([])
        ok = v[np.isfinite(v)]
        out[k] = {
            "ci": [float(np.percentile(ok, 2.5)), float(np.percentile(ok, 97.5))] if len(ok) else None,
            "se": float(ok.std(ddof=1)) if len(ok) > 1 else None,
            "share_at_or_below_zero": float((ok <= 0).mean()) if len(ok) else None,
            "undefined_replicates": int(len(v) - len(ok)),
        }
    return out


# Above this many ratings the secondary mixed model is skipped: statsmodels' variational fit with the task
# terms grows to minutes (and the permutation test, the primary, needs no model). Its reason says so.
MIXED_MAX_RATINGS = 50_000


def _mixed_or_skip(df: pd.DataFrame, outcome: str, seed: int) -> dict[str, object]:
    if len(df) > MIXED_MAX_RATINGS:
        return _skip(f"skipped: {len(df)} ratings > {MIXED_MAX_RATINGS} (the variational fit takes minutes at this "
                     "size; the primary permutation test, GEE and bootstraps are reported)")
    return mixed_logit(df, outcome, seed)


def fit_all(df: pd.DataFrame, seed: int = 0, n_boot: int = 2000,
            progress: Callable[[str], object] | None = None) -> dict[str, object]:
    """Secondary mixed models, GEE checks and the cluster bootstrap; `progress` is called after each step."""
    steps = [
        ("mixed_net", lambda: _mixed_or_skip(df, "net", seed)),
        ("mixed_decided", lambda: _mixed_or_skip(df, "decided", seed)),
        ("gee_net", lambda: gee_logit(df, "net")),
        ("gee_decided", lambda: gee_logit(df, "decided")),
        ("bootstrap", lambda: {name: cluster_bootstrap(df, n_boot, seed, raters=r, items=i)
                               for name, (r, i) in BOOTSTRAP_SCHEMES.items()}),
    ]
    out = {}
    for name, step in steps:
        out[name] = step()
        if progress is not None:
            progress(name)
    return out
