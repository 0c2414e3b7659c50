"""The study database: schema, constraints, append-only responses, version check, export view, backup."""
from __future__ import annotations

import csv
import sqlite3
import threading

import pytest
from study.examples import make_bundle
from tests.study.helpers import answer_all, make_service, rater_at_tasks

from study.db import EXPORT_COLUMNS, SCHEMA_VERSION, StudyDBError, connect, open_db
from study.export import backup, export_rows, responses_csv_text, write_responses_csv


def _assignment_row(db, rater_id: str, task_id: str, item_id: str, position: int) -> None:
    db.execute(
        "INSERT INTO assignments (rater_id, task_id, item_id, position, a_target, correct, nonce, shown_at, shown_ms) "
        "VALUES (?, ?, ?, ?, 'true', 'A', 'n', '2026-11-22T00:00:00.000Z', 0)",
        [rater_id, task_id, item_id, position],
    )


def test_new_database_is_wal_with_busy_timeout_and_the_export_view_has_the_contract_columns(tmp_path) -> None:
    db = open_db(tmp_path / "s.db")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA busy_timeout").fetchone()[0] >= 5000
    assert db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == str(SCHEMA_VERSION)
    cols = [r[1] for r in db.execute("PRAGMA table_info(responses_export)").fetchall()]
    assert cols == list(EXPORT_COLUMNS) == [
        "rater_id", "task_id", "item_id", "condition", "target", "choice",
        "correct", "is_catch", "shown_at", "answered_at", "response_ms", "speeder",
    ]  # fmt: skip


def test_unique_rater_item_and_rater_task_are_constraints_not_only_code(tmp_path, study_bundle) -> None:
    svc = make_service(tmp_path, study_bundle)
    rid = svc.consent({}).rater_id
    db = connect(svc.db_path)
    _assignment_row(db, rid, "item000/dense/true", "item000", 0)
    with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):  # same image, other condition
        _assignment_row(db, rid, "item000/spade/true", "item000", 1)
    with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):  # same task
        _assignment_row(db, rid, "item000/dense/true", "item000", 2)
    with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):  # item_id must be the task's item
        _assignment_row(db, rid, "item001/dense/true", "item002", 3)
    with pytest.raises(sqlite3.IntegrityError, match="correct must be one of"):
        db.execute(
            "INSERT INTO assignments (rater_id, task_id, item_id, position, a_target, correct, nonce, shown_at, shown_ms) "
            "VALUES (?, 'item003/dense/true', 'item003', 4, 'true', 'C', 'n', 'x', 0)",
            [rid],
        )


def test_responses_are_append_only_and_one_per_assignment(tmp_path, study_bundle) -> None:
    svc = make_service(tmp_path, study_bundle)
    rid = rater_at_tasks(svc)
    answer_all(svc, rid)
    db = connect(svc.db_path)
    n = db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
    assert n == svc.policy.total
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        db.execute("UPDATE responses SET choice = 'B'")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        db.execute("DELETE FROM responses")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        db.execute("DELETE FROM assignments")
    with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
        db.execute(
            "INSERT INTO responses (assignment_id, choice, answered_at, answered_ms, response_ms, speeder) VALUES (1, 'B', 'x', 0, 0, 0)"
        )
    with pytest.raises(sqlite3.IntegrityError, match="choice must be one of"):
        db.execute("INSERT INTO responses (assignment_id, choice, answered_at, answered_ms, response_ms, speeder) VALUES (99, 'C', 'x', 0, 0, 0)")
    assert db.execute("SELECT COUNT(*) FROM responses").fetchone()[0] == n


def test_other_schema_version_is_refused_with_a_message(tmp_path) -> None:
    path = tmp_path / "old.db"
    open_db(path).execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(StudyDBError, match=f"schema version 99, but this code reads version {SCHEMA_VERSION}"):
        open_db(path)


