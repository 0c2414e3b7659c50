"""The primary test: exact statistic under label swaps, seeded, calibrated on a small null run, honest interval."""
from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from analysis.examples import paper_responses, responses_frame

from analysis.io import add_outcomes, validate_responses
from analysis.metrics import condition_metrics, differences
from analysis.permutation import _permuted, _stratum_sums, primary_test, primary_tests, rater_centred
from analysis.power import RaterModel, simulate_responses


@pytest.fixture(scope="module")
def paper():
    """The paper fixture with outcome columns, catch trials included (primary_test leaves them out)."""
    return add_outcomes(validate_responses(paper_responses()))


def test_fixture_headline_is_significant_with_a_cluster_robust_interval(paper):
    main = paper[paper["is_catch"] == 0]
    naive = differences(condition_metrics(main))["net"]
    r = primary_test(paper, "net", n_permutations=4999, seed=0)
    assert r["estimate"] == pytest.approx(naive["estimate"]) == pytest.approx(271 / 388 - 203 / 358)
    assert r["ratings"] == 746 and r["tasks"] == 213 and r["reason"] is None
    assert r["p_value"] < 0.01
    # The inverted interval keeps the tasks' clustering: it contains the naive Newcombe interval.
    assert r["ci_low"] < naive["ci"][0] < naive["ci"][1] < r["ci_high"]
    assert 0 < r["ci_low"] < r["estimate"] < r["ci_high"] < 0.3
    assert set(r) >= {"estimate", "p_value", "ci_low", "ci_high", "n_permutations", "method"}
    # seeded: the same seed gives the same numbers, another seed nearly the same
    assert primary_test(paper, "net", n_permutations=4999, seed=0) == r
    other = primary_test(paper, "net", n_permutations=4999, seed=1)
    assert other["p_value"] != r["p_value"] and abs(other["ci_low"] - r["ci_low"]) < 0.01
    both = primary_tests(paper, n_permutations=999)
    assert both["decided"]["estimate"] == pytest.approx(339 / 388 - 276 / 358) and both["decided"]["p_value"] < 0.01


def test_raw_responses_give_the_same_result(paper):
    raw = validate_responses(paper_responses())
    assert primary_test(raw, n_permutations=500) == primary_test(paper[paper["is_catch"] == 0], n_permutations=500)


def relabelled_statistic(df: pd.DataFrame, swapped_items: set[str]) -> float:
    """SPADE - dense net agreement after swapping the condition of every rating of these images (the slow way)."""
    spade = df["spade"].to_numpy() == 1
    flip = df["item_id"].isin(swapped_items).to_numpy()
    now_spade = spade ^ flip
    y = df["correct_region"].to_numpy()
    return y[now_spade].mean() - y[~now_spade].mean()


def test_vectorized_swaps_match_relabelling_the_ratings(paper):
    main = paper[paper["is_catch"] == 0]
    ys, ns, yd, nd = _stratum_sums(main, "correct_region")
    items = np.unique(main["item_id"])
    rng = np.random.default_rng(4)
    flips = rng.integers(0, 2, size=(20, len(items))).astype(float)
    stat = _permuted(ys, ns, yd, nd, flips)
    centred = main.assign(correct_region=rater_centred(main, "correct_region"))
    cs, _, cd, _ = _stratum_sums(centred, "correct_region")
    stat_centred = _permuted(cs, ns, cd, nd, flips)
    for row, value, c_value in zip(flips, stat, stat_centred):
        swapped = set(items[row == 1])
        assert value == pytest.approx(relabelled_statistic(main, swapped))
        assert c_value == pytest.approx(relabelled_statistic(centred, swapped))
    # centring on raters removes each rater's mean, and so a rater's effect, whatever their answers
    by_rater = centred.groupby("rater_id")["correct_region"].mean()
    assert np.allclose(by_rater, main["correct_region"].mean())


