"""Accessibility and habits of the study pages, in headless chromium against `spade-study serve`:
axe-core on every page type (no serious or critical violation), keyboard answers that respect the
minimum viewing time, alt text, reachable instructions, the break screen, the feedback box; over
HTTP: no framing by other sites and no public /_stcore/metrics.

axe-core comes from npm (`make test` runs scripts/install_axe.sh into .cache/axe); the axe test
skips, saying so, only when it is not installed.
"""
from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import pytest
from study.examples import write_config
from study.browser import answer_step, current_assignment_id, current_stage, task_counter
from tests.study.helpers import REPO, rater_at_tasks, serve_study

from study.config import load_config
from study.db import connect
from study.invites import create_invites
from study.render import SIDE_COLOURS, contrast_ratio, label_text_colour
from study.service import StudyService

pytestmark = [pytest.mark.slow, pytest.mark.browser]

AXE = REPO / ".cache" / "axe" / "node_modules" / "axe-core" / "axe.min.js"
MIN_VIEW_S = 0.8
PASSWORD = "a11y-admin"
TASKS, CATCH, BREAK_EVERY = 3, 1, 2


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, study_bundle):
    """One study server for the module: breaks after every 2 answers, a feedback box, 0.8 s minimum viewing time."""
    root = tmp_path_factory.mktemp("a11y")
    config = write_config(root / "study.toml", identity="invite", tasks_per_rater=TASKS, catch_per_rater=CATCH,
                          practice_min_correct=1, min_view_seconds=MIN_VIEW_S, break_every=BREAK_EVERY, feedback=True)  # fmt: skip
    db = root / "study.db"
    with serve_study(study_bundle, db, config, env={"SPADE_STUDY_ADMIN_PASSWORD": PASSWORD}) as url:
        # The same study in this process, to take a rater to the tasks without clicking through the
        # consent, instructions and practice pages (the axe test clicks through those).
        svc = StudyService(db, study_bundle, load_config(config))
        yield {"url": url, "db": db, "svc": svc}


def axe_serious(page) -> list[str]:
    """Run axe-core on the page; return its serious and critical violations, one line each."""
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [
        f"{v['impact']}: {v['id']} ({v['help']}) at {n['html'][:160]}: {n.get('failureSummary', '')[:200]}"
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
        for n in v["nodes"][:3]
    ]


def settled(page) -> None:
    """Wait for the page's pictures and a quiet moment (axe reads the final DOM)."""
    page.wait_for_function("Array.from(document.images).every(i => i.complete)", timeout=30_000)
    page.wait_for_timeout(400)


BREAK = "[class*='st-key-break-'] button"


