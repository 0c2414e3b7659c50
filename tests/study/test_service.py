"""The service API shared by the app and simulated raters: identity, stages, idempotent next_task, refusals."""
from __future__ import annotations

import threading
from collections import Counter

import pytest
from tests.study.helpers import PROLIFIC_STUDY, answer_all, finish_practice, make_service, rater_at_tasks

from study.db import connect
from study.invites import create_invites, invite_url, revoke
from study.service import Refused, event_details


def _count(svc, sql: str) -> int:
    return connect(svc.db_path).execute(sql).fetchone()[0]


def test_one_rater_through_every_stage(tmp_path, study_bundle) -> None:
    svc = make_service(tmp_path, study_bundle)
    assert svc.identify({}) is None  # open mode: no rater until consent
    rater = svc.consent({})
    assert rater.stage == "instructions" and rater.token
    assert svc.identify({"token": rater.token}).rater_id == rater.rater_id
    with pytest.raises(Refused) as exc:
        svc.next_task(rater.rater_id)  # no tasks before the practice
    assert exc.value.reason == "wrong_stage"
    assert svc.finish_instructions(rater.rater_id).stage == "practice"
    finish_practice(svc, rater.rater_id)
    r = svc.rater(rater.rater_id)
    assert r.stage == "tasks" and r.practice_passed is True
    given = answer_all(svc, rater.rater_id)
    assert len(given) == svc.policy.total == 5
    assert svc.rater(rater.rater_id).stage == "done"
    assert svc.next_task(rater.rater_id) is None
    done = svc.completion(rater.rater_id)
    assert done.code.startswith("SPADE-") and done.redirect_url is None
    assert svc.completion(rater.rater_id).code == done.code  # stable


def test_next_task_is_idempotent_until_answered(tmp_path, study_bundle) -> None:
    svc = make_service(tmp_path, study_bundle)
    rid = rater_at_tasks(svc)
    a = svc.next_task(rid)
    again = svc.next_task(rid)
    assert again == a  # a reload shows the same task, same layout, same nonce
    assert _count(svc, "SELECT COUNT(*) FROM assignments") == 1
    svc.submit(rid, a.assignment_id, "B", a.nonce)
    b = svc.next_task(rid)
    assert b.assignment_id != a.assignment_id and b.position == a.position + 1
    assert b.item_id != a.item_id


