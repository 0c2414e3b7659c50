"""The task page's layout in headless chromium at a desktop size (1280x800) and a phone size (390x844):
what must be on screen without scrolling, and that every new page starts at the top.

Screenshots go to tmp/artifacts/study/ (see `artifacts_dir`); bounding boxes are checked, not pixels.
"""
from __future__ import annotations

import pytest
from study.examples import write_config
from study.browser import answer_step, current_assignment_id, current_stage, task_counter
from tests.study.helpers import REPO, serve_study

from study.invites import create_invites

pytestmark = [pytest.mark.slow, pytest.mark.browser]

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
ARTIFACTS = REPO / "tmp" / "artifacts" / "study"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, study_bundle):
    """One study server for the module (no minimum viewing time: the layout is what is tested here)."""
    root = tmp_path_factory.mktemp("layout")
    config = write_config(root / "study.toml", identity="invite", tasks_per_rater=4, catch_per_rater=1,
                          practice_min_correct=1, min_view_seconds=0)  # fmt: skip
    db = root / "study.db"
    with serve_study(study_bundle, db, config) as url:
        yield {"url": url, "db": db}


def box(page, selector: str, nth: int = 0) -> dict:
    """The bounding box of the nth element matching `selector` (fails when it has none)."""
    loc = page.locator(selector).nth(nth)
    loc.wait_for(state="visible", timeout=30_000)
    b = loc.bounding_box()
    assert b is not None, f"{selector} is not rendered"
    return b


def assert_on_screen(page, selector: str, viewport: dict, nth: int = 0) -> dict:
    """The element is entirely inside the viewport (no scrolling needed); return its box."""
    b = box(page, selector, nth)
    assert b["y"] >= 0 and b["x"] >= 0, f"{selector} starts above or left of the screen: {b}"
    assert b["y"] + b["height"] <= viewport["height"] + 0.5, f"{selector} ends below the screen ({viewport}): {b}"
    assert b["x"] + b["width"] <= viewport["width"] + 0.5, f"{selector} ends right of the screen ({viewport}): {b}"
    return b


def scroll_offsets(page) -> list[float]:
    """Scroll offsets of the page and of Streamlit's scrolling containers."""
    return page.evaluate(
        """() => [document.scrollingElement, ...document.querySelectorAll('[data-testid="stMain"], [data-testid="stAppViewContainer"]')]
                  .filter(Boolean).map(e => e.scrollTop)"""
    )


def scroll_down(page) -> None:
    """Scroll as far as the page goes (a swipe: touch contexts take no mouse wheel)."""
    page.evaluate(
        """() => [document.scrollingElement, ...document.querySelectorAll('[data-testid="stMain"], [data-testid="stAppViewContainer"]')]
                  .filter(Boolean).forEach(e => e.scrollTo(0, e.scrollHeight))"""
    )
    page.wait_for_timeout(300)


def pictures_loaded(page) -> None:
    """Wait until the page's trial pictures are on it and loaded (the page has its final height)."""
    page.locator(".st-key-trial-photo img").wait_for(state="visible", timeout=30_000)
    page.wait_for_function("Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)", timeout=30_000)


def goto_task(page, url: str | None) -> None:
    """Open `url` (None: stay) and answer until a task is shown with its photo."""
    if url is not None:
        page.goto(url)
    while current_stage(page) != "task":
        answer_step(page)
    page.locator(".st-key-trial-photo img").wait_for(state="visible", timeout=30_000)


TRIAL = [".st-key-trial-visual img", ".st-key-trial-photo img"]
REGIONS = ".st-key-trial-regions img"


