"""Drive the study app in headless Debian chromium through Playwright, for tests and benchmarks.

- `launch_chromium(playwright)` starts Debian's chromium (no browser download).
- `current_stage(page)`, `next_action(page, choose)`, `click_key(page, key)`: read the page's step
  and press its buttons by their Streamlit keys.
- `drive_rater(page, url, ...)` takes one rater from the link to the completion code.

Playwright is a development dependency: callers import it and hand over its objects.
"""
from __future__ import annotations

import time
from typing import Callable

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def launch_chromium(playwright: object, **kwargs: object) -> object:
    """Launch Debian's headless chromium (no browser download) for Playwright."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True, **kwargs)  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- driving one rater
# Streamlit gives every keyed widget the CSS class `st-key-<key>`; the app's keys name the step
# (consent-continue, instr-done, practice-<round>-<trial>-<choice>, practice-next-<round>-<trial>,
# task-<assignment_id>-<choice>), so the page's stage and the exact button are found by class.
_STAGE_SELECTORS = [
    ("done", "h1:has-text('Thank you')"),
    ("refused", "h1:has-text('Cannot continue')"),
    ("declined", "h1:has-text('You chose not to take part')"),
    ("consent", ".st-key-consent-continue"),
    ("instructions", ".st-key-instr-done"),
    ("practice_feedback", "[class*='st-key-practice-next-']"),
    ("practice", "[class*='st-key-practice-'][class*='-A']"),
    ("task", "[class*='st-key-task-'][class*='-A']"),
]
_CHOICE_KEYS = {"A": "A", "B": "B", "undecided": "undecided"}


def current_stage(page: object, timeout_ms: int = 60_000) -> str:
    """Wait for a settled study page and return its stage: consent, instructions, practice,
    practice_feedback, task, done, refused or declined."""
    deadline = time.monotonic() + timeout_ms / 1000
    while time.monotonic() < deadline:
        for stage, selector in _STAGE_SELECTORS:
            loc = page.locator(selector)  # type: ignore[attr-defined]
            if loc.count() and loc.first.is_visible():
                return stage
        time.sleep(0.1)
    raise TimeoutError("no known study page appeared")


def _key_of(page: object, prefix: str) -> str:
    """Return the widget key (without the choice suffix) of the first element whose key starts with `prefix`."""
    cls = page.locator(f"[class*='st-key-{prefix}']").first.get_attribute("class") or ""  # type: ignore[attr-defined]
    key = next(c for c in cls.split() if c.startswith(f"st-key-{prefix}")).removeprefix("st-key-")
    return key


def click_key(page: object, key: str, timeout_ms: int = 60_000) -> None:
    """Click the button with this Streamlit key and wait until the rerun has replaced it."""
    page.locator(f".st-key-{key} button").click(timeout=timeout_ms)  # type: ignore[attr-defined]
    page.locator(f".st-key-{key}").wait_for(state="detached", timeout=timeout_ms)  # type: ignore[attr-defined]


def task_counter(page: object) -> tuple[int, int]:
    """Return (n, total) from the task page's 'Task n of total' heading."""
    text = page.locator("h1:has-text('Task ')").first.inner_text()  # type: ignore[attr-defined]
    parts = text.split()
    return int(parts[1]), int(parts[3])


def current_assignment_id(page: object) -> int:
    """Return the assignment id of the task on the page (from its buttons' keys)."""
    return int(_key_of(page, "task-").split("-")[1])


def next_action(
    page: object,
    choose: Callable[[int], str] = lambda n: "A",
    practice_answer: Callable[[int, int], str] = lambda rnd, trial: "A",
) -> tuple[str, str | None]:
    """Return (stage, key of the button that advances it); ticks the consent box on the way.
    The key is None on the end, refusal and declined pages."""
    stage = current_stage(page)
    if stage == "consent":
        page.locator(".st-key-consent-agree label").click()  # type: ignore[attr-defined]
        page.locator(".st-key-consent-continue button:not([disabled])").wait_for(timeout=60_000)  # type: ignore[attr-defined]
        return stage, "consent-continue"
    if stage == "instructions":
        return stage, "instr-done"
    if stage == "practice_feedback":
        return stage, _key_of(page, "practice-next-")
    if stage == "practice":
        _, rnd, trial, _choice = _key_of(page, "practice-").split("-")
        return stage, f"practice-{rnd}-{trial}-{practice_answer(int(rnd), int(trial))}"
    if stage == "task":
        n, _ = task_counter(page)
        return stage, f"task-{current_assignment_id(page)}-{_CHOICE_KEYS[choose(n)]}"
    return stage, None


def answer_step(
    page: object,
    choose: Callable[[int], str] = lambda n: "A",
    practice_answer: Callable[[int, int], str] = lambda rnd, trial: "A",
) -> str:
    """Advance one step from whatever page is shown; return the stage that was handled."""
    stage, key = next_action(page, choose, practice_answer)
    if key is not None:
        click_key(page, key)
    return stage


def step_together(pages: list, chooses: list[Callable[[int], str]]) -> list[str]:
    """Advance several raters by one step each, clicking all buttons before waiting for any rerun,
    so that the server handles their requests at the same time; return their stages."""
    actions = [next_action(p, c) for p, c in zip(pages, chooses)]
    for page, (_, key) in zip(pages, actions):
        if key is not None:
            page.locator(f".st-key-{key} button").click()
    for page, (_, key) in zip(pages, actions):
        if key is not None:
            page.locator(f".st-key-{key}").wait_for(state="detached", timeout=60_000)
    return [stage for stage, _ in actions]


def completion_code(page: object) -> str:
    """Return the completion code shown on the end page."""
    return page.locator("[data-testid='stCode'] code, code").first.inner_text().strip()  # type: ignore[attr-defined]


def drive_rater(
    page: object,
    url: str,
    choose: Callable[[int], str] = lambda n: "A",
    practice_answer: Callable[[int, int], str] = lambda rnd, trial: "A",
    reload_at_task: int | None = None,
    max_steps: int = 200,
) -> str:
    """Open `url` and take the rater to the end page; return the completion code shown there.

    `choose(n)` gives the answer ("A", "B" or "undecided") to task number n (1-based);
    `practice_answer(round, trial)` the answer to a practice trial.
    `reload_at_task`: reload the page once when task n is shown, before answering it, and
    check that the same task comes back.
    """
    page.goto(url)  # type: ignore[attr-defined]
    reloaded = False
    for _ in range(max_steps):
        stage = current_stage(page)
        if stage == "done":
            return completion_code(page)
        if stage in ("refused", "declined"):
            raise AssertionError(f"the study stopped this rater ({stage}): " + page.inner_text("body")[:300])  # type: ignore[attr-defined]
        if stage == "task" and reload_at_task is not None and not reloaded and task_counter(page)[0] == reload_at_task:
            before = (task_counter(page), current_assignment_id(page))
            reloaded = True
            page.reload()  # type: ignore[attr-defined]
            assert current_stage(page) == "task", "a reload did not come back to the task"
            after = (task_counter(page), current_assignment_id(page))
            assert after == before, f"a reload moved the rater from {before} to {after}"
            continue
        answer_step(page, choose, practice_answer)
    raise AssertionError(f"the rater did not finish within {max_steps} steps")