def test_non_study_files_are_refused(tmp_path) -> None:
    other = tmp_path / "other.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE x (a)")
    conn.commit()
    conn.close()
    with pytest.raises(StudyDBError, match="not a study database"):
        open_db(other)
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StudyDBError, match="not a usable SQLite database"):
        open_db(junk)
    with pytest.raises(StudyDBError, match="no such study database"):
        open_db(tmp_path / "missing.db", create=False)


def test_a_database_serves_one_bundle(tmp_path, study_bundle) -> None:
    make_service(tmp_path, study_bundle)
    other = make_bundle(tmp_path / "other-bundle", n_items=6, name="other")
    with pytest.raises(StudyDBError, match="created for another bundle"):
        make_service(tmp_path, other)


def test_export_csv_matches_the_view_and_the_answers_given(tmp_path, study_bundle) -> None:
    svc = make_service(tmp_path, study_bundle)
    rid = rater_at_tasks(svc)
    given = answer_all(svc, rid, choose=lambda a: {0: "A", 1: "B"}.get(a.position % 3, "undecided"))
    out = tmp_path / "responses.csv"
    assert write_responses_csv(svc.db_path, out) == len(given)
    with open(out, newline="") as fh:
        reader = csv.DictReader(fh)
        assert tuple(reader.fieldnames) == EXPORT_COLUMNS
        rows = list(reader)
    assert [r["choice"] for r in rows] == [c for _, c in given]
    view = export_rows(svc.db_path)
    assert [r["task_id"] for r in rows] == [v["task_id"] for v in view]
    for r in rows:
        assert r["rater_id"] == rid and r["condition"] in ("dense", "spade") and r["target"] in ("true", "predicted")
        assert r["correct"] in ("A", "B") and r["is_catch"] in ("0", "1")
        assert int(r["response_ms"]) >= 0 and r["shown_at"] <= r["answered_at"]
    assert sum(r["is_catch"] == "1" for r in rows) == svc.config.catch_per_rater
    assert responses_csv_text(svc.db_path).splitlines()[0] == ",".join(EXPORT_COLUMNS)


def test_backup_is_a_consistent_single_file_copy_while_raters_answer(tmp_path, study_bundle) -> None:
    svc = make_service(tmp_path, study_bundle, tasks_per_rater=6, catch_per_rater=1)
    raters = [rater_at_tasks(svc) for _ in range(3)]
    worker = threading.Thread(target=lambda: [answer_all(svc, r) for r in raters])
    worker.start()
    copy = backup(svc.db_path, tmp_path / "copy.db")
    worker.join()
    assert sqlite3.connect(copy).execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    assert not (tmp_path / "copy.db-wal").exists()
    db = open_db(copy, create=False)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    n_copy = db.execute("SELECT COUNT(*) FROM responses_export").fetchone()[0]
    assert 0 <= n_copy <= 3 * svc.policy.total
    # Whatever moment the copy caught, each response has its assignment (no torn state).
    assert db.execute(
        "SELECT COUNT(*) FROM responses r LEFT JOIN assignments a ON a.assignment_id = r.assignment_id WHERE a.rater_id IS NULL"
    ).fetchone()[0] == 0
    final = backup(svc.db_path, tmp_path / "final.db")
    assert connect(final).execute("SELECT COUNT(*) FROM responses").fetchone()[0] == 3 * svc.policy.total


def test_the_analysis_reads_the_view_and_the_csv_alike(tmp_path, study_bundle) -> None:
    """The contract end to end: `analysis.io` accepts both outputs and finds the same table."""
    from analysis.io import read_responses_csv, read_responses_db

    svc = make_service(tmp_path, study_bundle, tasks_per_rater=6, catch_per_rater=2)
    for choice in ("A", "B", "undecided"):
        answer_all(svc, rater_at_tasks(svc), choose=lambda a, c=choice: c)
    write_responses_csv(svc.db_path, tmp_path / "responses.csv")
    from_db = read_responses_db(svc.db_path)
    from_csv = read_responses_csv(tmp_path / "responses.csv")
    assert len(from_db) == len(from_csv) == 3 * 8
    assert from_db.reset_index(drop=True).equals(from_csv.reset_index(drop=True))
