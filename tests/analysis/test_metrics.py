"""Hand-computed tiny cases for the per-condition metrics, differences, rater table and position bias."""
from __future__ import annotations

import math

import pytest
from analysis.examples import responses_frame

from analysis.io import add_outcomes, validate_responses
from analysis.metrics import condition_metrics, difference, differences, wilson
from analysis.position_bias import position_bias
from analysis.raters import failing_catch, rater_table

Z = 1.959963984540054


def wilson_by_hand(k: int, n: int) -> tuple[float, float]:
    p = k / n
    centre = (p + Z * Z / (2 * n)) / (1 + Z * Z / n)
    half = Z * math.sqrt(p * (1 - p) / n + Z * Z / (4 * n * n)) / (1 + Z * Z / n)
    return centre - half, centre + half


# (rater, task, item, condition, choice, correct[, is_catch])
# spade: a-t1 target (A/A), b-t1 target (B/B), u-t1 undecided, a-t3 undecided      -> n 4, decided 2, correct 2
# dense: a-t2 other (B/A), b-t2 other (A/B), c-t2 target (A/A), u-t4 undecided     -> n 4, decided 3, correct 1
# rater u only ever answers "can't decide"; rater c also answers one catch trial wrong.
TINY = [
    ("a", "t1", "i1", "spade", "A", "A"),
    ("b", "t1", "i1", "spade", "B", "B"),
    ("u", "t1", "i1", "spade", "undecided", "A"),
    ("a", "t3", "i3", "spade", "undecided", "B"),
    ("a", "t2", "i2", "dense", "B", "A"),
    ("b", "t2", "i2", "dense", "A", "B"),
    ("c", "t2", "i2", "dense", "A", "A"),
    ("u", "t4", "i4", "dense", "undecided", "B"),
    ("a", "k1", "i5", "dense", "A", "A", 1),
    ("c", "k1", "i5", "dense", "B", "A", 1),
]


@pytest.fixture
def tiny():
    return add_outcomes(validate_responses(responses_frame(TINY)))


def test_wilson_matches_the_formula_and_handles_zero_and_all():
    lo, hi = wilson(8, 10)
    assert (lo, hi) == pytest.approx(wilson_by_hand(8, 10), abs=1e-12)
    assert (round(lo, 4), round(hi, 4)) == (0.4902, 0.9433)
    assert wilson(0, 5)[0] == pytest.approx(0.0, abs=1e-12) and wilson(5, 5)[1] == pytest.approx(1.0)
    assert wilson(0, 0) is None


def test_condition_metrics_by_hand(tiny):
    main = tiny[tiny["is_catch"] == 0]
    m = condition_metrics(main)
    assert {k: m["spade"][k] for k in ("n", "decided", "undecided", "correct")} == {
        "n": 4, "decided": 2, "undecided": 2, "correct": 2}
    assert m["spade"]["decision_rate"] == 0.5 and m["spade"]["agreement"] == 1.0 and m["spade"]["net"] == 0.5
    assert {k: m["dense"][k] for k in ("n", "decided", "correct")} == {"n": 4, "decided": 3, "correct": 1}
    assert m["dense"]["decision_rate"] == 0.75
    assert m["dense"]["agreement"] == pytest.approx(1 / 3)
    assert m["dense"]["net"] == 0.25
    assert m["dense"]["agreement_ci"] == pytest.approx(wilson_by_hand(1, 3))
    # net = decision rate x agreement, the paper's product
    for c in ("dense", "spade"):
        assert m[c]["net"] == pytest.approx(m[c]["decision_rate"] * m[c]["agreement"])
    # "can't decide" as a coin flip: spade (2 + 0.5 * 2) / 4
    assert m["spade"]["net_undecided_as_guess"] == 0.75
    assert (m["spade"]["raters"], m["spade"]["items"], m["spade"]["tasks"]) == (3, 2, 2)


def test_a_condition_without_decisions_has_no_agreement():
    df = add_outcomes(validate_responses(responses_frame([
        ("u", "t1", "i1", "spade", "undecided", "A"), ("u", "t2", "i2", "dense", "undecided", "B"),
        ("v", "t2", "i2", "dense", "A", "A")])))
    m = condition_metrics(df)
    assert m["spade"]["decision_rate"] == 0.0 and m["spade"]["net"] == 0.0
    assert m["spade"]["agreement"] is None and m["spade"]["agreement_ci"] is None
    d = differences(m)
    assert d["agreement"]["estimate"] is None and d["agreement"]["ci"] is None
    assert d["net"]["estimate"] == pytest.approx(0 - 0.5)


def test_difference_newcombe_and_z_test_by_hand():
    k1, n1, k2, n2 = 271, 388, 203, 358  # the paper's net agreement counts
    d = difference(k1, n1, k2, n2)
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = wilson_by_hand(k1, n1)
    l2, u2 = wilson_by_hand(k2, n2)
    lo = p1 - p2 - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    hi = p1 - p2 + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    assert d["estimate"] == pytest.approx(p1 - p2)
    assert d["ci"] == pytest.approx([lo, hi], abs=1e-10)
    pooled = (k1 + k2) / (n1 + n2)
    z = (p1 - p2) / math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    assert d["z"] == pytest.approx(z)
    assert d["p"] == pytest.approx(math.erfc(abs(z) / math.sqrt(2)))
    assert "not independent" in d["note"]


