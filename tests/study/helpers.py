"""Helpers of the study tests: a served study, browser drivers, and service shortcuts.

(Example bundles and configs live in `study.examples`.)
- `serve_study(bundle, db, config)` runs `spade-study serve` on a free loopback port
  (a context manager yielding the base URL).
(Browser drivers live in `study.browser`.)
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