def test_desktop_task_page_fits_the_screen_and_every_new_task_starts_at_the_top(served, browser) -> None:
    inv = create_invites(served["db"], 1, served["url"])[0]
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    page.goto(inv.url)
    while current_stage(page) != "instructions":
        answer_step(page)
    # The instructions page is taller than the screen: the rater scrolls down to its button.
    pictures_loaded(page)
    page.locator(".st-key-instr-done button").scroll_into_view_if_needed()
    assert max(scroll_offsets(page)) > 0
    page.locator(".st-key-instr-done button").click()
    page.locator(".st-key-instr-done").wait_for(state="detached", timeout=60_000)
    assert current_stage(page) == "practice"
    page.wait_for_timeout(300)
    assert max(scroll_offsets(page)) == 0, "the practice opened scrolled down"
    goto_task(page, None)
    for sel in TRIAL:
        assert_on_screen(page, sel, DESKTOP)
    for nth in (0, 1):
        assert_on_screen(page, REGIONS, DESKTOP, nth)
    aid = current_assignment_id(page)
    buttons = [assert_on_screen(page, f".st-key-task-{aid}-{c} button", DESKTOP) for c in ("A", "B", "undecided")]
    photo = box(page, ".st-key-trial-photo img")
    assert photo["width"] >= 400, f"the photo is shown too small on a desktop: {photo}"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "task-1280x800.png"))
    # A rater who scrolled down on task n finds task n + 1 at the top.
    n, _ = task_counter(page)
    scroll_down(page)
    scrolled = max(scroll_offsets(page)) > 0  # only when the task page is taller than the screen
    page.locator(f".st-key-task-{aid}-B button").click()
    page.locator(f".st-key-task-{aid}-B").wait_for(state="detached", timeout=60_000)
    assert current_stage(page) == "task" and task_counter(page)[0] == n + 1
    page.wait_for_timeout(300)
    assert max(scroll_offsets(page)) == 0, f"task {n + 1} opened scrolled down (task {n} was scrolled: {scrolled})"
    assert buttons[0]["y"] == pytest.approx(buttons[2]["y"], abs=2), "the answer buttons are not in one row"
    context.close()


def test_phone_task_page_shows_both_pictures_first_and_keeps_the_answers_on_screen(served, browser) -> None:
    inv = create_invites(served["db"], 1, served["url"])[0]
    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True, device_scale_factor=2)
    page = context.new_page()
    page.goto(inv.url)
    # The instructions page is long: a rater scrolls to its button; the practice must open at the top.
    while current_stage(page) != "instructions":
        answer_step(page)
    pictures_loaded(page)
    page.locator(".st-key-instr-done button").scroll_into_view_if_needed()
    assert max(scroll_offsets(page)) > 0
    page.locator(".st-key-instr-done button").tap()
    page.locator(".st-key-instr-done").wait_for(state="detached", timeout=60_000)
    assert current_stage(page) == "practice"
    page.wait_for_timeout(300)
    assert max(scroll_offsets(page)) == 0, "the practice opened scrolled down"
    goto_task(page, None)
    vis, photo = (assert_on_screen(page, sel, PHONE) for sel in TRIAL)
    aid = current_assignment_id(page)
    answers = [assert_on_screen(page, f".st-key-task-{aid}-{c} button", PHONE) for c in ("A", "B", "undecided")]
    # The answer bar is fixed at the bottom and covers neither picture.
    assert min(b["y"] for b in answers) >= max(vis["y"] + vis["height"], photo["y"] + photo["height"])
    assert photo["width"] >= 180, f"the photo is too small on a phone: {photo}"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "task-390x844.png"))
    # The answers stay on screen after scrolling down, and the next task opens at the top.
    scroll_down(page)  # (the whole phone task page may fit: then nothing moves)
    assert_on_screen(page, f".st-key-task-{aid}-A button", PHONE)
    n, _ = task_counter(page)
    page.locator(f".st-key-task-{aid}-A button").tap()
    page.locator(f".st-key-task-{aid}-A").wait_for(state="detached", timeout=60_000)
    assert current_stage(page) == "task" and task_counter(page)[0] == n + 1
    page.wait_for_timeout(300)
    assert max(scroll_offsets(page)) == 0
    for sel in TRIAL:
        assert_on_screen(page, sel, PHONE)
    context.close()
