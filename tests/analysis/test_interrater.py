"""Hand-computed inter-rater agreement: pair counts on regions (not letters), Krippendorff's alpha, Fleiss' kappa."""
from __future__ import annotations

import pandas as pd
import pytest
from analysis.examples import responses_frame

from analysis.interrater import (OTHER_REGION, TARGET_REGION, UNDECIDED, condition_agreement, fleiss, inter_rater,
                                 krippendorff_alpha, pair_counts, task_counts)
from analysis.io import add_outcomes, validate_responses


def outcomes(rows):
    return add_outcomes(validate_responses(responses_frame(rows)))


def counts_table(rows: dict[str, tuple[int, int, int]]) -> pd.DataFrame:
    return pd.DataFrame.from_dict(rows, orient="index", columns=[TARGET_REGION, OTHER_REGION, UNDECIDED])


def test_pairs_compare_regions_not_letters():
    # Both raters chose the target's region, but it was shown as A to one and as B to the other.
    same_region = outcomes([("a", "t", "i", "spade", "A", "A"), ("b", "t", "i", "spade", "B", "B")])
    assert pair_counts(task_counts(same_region)) == (1, 0)
    # Both pressed A, but A was the target's region for one and the other region for the other.
    same_letter = outcomes([("a", "t", "i", "spade", "A", "A"), ("b", "t", "i", "spade", "A", "B")])
    assert pair_counts(task_counts(same_letter)) == (0, 1)


def test_pair_counts_by_hand_with_ties_undecided_and_single_ratings():
    rows = [
        # t1: 3 target + 1 other + 1 undecided -> agree C(3,2)=3, disagree 3*1=3
        ("a", "t1", "i1", "spade", "A", "A"), ("b", "t1", "i1", "spade", "B", "B"), ("c", "t1", "i1", "spade", "A", "A"),
        ("d", "t1", "i1", "spade", "B", "A"), ("e", "t1", "i1", "spade", "undecided", "A"),
        # t2: a 2-2 tie -> agree 1 + 1, disagree 4
        ("a", "t2", "i2", "spade", "A", "A"), ("b", "t2", "i2", "spade", "A", "A"),
        ("c", "t2", "i2", "spade", "A", "B"), ("d", "t2", "i2", "spade", "B", "A"),
        # t3: rated once -> no pair; t4: one decided + one undecided -> no pair
        ("a", "t3", "i3", "spade", "A", "A"),
        ("a", "t4", "i4", "spade", "B", "B"), ("b", "t4", "i4", "spade", "undecided", "B"),
        # t5: two undecided -> no pair
        ("c", "t5", "i5", "spade", "undecided", "A"), ("d", "t5", "i5", "spade", "undecided", "B"),
    ]
    res = condition_agreement(outcomes(rows))
    assert (res["pairs_agree"], res["pairs_disagree"]) == (5, 7)
    assert res["pairs_ratio"] == pytest.approx(5 / 7) and res["pair_agreement"] == pytest.approx(5 / 12)
    assert (res["tasks"], res["tasks_with_pairs"]) == (5, 2)


def test_no_pairs_at_all():
    res = condition_agreement(outcomes([("a", "t1", "i1", "dense", "A", "A"), ("b", "t2", "i2", "dense", "A", "B")]))
    assert (res["pairs_agree"], res["pairs_disagree"], res["pairs_ratio"]) == (0, 0, None)
    assert res["krippendorff_alpha_undecided_missing"] is None and res["fleiss_kappa"] is None


def test_per_condition_split():
    rows = [("a", "s", "i1", "spade", "A", "A"), ("b", "s", "i1", "spade", "A", "A"),
            ("a", "d", "i2", "dense", "A", "A"), ("b", "d", "i2", "dense", "B", "A")]
    res = inter_rater(outcomes(rows))
    assert (res["spade"]["pairs_agree"], res["spade"]["pairs_disagree"]) == (1, 0)
    assert (res["dense"]["pairs_agree"], res["dense"]["pairs_disagree"]) == (0, 1)


def test_krippendorff_alpha_by_hand():
    # Pairable units t1 (2 target) and t2 (1 target, 2 other); t3 has a single value and drops out.
    # n = 5 values; D_o = (2*1*2 / (3-1)) / 5 = 0.4; D_e = 2*3*2 / (5*4) = 0.6; alpha = 1 - 0.4/0.6 = 1/3.
    table = counts_table({"t1": (2, 0, 0), "t2": (1, 2, 1), "t3": (1, 0, 0)})
    assert krippendorff_alpha(table, "missing") == pytest.approx(1 / 3)
    # "Can't decide" as a category: t2 = (1, 2, 1), m = 4; D_o = (2*(2+1+2)/3) / 6 = 5/9;
    # totals (3, 2, 1): D_e = 2*(6+3+2) / (6*5) = 11/15; alpha = 1 - (5/9)/(11/15) = 8/33.
    assert krippendorff_alpha(table, "category") == pytest.approx(8 / 33)
    perfect = counts_table({"t1": (2, 0, 0), "t2": (0, 3, 0)})
    assert krippendorff_alpha(perfect) == pytest.approx(1.0)
    assert krippendorff_alpha(counts_table({"t1": (2, 0, 0), "t2": (3, 0, 0)})) is None  # one value only
    with pytest.raises(ValueError):
        krippendorff_alpha(table, "dropped")


