"""Rater pages that fail, withdrawal and honest words, through streamlit.testing.v1.AppTest on a real SQLite file."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.study.helpers import make_service, rater_at_tasks
from tests.study.test_app import click, page_text, start, title

from study.db import connect
from study.export import export_rows


def test_a_broken_visualization_shows_a_plain_message_retires_the_task_and_the_rater_goes_on(monkeypatch, tmp_path, study_bundle) -> None:
    bundle = Path(shutil.copytree(study_bundle, tmp_path / "bundle"))
    svc = make_service(tmp_path, bundle)
    # After `serve`'s check, every dense visualization turns into a non-image (a symlink to /etc/passwd):
    # the policy keeps conditions balanced, so the rater certainly meets one.
    for item in json.loads((bundle / "manifest.json").read_text())["items"]:
        for rel in item["visualizations"]["dense"].values():
            (bundle / rel).unlink()
            (bundle / rel).symlink_to("/etc/passwd")
    rid = rater_at_tasks(svc)
    at = start(monkeypatch, svc, token=svc.rater(rid).token)
    failures, answered = 0, 0
    for _ in range(20):
        if title(at) == "Thank you!":
            break
        text = page_text(at)
        if at.error:
            assert "could not be shown" in at.error[0].value
            for leak in ("Traceback", "/etc/passwd", str(tmp_path), "Error", ".py"):
                assert leak not in text, leak
            failures += 1
            click(at, "error-continue")
            continue
        key = next(b.key for b in at.button if b.key and b.key.startswith("task-") and b.key.endswith("-B"))
        click(at, key)
        answered += 1
    assert title(at) == "Thank you!" and failures >= 1
    db = connect(svc.db_path)
    errors = [json.loads(r[0]) for r in db.execute("SELECT detail FROM events WHERE kind = 'task_error'").fetchall()]
    assert len(errors) == failures and all("/dense/" in e["task_id"] for e in errors)
    assert "UnidentifiedImageError" in errors[0]["error"] or "cannot identify" in errors[0]["error"]
    retired = {r[0] for r in db.execute("SELECT task_id FROM retired_tasks").fetchall()}
    assert retired == {e["task_id"] for e in errors}
    rows = export_rows(svc.db_path)
    assert len(rows) == answered and not retired & {r["task_id"] for r in rows}
    # The admin sees the errors.
    assert [e["task_id"] for e in svc.errors()][::-1] == [e["task_id"] for e in errors]


def test_withdrawal_from_a_task_page(monkeypatch, tmp_path, study_bundle) -> None:
    svc = make_service(tmp_path, study_bundle)
    rid = rater_at_tasks(svc)
    a = svc.next_task(rid)
    svc.submit(rid, a.assignment_id, "A", a.nonce)
    at = start(monkeypatch, svc, token=svc.rater(rid).token)
    assert title(at).startswith("Task 2")
    click(at, "withdraw-confirm")
    assert title(at) == "You have withdrawn"
    assert "left out of" in page_text(at) or "will not be used" in page_text(at)
    assert export_rows(svc.db_path) == []
    assert connect(svc.db_path).execute("SELECT COUNT(*) FROM responses").fetchone()[0] == 1  # kept, marked


def test_the_declined_page_tells_a_prolific_participant_to_return_the_submission(monkeypatch, tmp_path, study_bundle) -> None:
    from tests.study.helpers import PROLIFIC_STUDY

    svc = make_service(tmp_path, study_bundle, identity="prolific")
    at = start(monkeypatch, svc, PROLIFIC_PID="60aa1bb2cc3dd4ee5ff60718", STUDY_ID=PROLIFIC_STUDY, SESSION_ID="se")
    click(at, "consent-decline")
    assert title(at) == "You chose not to take part"
    text = page_text(at)
    assert "return your submission on Prolific" in text and "Nothing was recorded" not in text
    assert "None" not in [m.value for m in at.markdown]
