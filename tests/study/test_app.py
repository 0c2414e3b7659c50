"""Every page of the Streamlit app with streamlit.testing.v1.AppTest, against a real SQLite file."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from PIL import ImageChops
from streamlit.testing.v1 import AppTest
from tests.study.helpers import PROLIFIC_STUDY, answer_all, make_service, rater_at_tasks

from study.db import connect
from study.invites import create_invites, revoke
from study.render import catch_visualization, load_rgb, task_images

APP = Path(__file__).resolve().parents[2] / "study" / "app.py"


def start(monkeypatch, svc, password: str | None = None, **params: str) -> AppTest:
    """Run the app on the service's bundle, database and config, with these query parameters."""
    monkeypatch.setenv("SPADE_STUDY_BUNDLE", str(svc.bundle))
    monkeypatch.setenv("SPADE_STUDY_DB", str(svc.db_path))
    monkeypatch.setenv("SPADE_STUDY_CONFIG", str(svc.config_path))
    if password is None:
        monkeypatch.delenv("SPADE_STUDY_ADMIN_PASSWORD", raising=False)
    else:
        monkeypatch.setenv("SPADE_STUDY_ADMIN_PASSWORD", password)
    at = AppTest.from_file(str(APP), default_timeout=60)
    for k, v in params.items():
        at.query_params[k] = v
    at.run()
    assert not at.exception, at.exception
    return at


def title(at: AppTest) -> str:
    return at.title[0].value if len(at.title) else ""


def page_text(at: AppTest) -> str:
    """All the text a rater can read on the page."""
    parts = [e.value for kind in ("title", "header", "subheader", "markdown", "caption", "success", "info", "warning", "error", "code") for e in getattr(at, kind)]
    parts += [b.label for b in at.button] + [c.label for c in at.checkbox]
    return "\n".join(str(p) for p in parts)


def n_images(at: AppTest) -> int:
    """Pictures on the page (one st.image element may hold several, e.g. the two enlarged regions)."""
    return sum(max(1, len(e.proto.imgs)) for e in at.get("image"))


def click(at: AppTest, key: str) -> AppTest:
    at.button(key=key).click().run()
    assert not at.exception, at.exception
    return at


def _class_names(bundle: Path) -> set[str]:
    manifest = json.loads((bundle / "manifest.json").read_text())
    names = set()
    for item in manifest["items"]:
        for label in (item["true_label"], item["predicted_label"]):
            names |= {label, label.replace("_", " ")}
    return names


def test_consent_page_requires_agreement_then_records_it(monkeypatch, tmp_path, study_bundle) -> None:
    svc = make_service(tmp_path, study_bundle, identity="invite")
    inv = create_invites(svc.db_path, 1, "http://127.0.0.1:8501/")[0]
    at = start(monkeypatch, svc, token=inv.token)
    assert title(at) == "Consent to take part"
    assert "research study" in page_text(at)  # the config's consent text
    assert f"You will see {svc.policy.total} short picture puzzles" in page_text(at).replace("\n", " ")
    assert at.button(key="consent-continue").disabled
    at.checkbox(key="consent-agree").check().run()
    assert not at.button(key="consent-continue").disabled
    click(at, "consent-continue")
    assert title(at) == "Instructions"
    assert svc.rater(inv.rater_id).stage == "instructions"


def test_declining_consent_records_nothing_but_an_event(monkeypatch, tmp_path, study_bundle) -> None:
    svc = make_service(tmp_path, study_bundle)  # open enrollment
    at = start(monkeypatch, svc)
    click(at, "consent-decline")
    assert title(at) == "You chose not to take part"
    db = connect(svc.db_path)
    assert db.execute("SELECT COUNT(*) FROM raters").fetchone()[0] == 0
    assert db.execute("SELECT COUNT(*) FROM events WHERE kind = 'declined'").fetchone()[0] == 1
    text = page_text(at)
    assert "Nothing was recorded" not in text and "kept only a note" in text
    assert "None" not in [m.value for m in at.markdown]  # no stray "None" from `x() if c else y()`


def test_open_enrollment_puts_the_new_token_in_the_link_so_a_reload_resumes(monkeypatch, tmp_path, study_bundle) -> None:
    svc = make_service(tmp_path, study_bundle)
    at = start(monkeypatch, svc)
    at.checkbox(key="consent-agree").check().run()
    click(at, "consent-continue")
    token = at.query_params["token"]
    token = token[0] if isinstance(token, list) else token
    rater = svc.identify({"token": token})
    assert rater is not None and rater.stage == "instructions"
    again = start(monkeypatch, svc, token=token)  # a reload, or the link in another browser
    assert title(again) == "Instructions"


