"""The clustered tests: mixed model and GEE recover a known effect; the bootstrap is seeded and computed right."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from analysis.examples import responses_frame, simple_planner

from analysis.io import add_outcomes, validate_responses
from analysis.models import cluster_bootstrap, gee_logit, mixed_logit
from analysis.power import RaterModel, marginal_intercept, simulate_responses

TRUE_NET = {"dense": 0.45, "spade": 0.70}


@pytest.fixture(scope="module")
def simulated():
    """60 raters x 30 ratings from the test planner; everyone decides, so net agreement = agreement."""
    plan = simple_planner(n_raters=60, tasks_per_rater=30, n_items=80, seed=3)
    model = RaterModel(decision={"dense": 0.999, "spade": 0.999}, agreement=TRUE_NET, rater_sd=0.4, item_sd=0.4)
    raw = simulate_responses(plan, model, np.random.default_rng(3))
    return add_outcomes(validate_responses(raw))


@pytest.mark.slow
def test_mixed_model_recovers_a_known_effect(simulated):
    fit = mixed_logit(simulated, "net", seed=0)
    assert fit["fitted"] and fit["converged"] and fit["n"] == 1800 and fit["raters"] == 60
    # The simulation's effect for an average rater and item: the rates are marginal over rater and item
    # effects (SD hypot(0.4, 0.4)), so the conditional log-odds effect is a bit larger than logit(.7) - logit(.45).
    sd = float(np.hypot(0.4, 0.4))
    true = marginal_intercept(0.70, sd) - marginal_intercept(0.45, sd)
    assert 1.1 < true < 1.15
    lo, hi = fit["ci"]
    assert lo < true < hi and hi - lo < 0.6 and fit["z"] > 5 and fit["p"] < 1e-6
    assert fit["odds_ratio"] == pytest.approx(np.exp(fit["log_odds"]))
    assert 0 < fit["rater_sd"] < 1.5 and 0 < fit["item_sd"] < 1.5
    # the seed fixes the variational starting point, hence the result
    assert mixed_logit(simulated, "net", seed=0)["log_odds"] == fit["log_odds"]


def test_gee_recovers_the_marginal_effect(simulated):
    fit = gee_logit(simulated, "net")
    marginal = np.log(0.70 / 0.30) - np.log(0.45 / 0.55)
    assert fit["fitted"] and fit["clusters"] == 60
    assert fit["ci"][0] < marginal < fit["ci"][1]
    assert fit["p"] < 1e-6


def test_models_refuse_degenerate_data():
    one_condition = add_outcomes(validate_responses(responses_frame([
        ("a", "t1", "i1", "spade", "A", "A"), ("b", "t2", "i2", "spade", "B", "A")])))
    assert mixed_logit(one_condition) == {"fitted": False, "reason": "only one condition present"}
    everyone_decides = add_outcomes(validate_responses(responses_frame([
        ("a", "t1", "i1", "spade", "A", "A"), ("b", "t2", "i2", "dense", "B", "A")])))
    assert mixed_logit(everyone_decides, "decided")["reason"] == "every rating has the same y"
    assert gee_logit(everyone_decides, "decided")["fitted"] is False


def naive_rater_bootstrap(df: pd.DataFrame, n_boot: int, seed: int) -> np.ndarray:
    """Raters-only bootstrap of the net difference, one replicate at a time, with the same random draws."""
    raters = np.unique(df["rater_id"])
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(len(raters), np.full(len(raters), 1 / len(raters)), size=n_boot)
    out = []
    for m in draws:
        w = df["rater_id"].map(dict(zip(raters, m))).to_numpy()
        s = df["spade"].to_numpy() == 1
        c = df["correct_region"].to_numpy()
        out.append((w * c)[s].sum() / w[s].sum() - (w * c)[~s].sum() / w[~s].sum())
    return np.array(out)


def test_bootstrap_matches_a_naive_loop(simulated):
    sub = simulated[simulated["rater_id"].isin(sorted(simulated["rater_id"].unique())[:20])]
    fast = cluster_bootstrap(sub, n_boot=300, seed=7, raters=True, items=False)
    slow = naive_rater_bootstrap(sub, 300, 7)
    assert fast["net"]["ci"] == pytest.approx([np.percentile(slow, 2.5), np.percentile(slow, 97.5)])
    assert fast["net"]["se"] == pytest.approx(slow.std(ddof=1))


def test_bootstrap_is_seeded_and_two_way_is_wider(simulated):
    a = cluster_bootstrap(simulated, n_boot=600, seed=1)
    assert a == cluster_bootstrap(simulated, n_boot=600, seed=1)
    assert a["net"]["ci"] != cluster_bootstrap(simulated, n_boot=600, seed=2)["net"]["ci"]
    est = simulated.groupby("spade")["correct_region"].mean()
    diff = est[1] - est[0]
    assert a["net"]["ci"][0] < diff < a["net"]["ci"][1] and a["net"]["share_at_or_below_zero"] == 0
    one_way = cluster_bootstrap(simulated, n_boot=600, seed=1, items=False)
    assert a["net"]["se"] > one_way["net"]["se"]
    none = cluster_bootstrap(simulated, n_boot=0, seed=1)
    assert none["net"]["ci"] is None and none["replicates"] == 0
