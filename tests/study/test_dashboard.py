"""The admin dashboard's numbers and plots (study/dashboard.py) on a real study database."""
from __future__ import annotations

import itertools

import pytest
from statsmodels.stats.proportion import proportion_confint

from study.dashboard import condition_rates, figure_png, flow_figure, participant_flow, progress_figure, progress_series, rates_figure, wilson
from study.invites import create_invites
from tests.study.helpers import answer_all, make_service, rater_at_tasks


def test_wilson_interval() -> None:
    p, lo, hi = wilson(5, 10)
    assert p == 0.5 and lo == pytest.approx(0.2366, abs=1e-4) and hi == pytest.approx(0.7634, abs=1e-4)
    assert wilson(0, 0) == (None, None, None)
    p, lo, hi = wilson(12, 12)  # all successes: the interval still has width, and stays inside [0, 1]
    assert p == 1 and 0.7 < lo < 1 and hi == pytest.approx(1)
    assert (lo, hi) == pytest.approx(proportion_confint(12, 12, method="wilson"))


@pytest.fixture()
def study(tmp_path, study_bundle):
    """Two raters who finished (answers cycling A, B, undecided), one who only consented, one only invited."""
    svc = make_service(tmp_path, study_bundle, tasks_per_rater=4, catch_per_rater=1)
    choices = itertools.cycle(["A", "B", "undecided"])
    for _ in range(2):
        answer_all(svc, rater_at_tasks(svc), lambda a: next(choices))
    svc.consent({})
    create_invites(svc.db_path, 1, "http://127.0.0.1:1/")
    return svc


def test_rates_per_condition_match_the_stored_answers(study) -> None:
    rows = {r["condition"]: r for r in condition_rates(study.db_path)}
    db = study.db_path
    import sqlite3

    conn = sqlite3.connect(db)
    for cond in ("dense", "spade"):
        answers = conn.execute(
            "SELECT choice, correct FROM responses_export WHERE is_catch = 0 AND condition = ?", [cond]
        ).fetchall()
        n = len(answers)
        decided = sum(c != "undecided" for c, _ in answers)
        agree = sum(c != "undecided" and c == k for c, k in answers)
        r = rows[cond]
        assert (r["answers"], r["decided"], r["agree"]) == (n, decided, agree)
        assert r["decision_rate"][0] == pytest.approx(decided / n)
        assert r["net_agreement"][0] == pytest.approx(agree / n)
        p, lo, hi = r["agreement"]
        assert p == pytest.approx(agree / decided) and lo <= p <= hi
    # The same numbers as the admin page's table (study.stats).
    table = {c["condition"]: c for c in study.stats()["conditions"]}
    for cond, r in rows.items():
        assert r["decision_rate"][0] == pytest.approx(table[cond]["decision_rate"])
        assert r["agreement"][0] == pytest.approx(table[cond]["agreement"])


def test_participant_flow_and_progress(study) -> None:
    assert participant_flow(study.db_path) == [
        ("invited or enrolled", 4), ("consented", 3), ("practice passed", 2), ("completed", 2),
    ]  # fmt: skip
    assert participant_flow(study.db_path, excluded=1)[-1] == ("excluded by the declared rules", 1)
    series = progress_series(study.db_path)
    assert [n for _, n in series] == list(range(1, 9))  # 2 raters x 4 main tasks; catch trials left out
    assert all(a[0] <= b[0] for a, b in zip(series, series[1:]))


def test_plots_render_even_on_an_empty_study(study, tmp_path, study_bundle) -> None:
    empty = make_service(tmp_path, study_bundle, db_name="empty.db")
    for db in (study.db_path, empty.db_path):
        figs = [progress_figure(progress_series(db), 16), rates_figure(condition_rates(db)), flow_figure(participant_flow(db, 0))]
        for fig in figs:
            png = figure_png(fig)
            assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5_000