def test_instructions_page_has_a_worked_example(monkeypatch, tmp_path, study_bundle) -> None:
    svc = make_service(tmp_path, study_bundle)
    rater = svc.consent({})
    at = start(monkeypatch, svc, token=rater.token)
    assert title(at) == "Instructions"
    assert at.subheader[0].value == "A worked example"
    assert n_images(at) == 4  # visualization, photo with regions, crop A, crop B
    assert "The answer is" in at.success[0].value
    click(at, "instr-done")
    assert title(at) == "Practice"


def test_practice_gives_feedback_and_repeats_a_failed_round(monkeypatch, tmp_path, study_bundle) -> None:
    svc = make_service(tmp_path, study_bundle, practice_min_correct=3, practice_max_rounds=3)
    rater = svc.consent({})
    svc.finish_instructions(rater.rater_id)
    at = start(monkeypatch, svc, token=rater.token)
    wrong = {"A": "B", "B": "A"}
    for trial in range(3):
        assert title(at) == "Practice" and f"practice task {trial + 1} of 3" in page_text(at)
        assert n_images(at) == 4
        correct = svc.practice_trial(svc.practice_state(rater.rater_id)).correct
        choice = correct if trial == 0 else wrong[correct]
        click(at, f"practice-1-{trial}-{choice}")
        if trial == 0:
            assert at.success[0].value.startswith("Correct!")
        else:
            assert at.error[0].value.startswith("Not quite.") and f"The answer is {correct}" in at.error[0].value
        click(at, f"practice-next-1-{trial}")
    # 1 of 3 correct, 3 needed: a second round begins.
    assert "Round 2, practice task 1 of 3" in page_text(at)
    for trial in range(3):
        correct = svc.practice_trial(svc.practice_state(rater.rater_id)).correct
        click(at, f"practice-2-{trial}-{correct}")
        if trial == 2:
            assert "The study begins now" in page_text(at)
        click(at, f"practice-next-2-{trial}")
    assert title(at) == f"Task 1 of {svc.policy.total}"
    assert svc.rater(rater.rater_id).practice_passed is True


def test_task_page_records_the_answer_and_a_new_session_resumes(monkeypatch, tmp_path, study_bundle) -> None:
    svc = make_service(tmp_path, study_bundle)
    rid = rater_at_tasks(svc)
    token = svc.rater(rid).token
    at = start(monkeypatch, svc, token=token)
    total = svc.policy.total
    assert title(at) == f"Task 1 of {total}"
    assert at.get("progress")[0].proto.value == 0
    assert n_images(at) == 4
    assert [b.label for b in at.button if b.key.startswith("task-")] == ["A", "B", "Can't decide"]
    assert at.button(key="withdraw-confirm").label == "Withdraw now"  # withdrawal from every page
    first = svc.next_task(rid)
    click(at, f"task-{first.assignment_id}-B")
    assert title(at) == f"Task 2 of {total}"
    rows = list(connect(svc.db_path).query("SELECT * FROM responses_export"))
    assert [(r["task_id"], r["choice"]) for r in rows] == [(first.task_id, "B")]
    second = svc.next_task(rid)
    # A reload (a new browser session) shows the same second task; nothing new is assigned.
    again = start(monkeypatch, svc, token=token)
    assert title(again) == f"Task 2 of {total}"
    assert again.button(key=f"task-{second.assignment_id}-A") is not None
    assert connect(svc.db_path).execute("SELECT COUNT(*) FROM assignments").fetchone()[0] == 2
    # The stale first session answers the second task once; then the second session's click is a replay.
    click(at, f"task-{second.assignment_id}-undecided")
    click(again, f"task-{second.assignment_id}-A")
    assert "already answered" in again.info[0].value
    rows = list(connect(svc.db_path).query("SELECT choice FROM responses_export"))
    assert [r["choice"] for r in rows] == ["B", "undecided"]


