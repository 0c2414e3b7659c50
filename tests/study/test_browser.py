"""The whole flow in a real browser: `spade-study serve` on loopback, headless Debian chromium via Playwright."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from study.examples import make_bundle, write_config
from study.browser import answer_step, current_assignment_id, current_stage, drive_rater, step_together, task_counter
from tests.study.helpers import serve_study

from study.db import connect
from study.invites import create_invites

pytestmark = [pytest.mark.slow, pytest.mark.browser]

TASKS, CATCH = 4, 1
TOTAL = TASKS + CATCH
PATTERN = {1: "A", 2: "B", 3: "undecided", 4: "B", 5: "A"}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):
    """One study server for the module: bundle, database and config in a temporary folder."""
    root = tmp_path_factory.mktemp("served-study")
    bundle = make_bundle(root / "bundle", n_items=12)
    config = write_config(root / "study.toml", identity="invite", tasks_per_rater=TASKS, catch_per_rater=CATCH, practice_min_correct=1)
    db = root / "study.db"
    with serve_study(bundle, db, config) as url:
        yield {"url": url, "db": db}


def _rows(db: Path, rater_id: str) -> list[dict]:
    return list(connect(db).query("SELECT * FROM responses_export WHERE rater_id = ?", [rater_id]))


def test_one_rater_from_invite_link_to_completion_code_with_a_reload(served, browser) -> None:
    inv = create_invites(served["db"], 1, served["url"])[0]
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    code = drive_rater(page, inv.url, choose=lambda n: PATTERN[n], reload_at_task=3)
    context.close()
    db = connect(served["db"])
    rater = db.execute("SELECT completion_code, completed_at FROM raters WHERE rater_id = ?", [inv.rater_id]).fetchone()
    assert code == rater[0] and code.startswith("SPADE-") and rater[1]
    rows = _rows(served["db"], inv.rater_id)
    assert [r["choice"] for r in rows] == [PATTERN[n] for n in range(1, TOTAL + 1)]
    assert sum(r["is_catch"] for r in rows) == CATCH
    assert len({r["item_id"] for r in rows}) == TOTAL
    # The reload re-showed task 3 without a new assignment: exactly TOTAL assignments, none pending.
    assert db.execute("SELECT COUNT(*) FROM assignments WHERE rater_id = ?", [inv.rater_id]).fetchone()[0] == TOTAL
    assert all(r["response_ms"] >= 0 for r in rows)


def test_two_raters_at_once_in_two_browser_contexts(served, browser) -> None:
    invites = create_invites(served["db"], 2, served["url"])
    contexts = [browser.new_context() for _ in invites]
    pages = [c.new_page() for c in contexts]
    for page, inv in zip(pages, invites):
        page.goto(inv.url)
    chooses = [lambda n: "A", lambda n: "B"]
    for _ in range(60):
        stages = step_together(pages, chooses)
        if all(s == "done" for s in stages):
            break
    else:
        raise AssertionError(f"the raters did not finish: {stages}")
    codes = [p.locator("code").first.inner_text().strip() for p in pages]
    for c in contexts:
        c.close()
    assert len(set(codes)) == 2
    for inv, expected, code in zip(invites, ("A", "B"), codes):
        rows = _rows(served["db"], inv.rater_id)
        assert [r["choice"] for r in rows] == [expected] * TOTAL
        assert Counter(r["condition"] for r in rows if not r["is_catch"]) == {"dense": 2, "spade": 2}
        stored = connect(served["db"]).execute("SELECT completion_code FROM raters WHERE rater_id = ?", [inv.rater_id]).fetchone()[0]
        assert stored == code
    db = connect(served["db"])
    # Across the module's raters: one response per assignment, none lost, no task twice for a rater.
    assert db.execute("SELECT COUNT(*) FROM responses").fetchone()[0] == db.execute(
        "SELECT COUNT(*) FROM assignments"
    ).fetchone()[0]
    assert db.execute("SELECT COUNT(*) FROM events WHERE kind = 'refused'").fetchone()[0] == 0


def test_unknown_token_gets_the_refusal_page(served, browser) -> None:
    page = browser.new_page()
    page.goto(served["url"] + "/?token=this-is-not-a-token")
    assert current_stage(page) == "refused"
    # The heading arrives first; the message streams in right after it.
    page.get_by_text("This study link is not valid").wait_for(timeout=30_000)
    assert page.locator("[class*='st-key-']").count() == 0  # no widget to click past the refusal
    page.close()


def test_a_double_click_on_an_answer_writes_one_response(served, browser) -> None:
    inv = create_invites(served["db"], 1, served["url"])[0]
    page = browser.new_page()
    page.goto(inv.url)
    while current_stage(page) != "task":
        answer_step(page)
    assert task_counter(page) == (1, TOTAL)
    aid = current_assignment_id(page)
    page.locator(f".st-key-task-{aid}-B button").dblclick()
    page.locator(f".st-key-task-{aid}-B").wait_for(state="detached", timeout=60_000)
    assert current_stage(page) == "task"
    page.wait_for_timeout(1500)  # let a second rerun, if any, land
    assert task_counter(page) == (2, TOTAL)
    rows = _rows(served["db"], inv.rater_id)
    assert [(r["choice"]) for r in rows] == ["B"]
    page.close()