def test_monte_carlo_p_value_approaches_the_exact_one():
    # 6 images: all 2^6 swaps can be enumerated.
    rows = []
    rng = np.random.default_rng(0)
    for i in range(6):
        for cond, p in (("dense", 0.4), ("spade", 0.8)):
            for r in range(3):
                correct = "A"
                rows.append((f"r{r}{cond}", f"i{i}/{cond}/true", f"i{i}", cond, "A" if rng.random() < p else "B",
                             correct))
    df = add_outcomes(validate_responses(responses_frame(rows)))
    obs = df.loc[df["spade"] == 1, "correct_region"].mean() - df.loc[df["spade"] == 0, "correct_region"].mean()
    items = sorted(df["item_id"].unique())
    exact = np.mean([abs(relabelled_statistic(df, {it for it, f in zip(items, bits) if f})) >= abs(obs) - 1e-12
                     for bits in itertools.product((0, 1), repeat=6)])
    r = primary_test(df, n_permutations=20000, seed=3, within_raters=False)
    assert r["p_value"] == pytest.approx(exact, abs=0.01)


@pytest.mark.slow
def test_false_positives_stay_near_alpha_and_a_real_effect_is_found():
    """A small calibration run on the paper's design with strong task effects (the full run is in bench/)."""
    fixture = paper_responses()
    design = fixture[fixture["is_catch"] == "0"].reset_index(drop=True)
    null = RaterModel(decision={"dense": 0.82, "spade": 0.82}, agreement={"dense": 0.77, "spade": 0.77},
                      task_sd=1.0, item_condition_sd=0.5)
    p_values = []
    for s in range(80):
        df = add_outcomes(validate_responses(simulate_responses(design, null, np.random.default_rng(s))))
        p_values.append(primary_test(df, n_permutations=199, seed=s)["p_value"])
    p_values = np.array(p_values)
    # 80 studies at a true 5%: more than 10 rejections has probability < 0.3%; the p-values look uniform.
    assert (p_values < 0.05).sum() <= 10
    assert 0.35 < np.median(p_values) < 0.65 and (p_values < 0.5).mean() < 0.65
    effect = RaterModel(task_sd=1.0, item_condition_sd=0.5,
                        decision={"dense": 0.6, "spade": 0.95}, agreement={"dense": 0.6, "spade": 0.9})
    found = [primary_test(add_outcomes(validate_responses(simulate_responses(design, effect,
                                                                               np.random.default_rng(s)))),
                          n_permutations=199, seed=s)["p_value"] < 0.05 for s in range(5)]
    assert all(found)


def test_the_interval_is_the_set_of_shifts_not_rejected(paper):
    r = primary_test(paper, n_permutations=2999, seed=2)
    main = paper[paper["is_catch"] == 0]

    def p_at(shift: float) -> float:
        """Rerun the test after moving every SPADE rating by -shift (a fractional outcome)."""
        shifted = main.assign(correct_region=main["correct_region"] - shift * main["spade"])
        return primary_test(shifted, n_permutations=2999, seed=2)["p_value"]

    for end in (r["ci_low"], r["ci_high"]):
        assert p_at(end + (0.003 if end == r["ci_low"] else -0.003)) > 0.05
        assert p_at(end - (0.003 if end == r["ci_low"] else -0.003)) <= 0.05
    assert p_at(r["estimate"]) > 0.5


def test_degenerate_inputs_are_reported_not_tested():
    one_condition = validate_responses(responses_frame([
        ("a", "t1", "i1", "spade", "A", "A"), ("b", "t2", "i2", "spade", "B", "A")]))
    r = primary_test(one_condition)
    assert r["reason"] == "only one condition present" and r["p_value"] is None and r["ci_low"] is None
    everyone_decides = validate_responses(responses_frame([
        ("a", "i1/spade/true", "i1", "spade", "A", "A"), ("b", "i1/dense/true", "i1", "dense", "B", "A")]))
    r = primary_test(everyone_decides, "decided", n_permutations=100)
    assert r["estimate"] == 0 and r["p_value"] == 1.0
    with pytest.raises(ValueError, match="unknown outcome"):
        primary_test(everyone_decides, "agreement")
