"""Helpers of the study tests: a served study, browser drivers, and service shortcuts.

(Example bundles and configs live in `study.examples`.)
- `serve_study(bundle, db, config)` runs `spade-study serve` on a free loopback port
  (a context manager yielding the base URL).
- `launch_chromium(playwright)` starts Debian's headless chromium through Playwright.
- `drive_rater(page, url, ...)` takes one rater from the link to the completion code.
"""
from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

from study.examples import write_config

if TYPE_CHECKING:
    from study.service import StudyService

REPO = Path(__file__).resolve().parents[2]
PROLIFIC_STUDY = "study-0001"  # the STUDY_ID of the test configs in Prolific mode
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


# --------------------------------------------------------------------------- serving
def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(base_url: str, proc: subprocess.Popen | None = None, timeout: float = 90.0) -> None:
    """Wait until Streamlit answers `/_stcore/health`; raise with the server's output if it dies or times out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ""
            raise RuntimeError(f"the study server exited with code {proc.returncode}:\n{out}")
        try:
            with urllib.request.urlopen(base_url.rstrip("/") + "/_stcore/health", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"{base_url} did not become healthy within {timeout:.0f} s")


@contextlib.contextmanager
def serve_study(
    bundle: str | Path, db: str | Path, config: str | Path | None = None, env: dict[str, str] | None = None
) -> Iterator[str]:
    """Run `spade-study serve` on a free loopback port; yield its base URL; stop it afterwards."""
    port = free_port()
    cmd = [sys.executable, "-m", "spade_study", "serve", str(bundle), "--db", str(db), "--port", str(port)]
    if config is not None:
        cmd += ["--config", str(config)]
    proc = subprocess.Popen(
        cmd,
        cwd=REPO,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base, proc)
        yield base
    finally:
        stop_process_group(proc)


def stop_process_group(proc: subprocess.Popen, timeout: float = 20.0) -> None:
    """Stop a process started with `start_new_session=True` and everything it started (its group)."""
    import signal

    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=timeout)
            break
        except subprocess.TimeoutExpired:
            continue
    # The group may outlive its leader for a moment; make sure nothing of it is left.
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


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


def make_service(tmp_path: Path, bundle: Path, db_name: str = "study.db", **overrides: object) -> "StudyService":
    """Build a StudyService on a fresh database in `tmp_path` with a small test config (open enrollment
    unless `identity` is given)."""
    from study.config import load_config
    from study.service import StudyService

    overrides.setdefault("identity", "open")
    # Service-level tests answer at machine speed: no minimum viewing time unless a test sets one.
    overrides.setdefault("min_view_seconds", 0)
    if overrides["identity"] == "prolific":
        overrides.setdefault("prolific_study_id", PROLIFIC_STUDY)
    config_path = write_config(tmp_path / f"{db_name}.toml", **overrides)
    svc = StudyService(tmp_path / db_name, bundle, load_config(config_path))
    svc.config_path = config_path  # for tests that start the app on the same study
    return svc


def finish_practice(svc: "StudyService", rater_id: str) -> None:
    """Answer the practice correctly (read from the synthetic trials' known answers)."""
    while svc.rater(rater_id).stage == "practice":
        state = svc.practice_state(rater_id)
        svc.submit_practice(rater_id, state.round, state.trial, svc.practice_trial(state).correct)


def rater_at_tasks(svc: "StudyService", params: dict | None = None) -> str:
    """Take a rater through consent, instructions and practice with the service; return the rater id."""
    rater = svc.consent(params or {})
    svc.finish_instructions(rater.rater_id)
    finish_practice(svc, rater.rater_id)
    return rater.rater_id


def answer_all(svc: "StudyService", rater_id: str, choose: Callable[[object], str] = lambda a: "A") -> list[tuple[int, str]]:
    """Answer every remaining task of a rater through the service; return (assignment_id, choice) pairs."""
    out = []
    while (a := svc.next_task(rater_id)) is not None:
        choice = choose(a)
        svc.submit(rater_id, a.assignment_id, choice, a.nonce)
        out.append((a.assignment_id, choice))
    return out
