"""The study's Python API, shared by the Streamlit app, the simulated raters and the benchmark.

Everything that matters is in the database, never only in a browser session: the
rater's stage (consent, instructions, practice, tasks, done), the assignment being
shown, the answers. So a reload, or the same link in another browser, resumes where
the rater was.

Requests the study refuses raise `Refused` with a message fit to show to the rater;
nothing is written by a refused request except an event in the log.
"""
from __future__ import annotations

import functools
import hashlib
import hmac
import json
import queue
import re
import secrets
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Mapping

import sqlite_utils

from contracts.manifest import load_manifest
from study import practice as practice_trials
from study.assignment import Pick, Policy, RaterHistory, Task, choose_next, tasks_for_items
from study.config import StudyConfig
from study.db import (
    CHOICES,
    bind_bundle,
    connect,
    count_refusal,
    immediate,
    iso_from_ms,
    log_event,
    new_token,
    now_ms,
    open_db,
    pin_design,
    store_exclusion_rules,
)

STAGES = ("consent", "instructions", "practice", "tasks", "done", "withdrawn")
# Prolific ids are 24 hex characters; other panels differ, so accept any short opaque word.
_PANEL_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# Every URL parameter (name and value) has a length limit: tokens are 16 characters, Prolific ids
# 24; nothing longer is looked up or stored.
MAX_PARAM_CHARS = 128
MAX_PARAMS = 16
ADMIN_SESSION_HOURS = 8
ADMIN_MAX_DELAY_S = 300
PROLIFIC_RETURN = " If you came from Prolific, please return your submission there (the \"Return\" button) so that your place goes to someone else."


def admin_delay_seconds(failures: int) -> float:
    """Seconds the admin sign-in stays closed after `failures` wrong passwords in a row: 0, then 1, 2, 4, ... up to 5 minutes."""
    return 0.0 if failures <= 0 else float(min(ADMIN_MAX_DELAY_S, 2 ** (failures - 1)))


class Refused(Exception):
    """A request the study refuses; `message` is one line fit to show to the rater."""

    def __init__(self, reason: str, message: str, rater_id: str | None = None, **detail: object) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.rater_id = rater_id
        self.detail = detail


def _logs_refusals(method: Callable) -> Callable:
    """Log a refusal as an event once its transaction has rolled back and its connection is closed
    (logging from inside would wait on the write lock the same request holds)."""

    @functools.wraps(method)
    def wrapper(self: "StudyService", *args: object, **kwargs: object) -> object:
        """Call the method; log a refusal it raises."""
        try:
            return method(self, *args, **kwargs)
        except Refused as exc:
            if not getattr(exc, "logged", False):  # nested API calls log once
                exc.logged = True
                with self._db() as db:
                    if exc.rater_id is None:
                        count_refusal(db, exc.reason)  # anonymous: a counter, not a row per request
                    else:
                        log_event(db, "refused", exc.rater_id, reason=exc.reason, **exc.detail)
            raise

    return wrapper


@dataclass(frozen=True)
class Rater:
    """One rater and where they are in the study."""

    rater_id: str
    source: str
    stage: str
    token: str | None
    practice_passed: bool | None
    completion_code: str | None


@dataclass(frozen=True)
class Assignment:
    """One task as shown to one rater: what to draw, and the secrets needed to answer it."""

    assignment_id: int
    rater_id: str
    task_id: str
    item_id: str
    condition: str
    target: str
    is_catch: bool
    position: int  # 0-based position in the rater's sequence
    total: int  # assignments per rater, catch trials included
    correct: str  # "A" or "B", as the rater sees them
    a_target: str  # whose region is labelled A: "true" or "predicted"
    nonce: str  # must come back with the answer
    shown_at: str
    image: Path
    box_a: list[int]
    box_b: list[int]
    visualization: Path | None  # None for a catch trial: show the crop of the correct region instead