def test_catch_trial_shows_the_correct_region_instead_of_a_visualization(tmp_path, study_bundle) -> None:
    svc = make_service(tmp_path, study_bundle, tasks_per_rater=4, catch_per_rater=2)
    rid = rater_at_tasks(svc)
    seen = {"catch": 0, "main": 0}
    while (a := svc.next_task(rid)) is not None:
        pics = task_images(a.image, a.visualization, a.box_a, a.box_b, a.correct)
        if a.is_catch:
            expected = catch_visualization(load_rgb(a.image), a.box_a if a.correct == "A" else a.box_b)
            # Same size as a real visualization (a bare, non-square crop gave catch trials away).
            assert pics["visualization"].size == load_rgb(svc.bundle / svc.items[a.item_id]["visualizations"]["dense"]["true"]).size
            seen["catch"] += 1
        else:
            expected = load_rgb(a.visualization)
            seen["main"] += 1
        assert ImageChops.difference(pics["visualization"], expected).getbbox() is None
        svc.submit(rid, a.assignment_id, a.correct, a.nonce)
    assert seen == {"catch": 2, "main": 4}


def test_confidence_rating_appears_when_enabled(monkeypatch, tmp_path, study_bundle) -> None:
    svc = make_service(tmp_path, study_bundle, confidence=True)
    rid = rater_at_tasks(svc)
    at = start(monkeypatch, svc, token=svc.rater(rid).token)
    a = svc.next_task(rid)
    click(at, f"task-{a.assignment_id}-A")  # no rating yet: refused, nothing written
    assert "confidence rating from 1 to 5" in at.info[0].value
    at.radio(key=f"confidence-{a.assignment_id}").set_value(5).run()
    click(at, f"task-{a.assignment_id}-A")
    assert connect(svc.db_path).execute("SELECT choice, confidence FROM responses").fetchall() == [("A", 5)]


def test_end_page_shows_the_code_and_the_prolific_redirect(monkeypatch, tmp_path, study_bundle) -> None:
    svc = make_service(tmp_path, study_bundle, identity="prolific", completion_code="CXYZ123")
    params = {"PROLIFIC_PID": "60aa1bb2cc3dd4ee5ff60718", "STUDY_ID": PROLIFIC_STUDY, "SESSION_ID": "se"}
    rid = rater_at_tasks(svc, params)
    answer_all(svc, rid)
    at = start(monkeypatch, svc, **params)
    assert title(at) == "Thank you!"
    assert at.code[0].value == "CXYZ123"
    link = at.get("link_button")[0].proto
    assert link.url == "https://app.prolific.com/submissions/complete?cc=CXYZ123"


def test_end_page_in_invite_mode_gives_a_per_rater_code(monkeypatch, tmp_path, study_bundle) -> None:
    svc = make_service(tmp_path, study_bundle)
    rid = rater_at_tasks(svc)
    answer_all(svc, rid)
    at = start(monkeypatch, svc, token=svc.rater(rid).token)
    assert title(at) == "Thank you!"
    assert at.code[0].value == svc.rater(rid).completion_code
    assert not at.get("link_button")


@pytest.mark.parametrize("case", ["unknown", "missing", "revoked"])
def test_refusal_page_for_bad_links(monkeypatch, tmp_path, study_bundle, case) -> None:
    svc = make_service(tmp_path, study_bundle, identity="invite")
    inv = create_invites(svc.db_path, 1, "http://127.0.0.1:8501/")[0]
    params = {"unknown": {"token": "not-a-real-token"}, "missing": {}, "revoked": {"token": inv.token}}[case]
    if case == "revoked":
        revoke(svc.db_path, inv.token)
    at = start(monkeypatch, svc, **params)
    assert title(at) == "Cannot continue"
    expected = {"unknown": "not valid", "missing": "by invitation", "revoked": "withdrawn"}[case]
    assert expected in at.error[0].value
    assert not at.button  # nothing to click past the refusal


def test_admin_page_refuses_to_open_without_a_password(monkeypatch, tmp_path, study_bundle) -> None:
    svc = make_service(tmp_path, study_bundle)
    at = start(monkeypatch, svc, page="admin")
    assert title(at) == "Admin"
    assert "disabled: no password is set" in at.error[0].value
    assert not at.text_input and not at.get("download_button")