def page_stage(page) -> str:
    """helpers.current_stage, plus the break screen (which it does not know)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if page.locator(BREAK).count():
            return "break"
        try:
            return current_stage(page, timeout_ms=500)
        except TimeoutError:
            continue
    raise TimeoutError("no known study page appeared")


def take_break(page) -> None:
    """Leave the break screen with its Continue button."""
    page.locator(BREAK).click()
    page.locator(BREAK).first.wait_for(state="detached", timeout=30_000)


def wait_enabled(page, key: str) -> None:
    page.locator(f".st-key-{key} button:not([disabled])").wait_for(timeout=30_000)


def test_axe_finds_no_serious_violation_on_any_page_type(served, browser) -> None:
    if not AXE.is_file():
        pytest.skip("axe-core is not installed: run `sh scripts/install_axe.sh` (needs npm) or `make test`")
    inv = create_invites(served["db"], 1, served["url"])[0]
    page = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
    found: dict[str, list[str]] = {}
    page.goto(served["url"] + "/?token=not-a-real-token")
    assert current_stage(page) == "refused"
    settled(page)
    found["refusal"] = axe_serious(page)
    page.goto(inv.url)
    seen: set[str] = set()
    for _ in range(60):
        stage = page_stage(page)
        if stage not in seen:
            seen.add(stage)
            settled(page)
            found[stage] = axe_serious(page)
        if stage == "done":
            break
        if stage == "break":
            take_break(page)
            continue
        if stage == "task":
            wait_enabled(page, f"task-{current_assignment_id(page)}-A")
        answer_step(page)
    assert {"consent", "instructions", "practice", "practice_feedback", "task", "break", "done"} <= seen, seen
    page.goto(served["url"] + "/?page=admin")
    page.get_by_label("Admin password").fill(PASSWORD)
    page.locator(".st-key-admin-sign-in button").click()
    page.get_by_text("Participant flow").first.wait_for(timeout=60_000)
    settled(page)
    found["admin"] = axe_serious(page)
    page.context.close()
    assert {k: v for k, v in found.items() if v} == {}


def test_keyboard_answers_wait_for_the_minimum_viewing_time(served, browser) -> None:
    inv = create_invites(served["db"], 1, served["url"])[0]
    rater_at_tasks(served["svc"], {"token": inv.token})
    page = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
    page.goto(inv.url)
    assert current_stage(page) == "task"
    # The hints are visible: the keys on the buttons and a sentence under them.
    page.get_by_text("press 1 for A, 2 for B, 3 for Can't decide").wait_for(timeout=30_000)
    aid = current_assignment_id(page)
    wait_enabled(page, f"task-{aid}-B")
    page.keyboard.press("2")
    # Task 2 arrives with its buttons disabled for the minimum viewing time: a key pressed then
    # (caught in the page itself, the moment the disabled buttons appear) must answer nothing.
    page.wait_for_function(
        f"""() => {{ const b = document.querySelector("[class*='st-key-task-'][class*='-A'] button");
                    return b && b.disabled && !b.closest('.st-key-task-{aid}-A'); }}""",
        polling="raf", timeout=60_000,
    )
    page.keyboard.press("1")
    aid2 = current_assignment_id(page)
    assert aid2 != aid
    wait_enabled(page, f"task-{aid2}-B")
    page.wait_for_timeout(300)
    assert connect(served["db"]).execute("SELECT COUNT(*) FROM responses WHERE assignment_id = ?", [aid2]).fetchone()[0] == 0
    page.keyboard.press("2")
    page.locator(f".st-key-task-{aid2}-B").wait_for(state="detached", timeout=60_000)
    assert page_stage(page) == "break"  # after every 2 answers
    rows = list(connect(served["db"]).query("SELECT choice FROM responses_export WHERE rater_id = ?", [inv.rater_id]))
    assert [r["choice"] for r in rows] == ["B", "B"]
    take_break(page)
    assert page_stage(page) == "task" and task_counter(page)[0] == 3
    # Every picture has alt text; the instructions open from the task page.
    page.locator(".st-key-trial-regions img").nth(1).wait_for(timeout=30_000)
    alts = page.eval_on_selector_all("img", "imgs => imgs.map(i => i.getAttribute('alt') || '')")
    assert len(alts) >= 4 and all(a.strip() for a in alts), alts
    page.get_by_role("button", name="Instructions").click()
    page.get_by_text("use the visualization to decide").first.wait_for(timeout=10_000)
    page.context.close()


def test_break_screen_and_feedback_box(served, browser) -> None:
    inv = create_invites(served["db"], 1, served["url"])[0]
    rater_at_tasks(served["svc"], {"token": inv.token})
    page = browser.new_context().new_page()
    page.goto(inv.url)
    breaks = 0
    for _ in range(60):
        stage = page_stage(page)
        if stage == "break":
            assert page.get_by_text("Time for a short break").is_visible()
            breaks += 1
            take_break(page)
            continue
        if stage == "done":
            break
        if stage == "task":
            wait_enabled(page, f"task-{current_assignment_id(page)}-A")
        answer_step(page)
    assert breaks == (TASKS + CATCH - 1) // BREAK_EVERY
    page.locator(".st-key-feedback-text textarea").fill("The pictures were small on my phone.")
    page.locator(".st-key-feedback-send button").click()
    page.get_by_text("Thank you for your feedback").wait_for(timeout=30_000)
    page.context.close()
    rows = connect(served["db"]).execute("SELECT detail FROM events WHERE kind = 'feedback' AND rater_id = ?", [inv.rater_id]).fetchall()
    assert [json.loads(r[0])["text"] for r in rows] == ["The pictures were small on my phone."]


def test_no_framing_by_other_sites_and_no_public_metrics(served) -> None:
    with urllib.request.urlopen(served["url"] + "/", timeout=30) as resp:
        assert resp.headers["X-Frame-Options"] == "DENY"
        assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]
    for path in ("/_stcore/metrics", "/_stcore/metrics?families=session_events", "/_stcore/metrics/"):
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(served["url"] + path, timeout=30)
        assert err.value.code == 404, path
    with pytest.raises(urllib.error.HTTPError) as err:  # only published pictures, by hash
        urllib.request.urlopen(served["url"] + "/study-picture/..%2Fmanifest.json", timeout=30)
    assert err.value.code in (400, 404)


def test_region_labels_read_at_4_5_to_1_or_better() -> None:
    white = (255, 255, 255)
    assert contrast_ratio(white, SIDE_COLOURS["B"]) == pytest.approx(2.53, abs=0.01)  # the old white "B" on orange
    for side, colour in SIDE_COLOURS.items():
        assert contrast_ratio(label_text_colour(colour), colour) >= 4.5, side
