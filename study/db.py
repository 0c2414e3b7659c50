"""The study's SQLite file: schema, connections, transactions, and the `responses_export` view.

One file holds everything (raters, tasks, assignments, responses, practice answers,
events). Tables are created through sqlite-utils; the rules that sqlite-utils'
`create()` cannot declare (allowed values, append-only tables) are triggers, written
here as SQL. The database runs in WAL mode with a busy timeout so that many
Streamlit sessions can read while one writes; every write that must be atomic
(choosing and recording an assignment, recording an answer) runs in one
`BEGIN IMMEDIATE` transaction (`immediate()`).
"""
from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import sqlite_utils

from contracts.exclusion import META_KEY as EXCLUSION_META_KEY, RATERS_VIEW
from contracts.responses import CHOICES, COLUMNS, CONDITIONS, TARGETS
from study.assignment import tasks_for_items

# 2: responses.speeder, raters.withdrawn_at, voided assignments, retired tasks, refusal counts,
#    admin sessions, the raters_export view; a version-1 file is refused (start a new database).
SCHEMA_VERSION = 2
BUSY_TIMEOUT_MS = 15_000
# The responses contract (columns, choices) lives in contracts.responses.
EXPORT_COLUMNS = COLUMNS

RESPONSES_EXPORT_SQL = """
SELECT a.rater_id AS rater_id, a.task_id AS task_id, t.item_id AS item_id,
       t.condition AS condition, t.target AS target, r.choice AS choice,
       a.correct AS correct, t.is_catch AS is_catch, a.shown_at AS shown_at,
       r.answered_at AS answered_at, r.response_ms AS response_ms, r.speeder AS speeder
FROM responses r
JOIN assignments a ON a.assignment_id = r.assignment_id
JOIN tasks t ON t.task_id = a.task_id
JOIN raters w ON w.rater_id = a.rater_id
WHERE w.withdrawn_at IS NULL
ORDER BY r.response_id
"""

# One row per rater who has not withdrawn: what the declared exclusion rules read (contracts.exclusion).
RATERS_EXPORT_SQL = """
SELECT rater_id, consented_at, instructions_done_at, completed_at, practice_passed
FROM raters WHERE withdrawn_at IS NULL AND consented_at IS NOT NULL
ORDER BY created_at, rater_id
"""


class StudyDBError(RuntimeError):
    """A study database that cannot be used (wrong schema version, another bundle, not a study file)."""


def new_token() -> str:
    """A fresh rater token: URL-safe, 16 characters, never starting with '-'.

    A token starting with '-' would be read as an option by `spade-study raters revoke TOKEN`.
    """
    while True:
        token = secrets.token_urlsafe(12)
        if not token.startswith("-"):
            return token


def now_ms() -> int:
    """Server time in integer milliseconds since the epoch."""
    return time.time_ns() // 1_000_000


def iso_from_ms(ms: int) -> str:
    """Format epoch milliseconds as an ISO 8601 UTC timestamp, e.g. 2026-11-22T10:00:00.123Z."""
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def connect(path: str | Path) -> sqlite_utils.Database:
    """Open a connection in autocommit mode (transactions are explicit), with foreign keys and a busy timeout."""
    conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA foreign_keys = ON")
    # NORMAL is the documented safe setting in WAL mode: a crash of the app loses nothing committed;
    # only a power cut may lose the last transactions. FULL would fsync on every answer.
    conn.execute("PRAGMA synchronous = NORMAL")
    return sqlite_utils.Database(conn)