def test_admin_page_with_a_password(monkeypatch, tmp_path, study_bundle) -> None:
    import time

    svc = make_service(tmp_path, study_bundle)
    rid = rater_at_tasks(svc)
    answer_all(svc, rid, choose=lambda a: a.correct)
    at = start(monkeypatch, svc, password="s3cret-admin", page="admin")
    at.text_input(key="admin-password").input("wrong").run()
    click(at, "admin-sign-in")
    assert at.error[0].value == "Wrong password. The next try opens in 1 s."
    # Within the delay even the right password is turned away (the growing delay, not a check).
    at.text_input(key="admin-password").input("s3cret-admin").run()
    click(at, "admin-sign-in")
    assert at.error[0].value.startswith("Too many wrong passwords: try again in")
    assert not at.metric
    time.sleep(1.1)
    click(at, "admin-sign-in")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics == {"Raters": "1", "Completed": "1", "Responses": str(svc.policy.total), "Refused requests": "1"}
    conditions = at.dataframe[0].value
    assert list(conditions["condition"]) == ["dense", "spade"]
    assert list(conditions["agreement"]) == [1.0, 1.0]
    assert not at.get("download_button")  # data leave through `spade-study db`, never a /media URL
    # Every failure is logged; the sign-in lives in a session token, never the password, in the address.
    db = connect(svc.db_path)
    assert db.execute("SELECT COUNT(*) FROM events WHERE kind = 'admin_sign_in_failed'").fetchone()[0] == 1
    session = at.query_params["admin_session"]
    session = session[0] if isinstance(session, list) else session
    assert "s3cret" not in session and len(session) >= 24
    # A reload (a new browser session with the same address) stays signed in.
    again = start(monkeypatch, svc, password="s3cret-admin", page="admin", admin_session=session)
    assert [m.label for m in again.metric][0] == "Raters"
    forged = start(monkeypatch, svc, password="s3cret-admin", page="admin", admin_session="x" * 32)
    assert not forged.metric and forged.text_input(key="admin-password")


def test_admin_password_from_streamlit_secrets(monkeypatch, tmp_path, study_bundle) -> None:
    svc = make_service(tmp_path, study_bundle)
    monkeypatch.setenv("SPADE_STUDY_BUNDLE", str(svc.bundle))
    monkeypatch.setenv("SPADE_STUDY_DB", str(svc.db_path))
    monkeypatch.setenv("SPADE_STUDY_CONFIG", str(svc.config_path))
    monkeypatch.delenv("SPADE_STUDY_ADMIN_PASSWORD", raising=False)
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.secrets["admin_password"] = "from-secrets"
    at.query_params["page"] = "admin"
    at.run()
    at.text_input(key="admin-password").input("from-secrets").run()
    click(at, "admin-sign-in")
    assert [m.label for m in at.metric][0] == "Raters"


def test_unconfigured_app_explains_how_to_start(monkeypatch) -> None:
    for var in ("SPADE_STUDY_BUNDLE", "SPADE_STUDY_DB", "SPADE_STUDY_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    at = AppTest.from_file(str(APP), default_timeout=60).run()
    assert title(at) == "Cannot continue"
    assert "spade-study serve" in at.error[0].value


def test_class_names_never_reach_a_rater_page(monkeypatch, tmp_path, study_bundle) -> None:
    """Walk one rater through every page and look for the bundle's class names in all visible text."""
    svc = make_service(tmp_path, study_bundle)
    names = _class_names(study_bundle)
    at = start(monkeypatch, svc)
    texts = [page_text(at)]
    at.checkbox(key="consent-agree").check().run()
    click(at, "consent-continue")
    texts.append(page_text(at))
    click(at, "instr-done")
    rid = svc.identify({"token": at.query_params["token"][0] if isinstance(at.query_params["token"], list) else at.query_params["token"]}).rater_id
    while svc.rater(rid).stage == "practice":
        st_ = svc.practice_state(rid)
        texts.append(page_text(at))
        click(at, f"practice-{st_.round}-{st_.trial}-{svc.practice_trial(st_).correct}")
        texts.append(page_text(at))
        click(at, f"practice-next-{st_.round}-{st_.trial}")
    while (a := svc.next_task(rid)) is not None:
        texts.append(page_text(at))
        click(at, f"task-{a.assignment_id}-A")
    texts.append(page_text(at))
    assert title(at) == "Thank you!"
    blob = "\n".join(texts).lower()
    assert len(texts) > 10 and "Which region" in "\n".join(texts)
    leaked = sorted(n for n in names if re.search(r"\b" + re.escape(n.lower()) + r"\b", blob))
    assert not leaked, f"class names shown to a rater: {leaked}"


def test_a_database_of_another_schema_version_gets_an_explanation(monkeypatch, tmp_path, study_bundle) -> None:
    from study.db import SCHEMA_VERSION, open_db

    svc = make_service(tmp_path, study_bundle)
    open_db(svc.db_path).execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    at = start(monkeypatch, svc)
    assert title(at) == "Cannot continue"
    assert f"schema version 99, but this code reads version {SCHEMA_VERSION}" in at.error[0].value
