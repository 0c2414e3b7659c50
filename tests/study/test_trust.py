"""Data a researcher can trust, at the service level: the minimum viewing time and the speeder flag,
enrolment limits, counted refusals, honest reasons, a pinned design, retired tasks, withdrawal."""
from __future__ import annotations

import json
import time

import pytest
from tests.study.helpers import PROLIFIC_STUDY, answer_all, make_service, rater_at_tasks

from contracts.responses import COLUMNS, RESPONSES_VERSION
from study.config import load_config
from study.db import DesignChanged, connect
from study.examples import write_config
from study.export import export_rows, responses_csv_text
from study.service import MAX_PARAM_CHARS, Refused, StudyService, admin_delay_seconds


def _count(svc, sql: str, params: list | None = None) -> int:
    return connect(svc.db_path).execute(sql, params or []).fetchone()[0]


def test_an_answer_before_the_minimum_viewing_time_is_refused_and_fast_ones_are_flagged(tmp_path, study_bundle) -> None:
    svc = make_service(tmp_path, study_bundle, min_view_seconds=0.3, speeder_seconds=0.8)
    rid = rater_at_tasks(svc)
    a = svc.next_task(rid)
    assert 0.2 < svc.seconds_until_answerable(a) <= 0.3
    with pytest.raises(Refused, match="came too soon and was not recorded") as exc:
        svc.submit(rid, a.assignment_id, "A", a.nonce)
    assert exc.value.reason == "too_early"
    assert _count(svc, "SELECT COUNT(*) FROM responses") == 0
    time.sleep(0.35)
    assert svc.seconds_until_answerable(a) == 0
    assert svc.submit(rid, a.assignment_id, "A", a.nonce).response_ms >= 300  # a speeder (< 0.8 s)
    b = svc.next_task(rid)
    time.sleep(0.85)
    svc.submit(rid, b.assignment_id, "B", b.nonce)  # not a speeder
    rows = export_rows(svc.db_path)
    assert [r["speeder"] for r in rows] == [1, 0]
    assert RESPONSES_VERSION == 2 and COLUMNS[-1] == "speeder"
    assert responses_csv_text(svc.db_path).splitlines()[0].endswith(",response_ms,speeder")


def test_a_missing_confidence_is_not_called_tampering(tmp_path, study_bundle) -> None:
    svc = make_service(tmp_path, study_bundle, confidence=True)
    rid = rater_at_tasks(svc)
    a = svc.next_task(rid)
    with pytest.raises(Refused) as exc:
        svc.submit(rid, a.assignment_id, "A", a.nonce)
    assert exc.value.reason == "missing_confidence"
    with pytest.raises(Refused) as exc:
        svc.submit(rid, a.assignment_id, "A", a.nonce, confidence=9)
    assert exc.value.reason == "tampered"


@pytest.mark.parametrize("identity", ["open", "prolific"])
def test_max_raters_stops_enrolment(tmp_path, study_bundle, identity) -> None:
    svc = make_service(tmp_path, study_bundle, identity=identity, max_raters=2)

    def params(i: int) -> dict:
        if identity == "open":
            return {}
        return {"PROLIFIC_PID": f"pid{i:021d}", "STUDY_ID": PROLIFIC_STUDY, "SESSION_ID": f"s{i}"}

    first = svc.consent(params(0))
    svc.consent(params(1))
    with pytest.raises(Refused, match="has all the participants it needs") as exc:
        svc.consent(params(2))
    assert exc.value.reason == "study_full"
    if identity == "prolific":
        assert "return your submission" in exc.value.message
        # An enrolled participant still comes back.
        assert svc.consent(params(0)).rater_id == first.rater_id
    assert _count(svc, "SELECT COUNT(*) FROM raters") == 2


def test_prolific_study_id_must_match_and_parameters_have_a_length_limit(tmp_path, study_bundle) -> None:
    svc = make_service(tmp_path, study_bundle, identity="prolific")
    ok = {"PROLIFIC_PID": "5f1a2b3c4d5e6f7a8b9c0d1e", "STUDY_ID": PROLIFIC_STUDY, "SESSION_ID": "x1"}
    with pytest.raises(Refused, match="belongs to another Prolific study") as exc:
        svc.consent(ok | {"STUDY_ID": "another-study"})
    assert exc.value.reason == "wrong_study" and "return your submission" in exc.value.message
    for key in ("STUDY_ID", "SESSION_ID", "PROLIFIC_PID", "utm_source"):
        with pytest.raises(Refused) as exc:
            svc.consent(ok | {key: "x" * 100_000})
        assert exc.value.reason == "invalid_link"
    with pytest.raises(Refused):
        svc.identify(ok | {"x" * (MAX_PARAM_CHARS + 1): "1"})
    assert _count(svc, "SELECT COUNT(*) FROM raters") == 0
    assert svc.consent(ok).stage == "instructions"
    with pytest.raises(Exception, match=r"needs \[prolific\] study_id"):
        load_config(write_config(tmp_path / "p.toml", identity="prolific"))