def test_replayed_and_double_submissions_write_one_response(tmp_path, study_bundle) -> None:
    svc = make_service(tmp_path, study_bundle)
    rid = rater_at_tasks(svc)
    a = svc.next_task(rid)
    first = svc.submit(rid, a.assignment_id, "A", a.nonce)
    assert first.answered == 1
    with pytest.raises(Refused, match="already answered; your first answer is kept") as exc:
        svc.submit(rid, a.assignment_id, "B", a.nonce)
    assert exc.value.reason == "replay"
    # A double click: two submits racing from two threads; exactly one wins.
    b = svc.next_task(rid)
    results: list[str] = []

    def click() -> None:
        try:
            svc.submit(rid, b.assignment_id, "B", b.nonce)
            results.append("ok")
        except Refused as e:
            results.append(e.reason)

    threads = [threading.Thread(target=click) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["ok", "replay", "replay", "replay"]
    assert _count(svc, "SELECT COUNT(*) FROM responses") == 2
    rows = list(connect(svc.db_path).query("SELECT choice FROM responses_export"))
    assert [r["choice"] for r in rows] == ["A", "B"]
    reasons = Counter(e["reason"] for e in event_details(connect(svc.db_path), "refused"))
    assert reasons["replay"] == 4


@pytest.mark.parametrize(
    "tamper, message",
    [
        (lambda a, other: (a.assignment_id, "A", "forged-nonce"), "does not match a task shown to you"),
        (lambda a, other: (other.assignment_id, "A", other.nonce), "does not match a task shown to you"),
        (lambda a, other: (a.assignment_id, "C", a.nonce), "not one of the offered choices"),
        (lambda a, other: ("1; DROP TABLE responses", "A", a.nonce), "does not match a task shown to you"),
        (lambda a, other: (10_000, "A", a.nonce), "does not match a task shown to you"),
    ],
    ids=["wrong-nonce", "other-raters-task", "unknown-choice", "non-integer-id", "unknown-id"],
)
def test_tampered_submissions_are_refused_and_write_nothing(tmp_path, study_bundle, tamper, message) -> None:
    svc = make_service(tmp_path, study_bundle)
    rid, other_rid = rater_at_tasks(svc), rater_at_tasks(svc)
    a, other = svc.next_task(rid), svc.next_task(other_rid)
    assignment_id, choice, nonce = tamper(a, other)
    with pytest.raises(Refused, match=message) as exc:
        svc.submit(rid, assignment_id, choice, nonce)
    assert exc.value.reason == "tampered"
    assert _count(svc, "SELECT COUNT(*) FROM responses") == 0
    # The genuine answer still goes through afterwards.
    svc.submit(rid, a.assignment_id, "A", a.nonce)
    assert _count(svc, "SELECT COUNT(*) FROM responses") == 1


def test_invite_links_unknown_and_revoked_tokens(tmp_path, study_bundle) -> None:
    svc = make_service(tmp_path, study_bundle, identity="invite")
    invites = create_invites(svc.db_path, 3, "https://study.example.org/run?lang=en")
    assert invites[0].url == f"https://study.example.org/run?lang=en&token={invites[0].token}"
    assert len({i.token for i in invites}) == 3
    with pytest.raises(Refused, match="by invitation") as exc:
        svc.identify({})
    assert exc.value.reason == "missing_identity"
    with pytest.raises(Refused, match="not valid") as exc:
        svc.identify({"token": "made-up-token"})
    assert exc.value.reason == "unknown_token"
    r = svc.identify({"token": invites[0].token})
    assert r.stage == "consent" and r.source == "invite"
    assert svc.consent({"token": invites[0].token}).rater_id == r.rater_id
    assert revoke(svc.db_path, invites[0].token) == r.rater_id
    with pytest.raises(Refused, match="withdrawn") as exc:
        svc.identify({"token": invites[0].token})
    assert exc.value.reason == "revoked"
    # The revoked rater's refusal is an event; the two anonymous ones are counted, not stored one row each.
    assert _count(svc, "SELECT COUNT(*) FROM events WHERE kind = 'refused'") == 1
    assert _count(svc, "SELECT SUM(n) FROM refusal_counts") == 2
    with pytest.raises(ValueError, match="must start with http"):
        invite_url("study.example.org", "t")


def test_prolific_identity_resume_and_redirect(tmp_path, study_bundle) -> None:
    svc = make_service(tmp_path, study_bundle, identity="prolific", completion_code="C1ABCD")
    params = {"PROLIFIC_PID": "5f1a2b3c4d5e6f7a8b9c0d1e", "STUDY_ID": PROLIFIC_STUDY, "SESSION_ID": "x1"}
    with pytest.raises(Refused, match="lacks your Prolific ID"):
        svc.identify({"PROLIFIC_PID": params["PROLIFIC_PID"]})
    with pytest.raises(Refused, match="not valid"):
        svc.identify({**params, "PROLIFIC_PID": "<script>"})
    assert svc.identify(params) is None
    rid = svc.consent(params).rater_id
    assert svc.consent(params).rater_id == rid  # consenting twice (two tabs) enrolls once
    assert svc.identify({**params, "SESSION_ID": "x2"}).rater_id == rid  # same person, new session: resumes
    svc.finish_instructions(rid)
    finish_practice(svc, rid)
    answer_all(svc, rid)
    done = svc.completion(rid)
    assert done.code == "C1ABCD"
    assert done.redirect_url == "https://app.prolific.com/submissions/complete?cc=C1ABCD"
    assert _count(svc, "SELECT COUNT(*) FROM raters") == 1


def test_practice_repeats_until_passed_then_stops_at_the_limit(tmp_path, study_bundle) -> None:
    svc = make_service(tmp_path, study_bundle, practice_trials=3, practice_min_correct=3, practice_max_rounds=2)
    rid = svc.consent({}).rater_id
    svc.finish_instructions(rid)
    wrong = {"A": "B", "B": "A"}
    seen_trials = set()
    for rnd in (1, 2):
        for trial in range(3):
            state = svc.practice_state(rid)
            assert (state.round, state.trial) == (rnd, trial)
            t = svc.practice_trial(state)
            seen_trials.add(t.index)
            fb = svc.submit_practice(rid, rnd, trial, wrong[t.correct])
            assert not fb.is_correct and fb.correct == t.correct and t.correct in fb.explanation
        assert fb.round_finished and fb.passed is False and fb.round_correct == 0
        assert fb.practice_over is (rnd == 2)
    assert len(seen_trials) == 6  # a new set of pictures each round
    r = svc.rater(rid)
    assert r.stage == "tasks" and r.practice_passed is False  # goes on, flagged for the analysis
    with pytest.raises(Refused) as exc:
        svc.submit_practice(rid, 2, 2, "A")
    assert exc.value.reason == "wrong_stage"


def test_practice_replay_is_refused(tmp_path, study_bundle) -> None:
    svc = make_service(tmp_path, study_bundle)
    rid = svc.consent({}).rater_id
    svc.finish_instructions(rid)
    state = svc.practice_state(rid)
    svc.submit_practice(rid, state.round, state.trial, "A")
    with pytest.raises(Refused, match="already recorded") as exc:
        svc.submit_practice(rid, state.round, state.trial, "A")
    assert exc.value.reason == "replay"
    assert _count(svc, "SELECT COUNT(*) FROM practice_responses") == 1


def test_confidence_option_is_stored_when_on_and_refused_when_off(tmp_path, study_bundle) -> None:
    on = make_service(tmp_path, study_bundle, db_name="on.db", confidence=True)
    rid = rater_at_tasks(on)
    a = on.next_task(rid)
    with pytest.raises(Refused, match="confidence rating from 1 to 5"):
        on.submit(rid, a.assignment_id, "A", a.nonce)
    on.submit(rid, a.assignment_id, "A", a.nonce, confidence=4)
    assert _count(on, "SELECT confidence FROM responses") == 4
    off = make_service(tmp_path, study_bundle, db_name="off.db")
    rid = rater_at_tasks(off)
    a = off.next_task(rid)
    with pytest.raises(Refused, match="does not take confidence"):
        off.submit(rid, a.assignment_id, "A", a.nonce, confidence=3)


def test_concurrent_raters_get_balanced_unique_tasks_and_lose_nothing(tmp_path, study_bundle) -> None:
    svc = make_service(tmp_path, study_bundle, tasks_per_rater=6, catch_per_rater=2)
    raters = [rater_at_tasks(svc) for _ in range(6)]
    errors: list[BaseException] = []

    def run(rid: str) -> None:
        try:
            answer_all(svc, rid, choose=lambda a: "B")
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(r,)) for r in raters]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    rows = list(connect(svc.db_path).query("SELECT * FROM responses_export"))
    assert len(rows) == 6 * 8
    per_rater = Counter(r["rater_id"] for r in rows)
    assert set(per_rater.values()) == {8}
    for rid in raters:
        mine = [r for r in rows if r["rater_id"] == rid]
        assert len({r["item_id"] for r in mine}) == 8
        cond = Counter(r["condition"] for r in mine if not r["is_catch"])
        assert cond["dense"] == cond["spade"] == 3
    main = Counter(r["task_id"] for r in rows if not r["is_catch"])
    # 36 main ratings over 48 tasks, k = 2: least-rated first means no task is rated twice yet.
    assert max(main.values()) == 1