@contextmanager
def immediate(db: sqlite_utils.Database) -> Iterator[sqlite_utils.Database]:
    """Run a block in one `BEGIN IMMEDIATE` transaction: the write lock is taken up front, so no two
    sessions interleave a read-decide-write sequence. Inside, use `db.execute` (sqlite-utils' table
    methods commit on their own and would end the transaction early)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _enum_trigger(table: str, column: str, values: tuple[str, ...]) -> str:
    allowed = ", ".join(f"'{v}'" for v in values)
    return (
        f"CREATE TRIGGER IF NOT EXISTS {table}_{column}_check BEFORE INSERT ON {table} "
        f"WHEN NEW.{column} NOT IN ({allowed}) "
        f"BEGIN SELECT RAISE(ABORT, '{table}.{column} must be one of {', '.join(values)}'); END"
    )


def _append_only_triggers(table: str) -> list[str]:
    return [
        f"CREATE TRIGGER IF NOT EXISTS {table}_no_{op.lower()} BEFORE {op} ON {table} "
        f"BEGIN SELECT RAISE(ABORT, '{table} are append-only: {op} refused'); END"
        for op in ("UPDATE", "DELETE")
    ]


def _create_schema(db: sqlite_utils.Database) -> None:
    db["meta"].create({"key": str, "value": str}, pk="key")
    db["raters"].create(
        {
            "rater_id": str,
            "token": str,
            "source": str,
            "prolific_pid": str,
            "study_id": str,
            "session_id": str,
            "created_at": str,
            "consented_at": str,
            "instructions_done_at": str,
            "practice_rounds": int,
            "practice_passed": int,
            "practice_done_at": str,
            "completed_at": str,
            "completion_code": str,
            "revoked_at": str,
            "withdrawn_at": str,
        },
        pk="rater_id",
        not_null=["source", "created_at", "practice_rounds"],
        defaults={"practice_rounds": 0},
    )
    db["raters"].create_index(["token"], unique=True)
    db["raters"].create_index(["prolific_pid"], unique=True)
    db["tasks"].create(
        {"task_id": str, "item_id": str, "condition": str, "target": str, "is_catch": int},
        pk="task_id",
        not_null=["item_id", "condition", "target", "is_catch"],
    )
    # (task_id, item_id) is unique so that assignments can reference both and carry item_id for UNIQUE(rater, item).
    db["tasks"].create_index(["task_id", "item_id"], unique=True)
    db["assignments"].create(
        {
            "assignment_id": int,
            "rater_id": str,
            "task_id": str,
            "item_id": str,
            "position": int,
            "a_target": str,
            "correct": str,
            "nonce": str,
            "shown_at": str,
            "shown_ms": int,
        },
        pk="assignment_id",
        not_null=["rater_id", "task_id", "item_id", "position", "a_target", "correct", "nonce", "shown_at", "shown_ms"],
        foreign_keys=[("rater_id", "raters", "rater_id"), (("task_id", "item_id"), "tasks", ("task_id", "item_id"))],
    )
    db["assignments"].create_index(["rater_id", "task_id"], unique=True)
    db["assignments"].create_index(["rater_id", "item_id"], unique=True)  # never one image twice per rater
    db["assignments"].create_index(["rater_id", "position"], unique=True)
    db["assignments"].create_index(["task_id"])
    db["responses"].create(
        {
            "response_id": int,
            "assignment_id": int,
            "choice": str,
            "confidence": int,
            "answered_at": str,
            "answered_ms": int,
            "response_ms": int,
            "speeder": int,
        },
        pk="response_id",
        not_null=["assignment_id", "choice", "answered_at", "answered_ms", "response_ms", "speeder"],
        foreign_keys=[("assignment_id", "assignments", "assignment_id")],
    )
    db["responses"].create_index(["assignment_id"], unique=True)  # one answer per assignment
    db["practice_responses"].create(
        {"id": int, "rater_id": str, "round": int, "trial": int, "choice": str, "correct": str, "answered_at": str},
        pk="id",
        not_null=["rater_id", "round", "trial", "choice", "correct", "answered_at"],
        foreign_keys=[("rater_id", "raters", "rater_id")],
    )
    db["practice_responses"].create_index(["rater_id", "round", "trial"], unique=True)
    db["events"].create(
        {"event_id": int, "at": str, "rater_id": str, "kind": str, "detail": str},
        pk="event_id",
        not_null=["at", "kind"],
    )
    db["events"].create_index(["rater_id"])
    # A task whose pictures failed to render is retired (never assigned again); the rater's
    # assignment of it is voided so they go on. Both tables are append-only.
    db["retired_tasks"].create({"task_id": str, "at": str, "reason": str}, pk="task_id", not_null=["at"])
    db["voided_assignments"].create(
        {"assignment_id": int, "at": str, "reason": str}, pk="assignment_id", not_null=["at"],
        foreign_keys=[("assignment_id", "assignments", "assignment_id")],
    )
    # Refusals of requests that name no rater are counted (one row per reason), not logged one row
    # each: an anonymous client must not be able to grow the database.
    db["refusal_counts"].create({"reason": str, "n": int, "first_at": str, "last_at": str}, pk="reason", not_null=["n"])
    # Admin sign-ins: a random token in the page address, stored here only as its hash, with an expiry.
    db["admin_sessions"].create({"token_hash": str, "created_at": str, "expires_ms": int}, pk="token_hash", not_null=["expires_ms"])
    triggers = [
        _enum_trigger("tasks", "condition", CONDITIONS),
        _enum_trigger("tasks", "target", TARGETS),
        _enum_trigger("assignments", "a_target", TARGETS),
        _enum_trigger("assignments", "correct", ("A", "B")),
        _enum_trigger("responses", "choice", CHOICES),
        _enum_trigger("practice_responses", "choice", CHOICES),
        _enum_trigger("raters", "source", ("invite", "prolific", "open")),
    ]
    for table in ("assignments", "responses", "practice_responses", "events", "retired_tasks", "voided_assignments"):
        triggers += _append_only_triggers(table)
    for sql in triggers:
        db.execute(sql)
    db.create_view("responses_export", RESPONSES_EXPORT_SQL)
    db.create_view(RATERS_VIEW, RATERS_EXPORT_SQL)
    db.execute("INSERT INTO meta (key, value) VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)])
    db.execute("INSERT INTO meta (key, value) VALUES ('created_at', ?)", [iso_from_ms(now_ms())])


def schema_version(db: sqlite_utils.Database) -> int | None:
    """Return the schema version stored in the file, or None for a file without one."""
    if "meta" not in db.table_names():
        return None
    row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    return int(row[0]) if row else None


def open_db(path: str | Path, create: bool = True) -> sqlite_utils.Database:
    """Open (and, if new and `create`, initialize) a study database; refuse another schema version."""
    path = Path(path)
    if not create and not path.is_file():
        raise StudyDBError(f"{path}: no such study database")
    if path.exists() and path.is_dir():
        raise StudyDBError(f"{path}: is a folder, not a study database file")
    if path.is_file() and path.stat().st_size == 0:
        # SQLite would take an empty file as a new database; an existing file is never made a new study.
        raise StudyDBError(f"{path}: is an empty file (0 bytes), not a study database; remove it or choose another --db")
    if not path.parent.is_dir():
        raise StudyDBError(f"{path.parent}: folder does not exist")
    try:
        db = connect(path)
        db.execute("PRAGMA journal_mode = WAL")
        with immediate(db):
            version = schema_version(db)
            if version is None:
                if db.table_names():
                    raise StudyDBError(f"{path}: not a study database (it has tables but no schema version)")
                _create_schema(db)
                version = SCHEMA_VERSION
    except sqlite3.DatabaseError as exc:
        raise StudyDBError(f"{path}: not a usable SQLite database ({exc})") from exc
    if version != SCHEMA_VERSION:
        db.conn.close()
        raise StudyDBError(
            f"{path}: schema version {version}, but this code reads version {SCHEMA_VERSION}; "
            "use the release that created it or start a new database"
        )
    return db


def bundle_fingerprint(manifest: dict) -> str:
    """Return a digest of the manifest's items: a database serves exactly one bundle."""
    blob = json.dumps(manifest["items"], sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def bind_bundle(db: sqlite_utils.Database, manifest: dict) -> None:
    """Create the tasks of a bundle on first use; refuse a database made for another bundle."""
    fp = bundle_fingerprint(manifest)
    with immediate(db):
        row = db.execute("SELECT value FROM meta WHERE key = 'bundle_fingerprint'").fetchone()
        if row is not None:
            if row[0] != fp:
                raise StudyDBError(
                    f"this database was created for another bundle (fingerprint {row[0]}, this bundle {fp}); "
                    "use a new --db for a new bundle"
                )
            return
        for t in tasks_for_items(item["id"] for item in manifest["items"]):
            db.execute(
                "INSERT INTO tasks (task_id, item_id, condition, target, is_catch) VALUES (?, ?, ?, ?, ?)",
                [t.task_id, t.item_id, t.condition, t.target, int(t.is_catch)],
            )
        db.execute("INSERT INTO meta (key, value) VALUES ('bundle_fingerprint', ?)", [fp])
        study_name = manifest.get("study", {}).get("name", "")
        db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('bundle_name', ?)", [str(study_name)])


def log_event(db: sqlite_utils.Database, kind: str, rater_id: str | None = None, **detail: object) -> None:
    """Append one event (inside the caller's transaction when there is one)."""
    db.execute(
        "INSERT INTO events (at, rater_id, kind, detail) VALUES (?, ?, ?, ?)",
        [iso_from_ms(now_ms()), rater_id, kind, json.dumps(detail, sort_keys=True) if detail else None],
    )


class DesignChanged(StudyDBError):
    """The config's design differs from the one pinned in the database."""

    def __init__(self, changes: dict[str, tuple[object, object]]) -> None:
        listed = "; ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in changes.items())
        super().__init__(
            f"the study design differs from the one this database was started with ({listed}); "
            "restore the config, use a new --db, or pass --allow-design-change to record the change"
        )
        self.changes = changes


def pin_design(db: sqlite_utils.Database, design: dict, allow_change: bool = False) -> dict[str, tuple[object, object]]:
    """Store the design keys on first use; refuse another design unless `allow_change`, which stores
    the new design and records a `design_changed` event (detail: key -> [old, new]). Return the changes."""
    with immediate(db):
        row = db.execute("SELECT value FROM meta WHERE key = 'design'").fetchone()
        if row is None:
            db.execute("INSERT INTO meta (key, value) VALUES ('design', ?)", [json.dumps(design, sort_keys=True)])
            return {}
        pinned = json.loads(row[0])
        changes = {k: (pinned.get(k), design.get(k)) for k in sorted(set(pinned) | set(design)) if pinned.get(k) != design.get(k)}
        if not changes:
            return {}
        if not allow_change:
            raise DesignChanged(changes)
        db.execute("UPDATE meta SET value = ? WHERE key = 'design'", [json.dumps(design, sort_keys=True)])
        log_event(db, "design_changed", None, **{k: [old, new] for k, (old, new) in changes.items()})
    return changes


def store_exclusion_rules(db: sqlite_utils.Database, rules: dict) -> None:
    """Store the config's declared exclusion rules (read by the admin page and the analysis); log a change."""
    value = json.dumps(rules, sort_keys=True)
    with immediate(db):
        row = db.execute("SELECT value FROM meta WHERE key = ?", [EXCLUSION_META_KEY]).fetchone()
        if row is not None and row[0] == value:
            return
        db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", [EXCLUSION_META_KEY, value])
        if row is not None:
            log_event(db, "exclusion_rules_changed", None, old=json.loads(row[0]), new=rules)


def count_refusal(db: sqlite_utils.Database, reason: str) -> None:
    """Count one refusal of a request that names no rater (one row per reason, not one per request)."""
    now = iso_from_ms(now_ms())
    db.execute(
        "INSERT INTO refusal_counts (reason, n, first_at, last_at) VALUES (?, 1, ?, ?) "
        "ON CONFLICT(reason) DO UPDATE SET n = n + 1, last_at = excluded.last_at",
        [reason[:64], now, now],
    )