def test_difference_ties_and_degenerate_cases():
    tie = difference(3, 6, 5, 10)  # equal rates: estimate 0, z 0, p 1, interval symmetric-ish around 0
    assert tie["estimate"] == 0 and tie["z"] == 0 and tie["p"] == pytest.approx(1.0)
    assert tie["ci"][0] < 0 < tie["ci"][1]
    same = difference(4, 4, 7, 7)  # everyone agreed in both: no variance for the z-test
    assert same["estimate"] == 0 and same["z"] is None and same["p"] is None and same["ci"] is not None
    empty = difference(1, 2, 0, 0)
    assert empty["estimate"] is None and empty["ci"] is None


def test_rater_table_by_hand(tiny):
    t = rater_table(tiny, excluded=["c"]).set_index("rater_id")
    assert list(t.index) == ["a", "b", "c", "u"]
    a = t.loc["a"]
    assert (a["n"], a["n_catch"], a["decided"], a["correct"]) == (3, 1, 2, 1)
    assert a["decision_rate"] == pytest.approx(2 / 3) and a["agreement"] == 0.5 and a["catch_accuracy"] == 1.0
    assert a["agreement_spade"] == 1.0 and a["agreement_dense"] == 0.0
    u = t.loc["u"]  # only "can't decide": decision rate 0, agreement undefined, no catch trial
    assert u["decision_rate"] == 0.0 and math.isnan(u["agreement"]) and u["net"] == 0.0
    assert math.isnan(u["catch_accuracy"]) and not u["excluded"]
    assert t.loc["c", "catch_accuracy"] == 0.0 and t.loc["c", "excluded"]
    # median over all the rater's trials (catch included); responses_frame gives row i 1000 + i ms:
    # rater a has rows 0, 3, 4, 8 -> median of 1000, 1003, 1004, 1008
    assert a["median_response_ms"] == 1003.5


def test_failing_catch_threshold(tiny):
    assert failing_catch(tiny) == ["c"]
    assert failing_catch(tiny, 0.0) == []
    two_of_three = add_outcomes(validate_responses(responses_frame([
        ("r", "k1", "i1", "dense", "A", "A", 1), ("r", "k2", "i2", "dense", "A", "A", 1),
        ("r", "k3", "i3", "dense", "undecided", "A", 1)])))
    assert failing_catch(two_of_three, 2 / 3) == []  # "can't decide" on a catch trial counts as a miss
    assert failing_catch(two_of_three, 0.7) == ["r"]


def test_position_bias_by_hand(tiny):
    pb = position_bias(tiny[tiny["is_catch"] == 0])
    # decided choices: A, B, B, A, A -> 3 of 5 chose A
    assert (pb["decided"], pb["chose_a"]) == (5, 3)
    assert pb["binomial_p"] == pytest.approx(1.0)  # 3 of 5 is as central as it gets
    # target shown as A in rows a-t1, u-t1, a-t2, c-t2: 4 of 8
    assert pb["target_shown_as_a"] == 0.5
    # decided with target A: a-t1 (agrees), a-t2 (not), c-t2 (agrees) -> 2/3; target B: b-t1 (agrees), b-t2 (not) -> 1/2
    assert pb["agreement_target_A"] == pytest.approx(2 / 3) and pb["agreement_target_B"] == 0.5


def test_one_function_computes_the_rates(tiny):
    """Rater, item and condition tables all come from `metrics.rates` and agree with each other."""
    from analysis.items import item_table
    from analysis.metrics import rates

    main = tiny[tiny["is_catch"] == 0]
    by_cond = rates(main, "condition")
    assert by_cond.loc["spade", ["n", "decided", "correct"]].tolist() == [4, 2, 2]
    assert by_cond.loc["dense", "net"] == 0.25 and by_cond.loc["dense", "undecided"] == 1
    per_rater = rates(main, ["rater_id", "condition"])
    assert per_rater.loc[("a", "dense"), "agreement"] == 0.0 and per_rater["n"].sum() == len(main)
    # a grouping column named like a count column ("correct", the target's letter) is no trouble
    assert rates(main, "correct")["n"].sum() == len(main)
    items = item_table(main).set_index("item_id")
    assert items.loc["i1", "net_spade"] == pytest.approx(2 / 3) and math.isnan(items.loc["i1", "net_dense"])
    empty = rates(main.iloc[:0], "condition", index=["dense", "spade"])
    assert empty["n"].tolist() == [0, 0] and empty["net"].isna().all()


def test_no_module_computes_rates_by_hand():
    """Net agreement and agreement are computed in `analysis.metrics.rates` only (issue 9)."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "analysis"
    # `models.py` and `permutation.py` compute rates of resampled / permuted totals in matrix form.
    allowed = {"metrics.py", "models.py", "permutation.py"}
    pattern = re.compile(r"correct_region\"\]\.(sum|mean)\(|\[\"correct\"\] */ |correct\w* */ *\w*\[?\"?n\b")
    offenders = [f"{p.name}:{i}" for p in sorted(root.glob("*.py")) if p.name not in allowed
                 for i, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert offenders == []