@dataclass(frozen=True)
class SubmitResult:
    """What `submit` recorded."""

    assignment_id: int
    choice: str
    response_ms: int
    answered: int
    total: int
    done: bool


@dataclass(frozen=True)
class PracticeState:
    """Where a rater is in the practice: round (1-based), trial within it (0-based)."""

    round: int
    trial: int
    trials: int
    correct_so_far: int


@dataclass(frozen=True)
class PracticeFeedback:
    """The result of one practice answer."""

    is_correct: bool
    correct: str
    explanation: str
    round_finished: bool
    round_correct: int
    passed: bool | None  # None while practice goes on
    practice_over: bool


@dataclass(frozen=True)
class Completion:
    """The end of the study for one rater."""

    code: str
    redirect_url: str | None


class StudyService:
    """The study for one bundle, one database and one config."""

    def __init__(self, db_path: str | Path, bundle: str | Path, config: StudyConfig, allow_design_change: bool = False) -> None:
        self.db_path = Path(db_path)
        self.bundle = Path(bundle)
        self.config = config
        self.manifest = load_manifest(self.bundle)
        self.items = {item["id"]: item for item in self.manifest["items"]}
        if config.tasks_total > len(self.items):
            raise ValueError(
                f"tasks_per_rater + catch_per_rater = {config.tasks_total} exceeds the bundle's {len(self.items)} items: "
                "a rater never sees an image twice"
            )
        db = open_db(self.db_path)
        try:
            bind_bundle(db, self.manifest)
            self.design_changes = pin_design(db, config.design(), allow_design_change)
            store_exclusion_rules(db, config.exclusion.to_dict())
        finally:
            db.conn.close()
        self._pool: queue.SimpleQueue[sqlite_utils.Database] = queue.SimpleQueue()
        self._write_lock = threading.Lock()
        self.policy = Policy.from_config(config)
        tasks = tasks_for_items(self.items)
        self.tasks: dict[str, Task] = {t.task_id: t for t in tasks}
        self.main_tasks = [t for t in tasks if not t.is_catch]
        self.catch_tasks = [t for t in tasks if t.is_catch]

    # ----------------------------------------------------------------- plumbing
    @contextmanager
    def _db(self) -> Iterator[sqlite_utils.Database]:
        # Streamlit serves each session from its own thread: a call borrows a connection from a pool
        # (one thread at a time per connection) and gives it back. Connections stay open because
        # closing the last one of a WAL database checkpoints and fsyncs (~10 ms per call).
        try:
            db = self._pool.get_nowait()
        except queue.Empty:
            db = connect(self.db_path)
        try:
            yield db
        finally:
            if db.conn.in_transaction:  # never hand on a connection in an unknown state
                db.conn.close()
            else:
                self._pool.put(db)

    @contextmanager
    def _write(self) -> Iterator[sqlite_utils.Database]:
        """A connection inside one `BEGIN IMMEDIATE` transaction. Writers of this process queue on a
        lock first: SQLite's busy handler would make them poll with growing sleeps instead."""
        with self._write_lock, self._db() as db, immediate(db):
            yield db

    @staticmethod
    def _row(db: sqlite_utils.Database, sql: str, params: list) -> dict | None:
        rows = list(db.query(sql, params))
        return rows[0] if rows else None

    def _rater_row(self, db: sqlite_utils.Database, rater_id: str) -> dict:
        row = self._row(db, "SELECT * FROM raters WHERE rater_id = ?", [rater_id])
        if row is None:
            raise Refused("unknown_rater", "This study session is not known; please open your study link again.")
        if row["revoked_at"]:
            raise Refused("revoked", "This study link has been withdrawn; thank you for your interest.", rater_id)
        return row

    @staticmethod
    def _stage(row: dict) -> str:
        if row.get("withdrawn_at"):
            return "withdrawn"
        if row["completed_at"]:
            return "done"
        if not row["consented_at"]:
            return "consent"
        if not row["instructions_done_at"]:
            return "instructions"
        if not row["practice_done_at"]:
            return "practice"
        return "tasks"

    def _rater(self, row: dict) -> Rater:
        passed = row["practice_passed"]
        return Rater(
            rater_id=row["rater_id"],
            source=row["source"],
            stage=self._stage(row),
            token=row["token"],
            practice_passed=None if passed is None else bool(passed),
            completion_code=row["completion_code"],
        )

    def _require_stage(self, db: sqlite_utils.Database, rater_id: str, *stages: str) -> dict:
        row = self._rater_row(db, rater_id)
        stage = self._stage(row)
        if stage not in stages:
            raise Refused("wrong_stage", f"This step is not available now (you are at: {stage}); the page was reloaded.", rater_id)
        return row

    # ----------------------------------------------------------------- identity
    @_logs_refusals
    def identify(self, params: Mapping[str, str]) -> Rater | None:
        """Find the rater named by the page's query parameters; None when they still have to enrol (consent)."""
        mode = self.config.identity
        if len(params) > MAX_PARAMS or any(len(str(k)) > MAX_PARAM_CHARS or len(str(v or "")) > MAX_PARAM_CHARS for k, v in params.items()):
            raise Refused("invalid_link", "This study link is not valid (it is too long). Please check that you copied it correctly.")
        token = (params.get("token") or "").strip()
        with self._db() as db:
            if mode == "prolific":
                pid = (params.get("PROLIFIC_PID") or "").strip()
                if not pid or not params.get("STUDY_ID") or not params.get("SESSION_ID"):
                    raise Refused(
                        "missing_identity", "Please open this study from Prolific: the link lacks your Prolific ID."
                    )
                if not _PANEL_ID.match(pid) or not _PANEL_ID.match(str(params["SESSION_ID"]).strip()):
                    raise Refused("invalid_identity", "The Prolific ID in this link is not valid.")
                if not hmac.compare_digest(str(params["STUDY_ID"]).strip().encode(), self.config.prolific_study_id.strip().encode()):
                    raise Refused(
                        "wrong_study",
                        "This link belongs to another Prolific study." + PROLIFIC_RETURN,
                    )
                row = self._row(db, "SELECT rater_id FROM raters WHERE prolific_pid = ?", [pid])
                return None if row is None else self._rater(self._rater_row(db, row["rater_id"]))
            if not token:
                if mode == "invite":
                    raise Refused(
                        "missing_identity", "This study is by invitation: please open the personal link you received."
                    )
                return None
            row = self._row(db, "SELECT rater_id FROM raters WHERE token = ?", [token])
            if row is None:
                raise Refused("unknown_token", "This study link is not valid. Please check that you copied all of it.")
            return self._rater(self._rater_row(db, row["rater_id"]))

    @_logs_refusals
    def rater(self, rater_id: str) -> Rater:
        """Return a rater's current state."""
        with self._db() as db:
            return self._rater(self._rater_row(db, rater_id))

    @_logs_refusals
    def consent(self, params: Mapping[str, str]) -> Rater:
        """Record consent (enrolling the rater first in Prolific and open mode); idempotent."""
        existing = self.identify(params)
        now = iso_from_ms(now_ms())
        with self._write() as db:
            if existing is None and self.config.max_raters:
                enrolled = db.execute("SELECT COUNT(*) FROM raters WHERE source IN ('open', 'prolific')").fetchone()[0]
                if enrolled >= self.config.max_raters:
                    extra = PROLIFIC_RETURN if self.config.identity == "prolific" else ""
                    raise Refused("study_full", "This study has all the participants it needs; thank you for your interest." + extra)
            if existing is None:
                rater_id = "r-" + secrets.token_hex(5)
                if self.config.identity == "prolific":
                    pid = params["PROLIFIC_PID"].strip()
                    if self._row(db, "SELECT 1 FROM raters WHERE prolific_pid = ?", [pid]) is None:
                        db.execute(
                            "INSERT INTO raters (rater_id, source, prolific_pid, study_id, session_id, created_at) "
                            "VALUES (?, 'prolific', ?, ?, ?, ?)",
                            [rater_id, pid, params["STUDY_ID"], params["SESSION_ID"], now],
                        )
                        log_event(db, "enrolled", rater_id, source="prolific")
                    rater_id = self._row(db, "SELECT rater_id FROM raters WHERE prolific_pid = ?", [pid])["rater_id"]
                else:
                    db.execute(
                        "INSERT INTO raters (rater_id, token, source, created_at) VALUES (?, ?, 'open', ?)",
                        [rater_id, new_token(), now],
                    )
                    log_event(db, "enrolled", rater_id, source="open")
            else:
                rater_id = existing.rater_id
            db.execute("UPDATE raters SET consented_at = ? WHERE rater_id = ? AND consented_at IS NULL", [now, rater_id])
            log_event(db, "consented", rater_id)
        return self.rater(rater_id)

    def decline(self, params: Mapping[str, str]) -> None:
        """Log that someone declined consent: a `declined` event with the time and, for a known link, the rater id."""
        rater = None
        try:
            rater = self.identify(params)
        except Refused:
            pass
        with self._db() as db:
            log_event(db, "declined", rater.rater_id if rater else None)

    @_logs_refusals
    def finish_instructions(self, rater_id: str) -> Rater:
        """Mark the instructions as read; idempotent."""
        with self._write() as db:
            self._require_stage(db, rater_id, "instructions", "practice", "tasks", "done")
            db.execute(
                "UPDATE raters SET instructions_done_at = ? WHERE rater_id = ? AND instructions_done_at IS NULL",
                [iso_from_ms(now_ms()), rater_id],
            )
            log_event(db, "instructions_done", rater_id)
        return self.rater(rater_id)

    # ----------------------------------------------------------------- practice
    @_logs_refusals
    def practice_state(self, rater_id: str) -> PracticeState:
        """Return the rater's current practice round and trial."""
        with self._db() as db:
            row = self._require_stage(db, rater_id, "practice")
            return self._practice_state(db, row)

    def _practice_state(self, db: sqlite_utils.Database, row: dict) -> PracticeState:
        rnd = row["practice_rounds"] + 1
        done = self._row(
            db,
            "SELECT COUNT(*) AS n, COALESCE(SUM(choice = correct), 0) AS ok FROM practice_responses WHERE rater_id = ? AND round = ?",
            [row["rater_id"], rnd],
        )
        return PracticeState(rnd, done["n"], self.config.practice.trials, done["ok"])

    def practice_trial(self, state: PracticeState) -> practice_trials.PracticeTrial:
        """Return the synthetic trial for a practice position (a new set of pictures each round)."""
        return practice_trials.make_trial((state.round - 1) * state.trials + state.trial, self.config.seed)

    @_logs_refusals
    def submit_practice(self, rater_id: str, round_: int, trial: int, choice: str) -> PracticeFeedback:
        """Record one practice answer and return the feedback; a replayed answer is refused."""
        if choice not in CHOICES:
            raise Refused("tampered", "This answer is not one of the offered choices; it was not recorded.", rater_id)
        pcfg = self.config.practice
        with self._write() as db:
            row = self._require_stage(db, rater_id, "practice")
            state = self._practice_state(db, row)
            if (round_, trial) != (state.round, state.trial):
                raise Refused("replay", "This practice answer was already recorded.", rater_id, round=round_, trial=trial)
            t = self.practice_trial(state)
            now = iso_from_ms(now_ms())
            db.execute(
                "INSERT INTO practice_responses (rater_id, round, trial, choice, correct, answered_at) VALUES (?, ?, ?, ?, ?, ?)",
                [rater_id, round_, trial, choice, t.correct, now],
            )
            is_correct = choice == t.correct
            n_ok = state.correct_so_far + int(is_correct)
            finished = trial + 1 >= state.trials
            passed: bool | None = None
            over = False
            if finished:
                passed = n_ok >= pcfg.min_correct
                over = passed or round_ >= pcfg.max_rounds
                db.execute(
                    "UPDATE raters SET practice_rounds = ?, practice_passed = ?, practice_done_at = ? WHERE rater_id = ?",
                    [round_, int(passed), now if over else None, rater_id],
                )
                log_event(db, "practice_round", rater_id, round=round_, correct=n_ok, passed=passed)
        return PracticeFeedback(is_correct, t.correct, t.explanation, finished, n_ok, passed, over)

    # ----------------------------------------------------------------- tasks
    def _assignment(self, row: dict) -> Assignment:
        task = self.tasks[row["task_id"]]
        item = self.items[task.item_id]
        b_target = "predicted" if row["a_target"] == "true" else "true"
        return Assignment(
            assignment_id=row["assignment_id"],
            rater_id=row["rater_id"],
            task_id=task.task_id,
            item_id=task.item_id,
            condition=task.condition,
            target=task.target,
            is_catch=task.is_catch,
            position=row["position"],
            total=self.policy.total,
            correct=row["correct"],
            a_target=row["a_target"],
            nonce=row["nonce"],
            shown_at=row["shown_at"],
            image=self.bundle / item["image"],
            box_a=list(item["regions"][row["a_target"]]),
            box_b=list(item["regions"][b_target]),
            visualization=None if task.is_catch else self.bundle / item["visualizations"][task.condition][task.target],
        )

    _PENDING_SQL = (
        "SELECT a.* FROM assignments a LEFT JOIN responses r ON r.assignment_id = a.assignment_id "
        "WHERE a.rater_id = ? AND r.response_id IS NULL "
        "AND a.assignment_id NOT IN (SELECT assignment_id FROM voided_assignments) ORDER BY a.position LIMIT 1"
    )

    def _coverage(self, db: sqlite_utils.Database) -> dict[str, int]:
        cutoff = now_ms() - int(self.config.stale_minutes * 60_000)
        rows = db.execute(
            "SELECT a.task_id, COUNT(*) FROM assignments a "
            "LEFT JOIN responses r ON r.assignment_id = a.assignment_id "
            "WHERE a.task_id NOT LIKE '%/catch' AND (r.response_id IS NOT NULL OR a.shown_ms >= ?) "
            "GROUP BY a.task_id",
            [cutoff],
        ).fetchall()
        return dict(rows)

    def _history(self, db: sqlite_utils.Database, rater_id: str) -> RaterHistory:
        history = RaterHistory(rater_key=rater_id)
        for task_id, correct in db.execute(
            "SELECT task_id, correct FROM assignments WHERE rater_id = ? ORDER BY position", [rater_id]
        ).fetchall():
            history.record(self.tasks[task_id], correct)
        return history

    def _complete(self, db: sqlite_utils.Database, rater_id: str) -> None:
        code = self.config.completion_code or f"SPADE-{secrets.token_hex(4).upper()}"
        db.execute(
            "UPDATE raters SET completed_at = ?, completion_code = ? WHERE rater_id = ? AND completed_at IS NULL",
            [iso_from_ms(now_ms()), code, rater_id],
        )
        log_event(db, "completed", rater_id)

    @_logs_refusals
    def next_task(self, rater_id: str) -> Assignment | None:
        """Return the rater's current task: the shown-but-unanswered one if any (a reload gets it again),
        else a new one chosen by the policy in one `BEGIN IMMEDIATE` transaction; None when the rater is done."""
        with self._db() as db:
            row = self._require_stage(db, rater_id, "tasks", "done")
            if self._stage(row) == "done":
                return None
            pending = self._row(db, self._PENDING_SQL, [rater_id])
            if pending is not None:
                return self._assignment(pending)
        with self._write() as db:
            # Re-read under the write lock: another tab of the same rater may have been faster.
            pending = self._row(db, self._PENDING_SQL, [rater_id])
            if pending is not None:
                return self._assignment(pending)
            if self._stage(self._rater_row(db, rater_id)) == "done":
                return None
            retired = {r[0] for r in db.execute("SELECT task_id FROM retired_tasks").fetchall()}
            main = [t for t in self.main_tasks if t.task_id not in retired] if retired else self.main_tasks
            catch = [t for t in self.catch_tasks if t.task_id not in retired] if retired else self.catch_tasks
            pick = choose_next(main, catch, self._coverage(db), self._history(db, rater_id), self.policy)
            if pick is None:
                self._complete(db, rater_id)
                return None
            new = self._insert_assignment(db, rater_id, pick)
        return self._assignment(new)

    def _insert_assignment(self, db: sqlite_utils.Database, rater_id: str, pick: Pick) -> dict:
        ms = now_ms()
        cur = db.execute(
            "INSERT INTO assignments (rater_id, task_id, item_id, position, a_target, correct, nonce, shown_at, shown_ms) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [rater_id, pick.task.task_id, pick.task.item_id, pick.position, pick.a_target, pick.correct,
             secrets.token_urlsafe(12), iso_from_ms(ms), ms],
        )
        log_event(db, "assigned", rater_id, task_id=pick.task.task_id, position=pick.position)
        return self._row(db, "SELECT * FROM assignments WHERE assignment_id = ?", [cur.lastrowid])

    @_logs_refusals
    def submit(self, rater_id: str, assignment_id: int, choice: str, nonce: str, confidence: int | None = None) -> SubmitResult:
        """Record the rater's answer to one assignment: exactly one response; a replay (double click,
        resubmitted form) or a tampered value (other rater's task, wrong nonce, unknown choice) is refused."""
        detail = {"assignment_id": assignment_id, "choice": choice}
        if choice not in CHOICES:
            raise Refused("tampered", "This answer is not one of the offered choices; it was not recorded.", rater_id, **detail)
        if self.config.confidence:
            if confidence is None:
                raise Refused("missing_confidence", "Please give a confidence rating from 1 to 5.", rater_id, **detail)
            if not (isinstance(confidence, int) and 1 <= confidence <= 5):
                raise Refused("tampered", "Please give a confidence rating from 1 to 5.", rater_id, **detail)
        elif confidence is not None:
            raise Refused("tampered", "This study does not take confidence ratings; the answer was not recorded.", rater_id, **detail)
        try:
            assignment_id = int(assignment_id)
        except (TypeError, ValueError):
            raise Refused("tampered", "This answer does not match a task shown to you; it was not recorded.", rater_id, **detail) from None
        with self._write() as db:
            self._require_stage(db, rater_id, "tasks", "done")
            row = self._row(
                db,
                "SELECT a.*, r.response_id FROM assignments a LEFT JOIN responses r ON r.assignment_id = a.assignment_id "
                "WHERE a.assignment_id = ?",
                [assignment_id],
            )
            if row is None or row["rater_id"] != rater_id or not hmac.compare_digest(str(row["nonce"]), str(nonce)):
                raise Refused("tampered", "This answer does not match a task shown to you; it was not recorded.", rater_id, **detail)
            if row["response_id"] is not None:
                raise Refused("replay", "This task was already answered; your first answer is kept.", rater_id, **detail)
            if db.execute("SELECT 1 FROM voided_assignments WHERE assignment_id = ?", [assignment_id]).fetchone():
                raise Refused("voided", "This task was taken out of the study; your answer was not recorded.", rater_id, **detail)
            ms = max(now_ms(), row["shown_ms"])
            if ms - row["shown_ms"] < self.min_view_ms:
                raise Refused(
                    "too_early",
                    "Please look at each task before answering: your answer came too soon and was not recorded.",
                    rater_id, elapsed_ms=ms - row["shown_ms"], **detail,
                )  # fmt: skip
            speeder = int(ms - row["shown_ms"] < round(self.config.speeder_seconds * 1000))
            db.execute(
                "INSERT INTO responses (assignment_id, choice, confidence, answered_at, answered_ms, response_ms, speeder) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                [assignment_id, choice, confidence, iso_from_ms(ms), ms, ms - row["shown_ms"], speeder],
            )
            answered = db.execute(
                "SELECT COUNT(*) FROM responses r JOIN assignments a ON a.assignment_id = r.assignment_id WHERE a.rater_id = ?",
                [rater_id],
            ).fetchone()[0]
            done = answered >= self.policy.total
            if done:
                self._complete(db, rater_id)
        return SubmitResult(assignment_id, choice, ms - row["shown_ms"], answered, self.policy.total, done)

    @property
    def min_view_ms(self) -> int:
        """The minimum viewing time in milliseconds (config `min_view_seconds`)."""
        return round(self.config.min_view_seconds * 1000)

    def seconds_until_answerable(self, a: Assignment) -> float:
        """Seconds until the server takes an answer to this assignment (0 when it does now). Every way of
        answering (buttons, keyboard shortcuts) must wait this long; `submit` refuses earlier answers."""
        with self._db() as db:
            row = db.execute("SELECT shown_ms FROM assignments WHERE assignment_id = ?", [a.assignment_id]).fetchone()
        if row is None:
            return 0.0
        return max(0.0, (row[0] + self.min_view_ms - now_ms()) / 1000)

    @_logs_refusals
    def retire_task(self, rater_id: str, assignment_id: int, error: str) -> None:
        """A task's page failed (e.g. a broken picture): log the error for the admin, retire the task so
        it is never assigned again, and void this rater's assignment of it so they go on."""
        with self._write() as db:
            row = self._row(db, "SELECT task_id, rater_id FROM assignments WHERE assignment_id = ?", [assignment_id])
            if row is None or row["rater_id"] != rater_id:
                raise Refused("tampered", "This task is not yours.", rater_id, assignment_id=assignment_id)
            now = iso_from_ms(now_ms())
            db.execute("INSERT OR IGNORE INTO retired_tasks (task_id, at, reason) VALUES (?, ?, ?)", [row["task_id"], now, error[:500]])
            db.execute("INSERT OR IGNORE INTO voided_assignments (assignment_id, at, reason) VALUES (?, ?, ?)", [assignment_id, now, error[:500]])
            log_event(db, "task_error", rater_id, task_id=row["task_id"], assignment_id=assignment_id, error=error[:500])

    def log_page_error(self, rater_id: str | None, page: str, error: str) -> None:
        """Log an error of a rater page for the admin (`page_error` event)."""
        with self._db() as db:
            log_event(db, "page_error", rater_id, page=page, error=error[:500])

    @_logs_refusals
    def withdraw(self, rater_id: str) -> Rater:
        """Withdraw a rater at their request: their answers stay stored but leave the exports and the analysis."""
        with self._write() as db:
            self._rater_row(db, rater_id)
            db.execute("UPDATE raters SET withdrawn_at = ? WHERE rater_id = ? AND withdrawn_at IS NULL", [iso_from_ms(now_ms()), rater_id])
            log_event(db, "withdrawn", rater_id)
        return self.rater(rater_id)

    # ----------------------------------------------------------------- admin sign-in
    def admin_sign_in(self, typed: str, password: str) -> str:
        """Check the admin password; return a new session token (valid `ADMIN_SESSION_HOURS`). Raise Refused
        while the growing delay after wrong passwords runs (counted) or for a wrong password (logged)."""
        now = now_ms()
        refusal: Refused | None = None
        token = secrets.token_urlsafe(24)
        # The refusal is raised after the transaction commits: the failure counter and its log must stay.
        with self._write() as db:
            meta = dict(db.execute("SELECT key, value FROM meta WHERE key IN ('admin_failures', 'admin_last_failure_ms')").fetchall())
            failures, last = int(meta.get("admin_failures", 0)), int(meta.get("admin_last_failure_ms", 0))
            wait = last + admin_delay_seconds(failures) * 1000 - now
            if wait > 0:
                count_refusal(db, "admin_sign_in_too_soon")
                refusal = Refused("admin_wait", f"Too many wrong passwords: try again in {max(1, round(wait / 1000))} s.")
            elif not hmac.compare_digest(typed.encode(), password.encode()):
                db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('admin_failures', ?)", [str(failures + 1)])
                db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('admin_last_failure_ms', ?)", [str(now)])
                log_event(db, "admin_sign_in_failed", None, failures=failures + 1)
                refusal = Refused("admin_wrong", f"Wrong password. The next try opens in {admin_delay_seconds(failures + 1):.0f} s.")
            else:
                db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('admin_failures', '0')")
                db.execute(
                    "INSERT INTO admin_sessions (token_hash, created_at, expires_ms) VALUES (?, ?, ?)",
                    [_digest(token), iso_from_ms(now), now + ADMIN_SESSION_HOURS * 3_600_000],
                )
                db.execute("DELETE FROM admin_sessions WHERE expires_ms < ?", [now])
                log_event(db, "admin_signed_in", None)
        if refusal is not None:
            raise refusal
        return token

    def admin_session_valid(self, token: str | None) -> bool:
        """Whether `token` is a live admin session."""
        if not token or len(token) > MAX_PARAM_CHARS:
            return False
        with self._db() as db:
            row = db.execute("SELECT expires_ms FROM admin_sessions WHERE token_hash = ?", [_digest(token)]).fetchone()
        return row is not None and row[0] > now_ms()

    def admin_sign_out(self, token: str) -> None:
        """End an admin session."""
        with self._write() as db:
            db.execute("DELETE FROM admin_sessions WHERE token_hash = ?", [_digest(token)])

    def progress(self, rater_id: str) -> tuple[int, int]:
        """Return (answered, total) for the rater's main and catch tasks together."""
        with self._db() as db:
            n = db.execute(
                "SELECT COUNT(*) FROM responses r JOIN assignments a ON a.assignment_id = r.assignment_id WHERE a.rater_id = ?",
                [rater_id],
            ).fetchone()[0]
        return n, self.policy.total

    @_logs_refusals
    def completion(self, rater_id: str) -> Completion:
        """Return the rater's completion code (and the Prolific redirect in Prolific mode)."""
        with self._db() as db:
            row = self._require_stage(db, rater_id, "done")
        code = row["completion_code"]
        url = None
        if row["source"] == "prolific":
            url = self.config.prolific_completion_url.format(code=code)
        return Completion(code, url)

    # ----------------------------------------------------------------- admin
    def errors(self, limit: int = 50) -> list[dict]:
        """The latest errors of rater pages (`task_error`, `page_error` events), newest first."""
        with self._db() as db:
            rows = db.execute(
                "SELECT at, rater_id, kind, detail FROM events WHERE kind IN ('task_error', 'page_error') ORDER BY event_id DESC LIMIT ?",
                [limit],
            ).fetchall()
        return [{"at": at, "rater_id": rid, "kind": kind, **json.loads(detail or "{}")} for at, rid, kind, detail in rows]

    def stats(self) -> dict:
        """Return the admin summaries (see `study.stats.summarize`)."""
        from study.stats import summarize

        with self._db() as db:
            return summarize(db, self.config.ratings_per_task)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def event_details(db: sqlite_utils.Database, kind: str) -> list[dict]:
    """Return the decoded details of all events of one kind (for tests and audits)."""
    return [json.loads(r["detail"] or "{}") | {"rater_id": r["rater_id"]} for r in db.query("SELECT * FROM events WHERE kind = ? ORDER BY event_id", [kind])]