def test_stats_report_decision_rate_agreement_and_pairs(tmp_path, study_bundle) -> None:
    svc = make_service(tmp_path, study_bundle, tasks_per_rater=4, catch_per_rater=0)
    r1, r2 = rater_at_tasks(svc), rater_at_tasks(svc)
    # Rater 1 always picks the correct region; rater 2 the correct one in dense, "can't decide" in spade.
    answer_all(svc, r1, choose=lambda a: a.correct)
    answer_all(svc, r2, choose=lambda a: a.correct if a.condition == "dense" else "undecided")
    stats = svc.stats()
    by = {c["condition"]: c for c in stats["conditions"]}
    assert by["dense"]["ratings"] == 4 and by["spade"]["ratings"] == 4
    assert by["dense"]["decision_rate"] == 1.0 and by["dense"]["agreement"] == 1.0
    assert by["spade"]["decision_rate"] == 0.5 and by["spade"]["agreement"] == 1.0
    assert by["spade"]["net_agreement"] == 0.5
    assert by["dense"]["target_ratings"] == 24 * 2
    raters = {r["rater_id"]: r for r in stats["raters"]}
    assert raters[r1]["answered"] == 4 and raters[r1]["dense"] == 2 and raters[r1]["spade"] == 2
    assert stats["totals"] == {"raters": 2, "completed": 2, "responses": 8, "refusals": 0}
    # 4 tasks each, 48 tasks: least-rated first gives the two raters no shared task, so no pairs yet.
    assert by["dense"]["pairs_agree"] + by["dense"]["pairs_disagree"] == 0