def test_fleiss_kappa_by_hand_and_modal_subset():
    # 4 tasks x 2 ratings: P_i = 1, 0, 1, 0 -> P = 0.5; p_j = (3, 4, 1)/8 -> P_e = 26/64; kappa = 3/19.
    table = counts_table({"t1": (2, 0, 0), "t2": (1, 1, 0), "t3": (0, 2, 0), "t4": (0, 1, 1)})
    res = fleiss(table)
    assert res["fleiss_kappa"] == pytest.approx(3 / 19)
    assert (res["fleiss_tasks"], res["fleiss_ratings_per_task"], res["fleiss_all_tasks"]) == (4, 2, True)
    # Unequal numbers of ratings: the modal count is used; a tie (two tasks of 2, two of 3) goes to 3.
    mixed = counts_table({"a": (2, 0, 0), "b": (1, 1, 0), "c": (3, 0, 0), "d": (0, 3, 0), "e": (1, 0, 0)})
    res = fleiss(mixed)
    assert (res["fleiss_tasks"], res["fleiss_ratings_per_task"], res["fleiss_all_tasks"]) == (2, 3, False)
    assert res["fleiss_kappa"] == pytest.approx(1.0)  # c and d: unanimous, different categories


def test_comparable_agreement_uses_the_same_strata_and_matches_the_libraries():
    """Both conditions on the same (item, target) strata; point estimates equal statsmodels' and krippendorff's."""
    import krippendorff
    import numpy as np
    from statsmodels.stats.inter_rater import fleiss_kappa

    from analysis.interrater import comparable_agreement

    rng = np.random.default_rng(3)
    rows = []
    for i in range(30):
        m = 3 if i < 20 else 2  # 20 strata with 3 ratings of each task, 10 with 2
        for cond, p in (("dense", 0.6), ("spade", 0.8)):
            for r in range(m):
                side = "AB"[rng.integers(2)]
                u = rng.random()
                choice = "undecided" if u < 0.1 else (side if u < 0.1 + 0.9 * p else "BA"["AB".index(side)])
                rows.append((f"r{cond}{r}", f"i{i}/{cond}", f"i{i}", cond, choice, side))
    rows.append(("lonely", "i99/spade", "i99", "spade", "A", "A"))  # a stratum rated in one condition only
    df = outcomes(rows)
    ca = comparable_agreement(df, n_boot=300, seed=1)
    assert ca["ratings_per_task_equal"] == 3 and ca["strata_equal"] == 20
    table = task_counts(df)
    for cond in ("dense", "spade"):
        tasks = [f"i{i}/{cond}" for i in range(20)]
        expected = fleiss_kappa(table.loc[tasks].to_numpy(), method="fleiss")
        assert ca["fleiss_kappa"][cond]["estimate"] == pytest.approx(expected)
        lo, hi = ca["fleiss_kappa"][cond]["ci"]
        assert lo <= expected <= hi
        pairable = [f"i{i}/{cond}" for i in range(30)
                    if (table.loc[[f"i{i}/dense", f"i{i}/spade"], [TARGET_REGION, OTHER_REGION]].sum(axis=1) >= 2).all()]
        assert len(pairable) == ca["strata_pairable"]
        alpha = krippendorff.alpha(value_counts=table.loc[pairable, [TARGET_REGION, OTHER_REGION]].to_numpy(),
                                   level_of_measurement="nominal")
        assert ca["krippendorff_alpha"][cond]["estimate"] == pytest.approx(alpha)
        agree, disagree = pair_counts(table.loc[pairable])
        assert ca["pair_agreement"][cond]["estimate"] == pytest.approx(agree / (agree + disagree))
    diff = ca["fleiss_kappa"]["difference"]
    assert diff["estimate"] == pytest.approx(ca["fleiss_kappa"]["spade"]["estimate"] - ca["fleiss_kappa"]["dense"]["estimate"])
    assert diff["ci"][0] < diff["estimate"] < diff["ci"][1]
    # chance level of the pair agreement: p^2 + (1 - p)^2 with p the condition's agreement among decided
    chance = ca["pair_agreement"]["spade_chance"]["estimate"]
    assert 0.5 <= chance <= 1


def test_comparable_agreement_without_shared_strata_is_null_not_an_error():
    from analysis.interrater import comparable_agreement

    df = outcomes([("a", "t1", "i1", "spade", "A", "A"), ("b", "t1", "i1", "spade", "A", "A"),
                   ("a", "t2", "i2", "dense", "A", "A")])
    ca = comparable_agreement(df, n_boot=50)
    assert ca["strata_pairable"] == 0 and ca["pair_agreement"]["spade"]["estimate"] is None
    assert ca["fleiss_kappa"]["difference"]["ci"] is None
