"""Getting data out of a study database: the responses CSV (the contract with `analysis`) and consistent backups.

The CSV is a plain dump of the `responses_export` view, whose columns are the
contract in `contracts.responses`. Backups use SQLite's online backup API, which
copies a consistent snapshot while raters keep answering.
"""
from __future__ import annotations

import csv
import io
import sqlite3
from pathlib import Path

from contracts.files import atomic_path, write_text_atomic
from contracts.responses import COLUMNS as EXPORT_COLUMNS
from study.db import connect


def export_rows(db_path: str | Path) -> list[dict]:
    """Return the rows of the `responses_export` view, in answer order."""
    db = connect(db_path)
    try:
        return list(db.query("SELECT * FROM responses_export"))
    finally:
        db.conn.close()


def responses_csv_text(db_path: str | Path) -> str:
    """Return the responses CSV (header + one row per answer) as text."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(EXPORT_COLUMNS), lineterminator="\n")
    writer.writeheader()
    for row in export_rows(db_path):
        writer.writerow({k: row[k] for k in EXPORT_COLUMNS})
    return buf.getvalue()


def write_responses_csv(db_path: str | Path, out: str | Path) -> int:
    """Write the responses CSV atomically; return the number of data rows."""
    text = responses_csv_text(db_path)
    write_text_atomic(out, text)
    return text.count("\n") - 1


def backup(db_path: str | Path, out: str | Path) -> Path:
    """Copy a consistent snapshot of the live database to `out` with the sqlite3 backup API."""
    out = Path(out)
    # The backup holds every rater's invite token: readable by its owner only.
    with atomic_path(out, mode=0o600) as tmp:
        src = sqlite3.connect(str(db_path), timeout=15)
        try:
            dst = sqlite3.connect(tmp)
            try:
                src.backup(dst)
                # A single-file copy: leave WAL mode so the backup needs no -wal/-shm companions.
                dst.execute("PRAGMA journal_mode = DELETE")
            finally:
                dst.close()
        finally:
            src.close()
    return out