def test_pairs_of_raters_on_the_same_task_are_compared_through_their_own_layouts(tmp_path) -> None:
    from itertools import combinations

    from study.examples import make_bundle

    bundle = make_bundle(tmp_path / "b4", n_items=4)
    svc = make_service(tmp_path, bundle, tasks_per_rater=2, catch_per_rater=0)
    # 16 raters x 2 tasks = 32 ratings over 16 tasks: every task rated by a pair of raters.
    for i in range(16):
        rid = rater_at_tasks(svc)
        if i < 8:
            answer_all(svc, rid, choose=lambda a: a.correct)
        else:  # "A" whatever the layout in dense; sometimes undecided in spade
            answer_all(svc, rid, choose=lambda a: "A" if a.condition == "dense" else ("undecided" if a.position else a.correct))
    rows = list(connect(svc.db_path).query("SELECT * FROM responses_export"))
    assert sorted(Counter(r["task_id"] for r in rows).values()) == [2] * 16
    expected = {c: Counter() for c in ("dense", "spade")}
    by_task: dict[str, list[dict]] = {}
    for r in rows:
        by_task.setdefault(r["task_id"], []).append(r)
    for task_rows in by_task.values():
        for x, y in combinations(task_rows, 2):
            if "undecided" in (x["choice"], y["choice"]):
                continue
            same = (x["choice"] == x["correct"]) == (y["choice"] == y["correct"])
            expected[x["condition"]]["agree" if same else "disagree"] += 1
    by = {c["condition"]: c for c in svc.stats()["conditions"]}
    for cond in ("dense", "spade"):
        assert (by[cond]["pairs_agree"], by[cond]["pairs_disagree"]) == (expected[cond]["agree"], expected[cond]["disagree"])
    assert by["dense"]["pairs_agree"] + by["dense"]["pairs_disagree"] == 8
    assert by["spade"]["pairs_disagree"] == 0


def test_too_many_tasks_for_the_bundle_is_refused(tmp_path, study_bundle) -> None:
    with pytest.raises(ValueError, match="exceeds the bundle's 12 items"):
        make_service(tmp_path, study_bundle, tasks_per_rater=10, catch_per_rater=3)


def test_an_abandoned_assignment_stops_counting_toward_coverage_but_is_still_resumed(tmp_path, study_bundle) -> None:
    import time

    svc = make_service(tmp_path, study_bundle, stale_minutes=0.002)  # 120 ms
    rid = rater_at_tasks(svc)
    a = svc.next_task(rid)
    assert not a.is_catch  # the first task never is
    with svc._db() as db:  # the policy's coverage input (answered + recently shown)
        assert svc._coverage(db) == {a.task_id: 1}
    time.sleep(0.3)
    with svc._db() as db:
        assert svc._coverage(db) == {}
    assert svc.next_task(rid) == a  # the rater who comes back still gets the same task
    svc.submit(rid, a.assignment_id, "A", a.nonce)
    with svc._db() as db:
        assert svc._coverage(db) == {a.task_id: 1}