def test_anonymous_refusals_are_counted_not_stored_one_row_each(tmp_path, study_bundle) -> None:
    svc = make_service(tmp_path, study_bundle, identity="invite")
    events_before = _count(svc, "SELECT COUNT(*) FROM events")
    for i in range(200):
        with pytest.raises(Refused):
            svc.identify({"token": f"guess-{i}"})
    assert _count(svc, "SELECT COUNT(*) FROM events") == events_before
    assert _count(svc, "SELECT COUNT(*) FROM refusal_counts") == 1
    assert _count(svc, "SELECT n FROM refusal_counts WHERE reason = 'unknown_token'") == 200
    assert svc.stats()["totals"]["refusals"] == 200


def test_the_design_is_pinned_at_first_use(tmp_path, study_bundle) -> None:
    svc = make_service(tmp_path, study_bundle)
    changed = write_config(tmp_path / "changed.toml", identity="open", min_view_seconds=0, tasks_per_rater=5, catch_per_rater=0)
    with pytest.raises(DesignChanged) as exc:
        StudyService(svc.db_path, study_bundle, load_config(changed))
    assert exc.value.changes == {"catch_per_rater": (1, 0), "tasks_per_rater": (4, 5)}
    assert "catch_per_rater: 1 -> 0; tasks_per_rater: 4 -> 5" in str(exc.value)
    same_design = write_config(tmp_path / "same.toml", identity="open", min_view_seconds=0, title="Another title")
    StudyService(svc.db_path, study_bundle, load_config(same_design))  # not a design key: accepted
    again = StudyService(svc.db_path, study_bundle, load_config(changed), allow_design_change=True)
    assert again.design_changes == exc.value.changes
    rows = list(connect(svc.db_path).query("SELECT detail FROM events WHERE kind = 'design_changed'"))
    assert [json.loads(r["detail"]) for r in rows] == [{"catch_per_rater": [1, 0], "tasks_per_rater": [4, 5]}]
    StudyService(svc.db_path, study_bundle, load_config(changed))  # the new design is the pinned one now


def test_a_retired_task_is_never_served_again_and_the_rater_goes_on(tmp_path, study_bundle) -> None:
    svc = make_service(tmp_path, study_bundle)
    rid = rater_at_tasks(svc)
    a = svc.next_task(rid)
    svc.retire_task(rid, a.assignment_id, "UnidentifiedImageError: cannot identify image file")
    b = svc.next_task(rid)
    assert b.assignment_id != a.assignment_id and b.task_id != a.task_id
    with pytest.raises(Refused) as exc:
        svc.submit(rid, a.assignment_id, "A", a.nonce)
    assert exc.value.reason == "voided"
    answer_all(svc, rid)
    assert svc.rater(rid).stage == "done"
    others = [rater_at_tasks(svc) for _ in range(3)]
    for other in others:
        answer_all(svc, other)
    served = [r[0] for r in connect(svc.db_path).execute("SELECT task_id FROM assignments").fetchall()]
    assert served.count(a.task_id) == 1
    assert svc.errors()[0]["task_id"] == a.task_id


def test_a_withdrawn_rater_leaves_exports_and_analysis(tmp_path, study_bundle) -> None:
    svc = make_service(tmp_path, study_bundle)
    stay, leave = rater_at_tasks(svc), rater_at_tasks(svc)
    answer_all(svc, stay)
    answer_all(svc, leave)
    assert svc.withdraw(leave).stage == "withdrawn"
    assert {r["rater_id"] for r in export_rows(svc.db_path)} == {stay}
    raters = [r[0] for r in connect(svc.db_path).execute("SELECT rater_id FROM raters_export").fetchall()]
    assert raters == [stay]
    # Kept in the database, marked withdrawn.
    assert _count(svc, "SELECT COUNT(*) FROM responses r JOIN assignments a USING (assignment_id) WHERE a.rater_id = ?", [leave]) > 0
    with pytest.raises(Refused):
        svc.next_task(leave)


def test_admin_sign_in_has_a_growing_delay_logs_failures_and_gives_an_expiring_session(tmp_path, study_bundle) -> None:
    svc = make_service(tmp_path, study_bundle)
    assert [admin_delay_seconds(n) for n in range(5)] == [0, 1, 2, 4, 8]
    with pytest.raises(Refused) as exc:
        svc.admin_sign_in("guess", "right-password")
    assert exc.value.reason == "admin_wrong"
    # Inside the delay, nothing is checked, not even the right password: many connections gain nothing.
    for _ in range(20):
        with pytest.raises(Refused) as exc:
            svc.admin_sign_in("right-password", "right-password")
        assert exc.value.reason == "admin_wait"
    assert _count(svc, "SELECT COUNT(*) FROM events WHERE kind = 'admin_sign_in_failed'") == 1
    assert _count(svc, "SELECT n FROM refusal_counts WHERE reason = 'admin_sign_in_too_soon'") == 20
    time.sleep(1.05)
    token = svc.admin_sign_in("right-password", "right-password")
    assert svc.admin_session_valid(token) and not svc.admin_session_valid(token + "x") and not svc.admin_session_valid(None)
    assert _count(svc, "SELECT COUNT(*) FROM admin_sessions WHERE token_hash = ?", [token]) == 0  # stored hashed
    svc.admin_sign_out(token)
    assert not svc.admin_session_valid(token)
