"""Read the study's responses (CSV export or the SQLite `responses_export` view) and validate them.

Both sources end in the same `validate_responses`, which returns one canonical
table (same dtypes, same row order), so that the CSV and the database of one
study give identical analyses. Anything malformed is refused with a
`ResponsesError` whose one-line message names the offending rows; nothing is
repaired silently.
"""
from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd

from contracts.responses import CHOICES, COLUMNS, CONDITIONS, EXPORT_VIEW, SIDES, TARGETS

_ROWS_NAMED = 8  # how many offending rows a message lists before "and N more"


class ResponsesError(ValueError):
    """Responses that cannot be analysed; the message is one line and names the rows."""


def _name_rows(rows: list[int]) -> str:
    shown = ", ".join(str(r) for r in rows[:_ROWS_NAMED])
    more = len(rows) - _ROWS_NAMED
    return f"{'row' if len(rows) == 1 else 'rows'} {shown}" + (f" and {more} more" if more > 0 else "")


def read_responses_csv(path: str | Path) -> pd.DataFrame:
    """Read a responses CSV as strings (validation happens in `validate_responses`)."""
    path = Path(path)
    if not path.is_file():
        raise ResponsesError(f"{path}: no such responses file")
    try:
        # Everything as text, nothing turned into NaN: validation decides what is allowed.
        df = pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False)
    except pd.errors.EmptyDataError:
        raise ResponsesError(f"{path}: empty file (expected a header with {', '.join(COLUMNS)})") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise ResponsesError(f"{path}: not a readable CSV file ({' '.join(str(exc).split())})") from None
    # File line numbers: line 1 is the header.
    df.index = pd.RangeIndex(2, len(df) + 2)
    return validate_responses(df, source=str(path), row_label="line")


def read_responses_db(path: str | Path) -> pd.DataFrame:
    """Read the `responses_export` view of a study database (opened read-only)."""
    path = Path(path)
    if not path.is_file():
        raise ResponsesError(f"{path}: no such study database")
    try:
        # Read-only URI mode: the analysis can never write to (or create) the study file.
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            cur = conn.execute(f"SELECT * FROM {EXPORT_VIEW}")
            names = [d[0] for d in cur.description]
            records = cur.fetchall()
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise ResponsesError(f"{path}: cannot read the {EXPORT_VIEW} view ({exc})") from None
    df = pd.DataFrame.from_records(records, columns=names)
    # SQLite hands back ints and NULLs; turn them into the CSV's text so both paths validate alike.
    for col in df.columns:
        df[col] = [_as_text(v) for v in df[col]]
    df.index = pd.RangeIndex(1, len(df) + 1)
    return validate_responses(df, source=str(path), row_label="view row")


def _as_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def load_responses(db: str | Path | None = None, csv: str | Path | None = None) -> pd.DataFrame:
    """Load responses from exactly one of a study database or a responses CSV."""
    if (db is None) == (csv is None):
        raise ResponsesError("give exactly one of a study database or a responses CSV")
    return read_responses_db(db) if db is not None else read_responses_csv(csv)


def validate_responses(df: pd.DataFrame, source: str = "responses", row_label: str = "row") -> pd.DataFrame:
    """Check a raw (all-text) responses table against the contract; return it canonical and sorted.

    The index of `df` holds the row numbers to quote in messages.
    """
    # `speeder` came with RESPONSES_VERSION 2: a version-1 file lacks it (read as unknown, NaN).
    if "speeder" not in df.columns:
        df = df.assign(speeder="")
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ResponsesError(f"{source}: missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
                             f"(expected {', '.join(COLUMNS)})")
    if df.empty:
        raise ResponsesError(f"{source}: no responses")
    df = df.loc[:, list(COLUMNS)].astype(str).apply(lambda s: s.str.strip())

    def refuse(mask: pd.Series, what: str) -> None:
        """Raise naming the rows of `mask`, if any."""
        if mask.any():
            rows = [int(i) for i in df.index[mask.to_numpy()]]
            label = _name_rows(rows).replace("row", row_label, 1)
            raise ResponsesError(f"{source}: {what} at {label}")

    for col in ("rater_id", "task_id", "item_id"):
        refuse(df[col] == "", f"empty {col}")
    for col, allowed in (("condition", CONDITIONS), ("target", TARGETS), ("choice", CHOICES),
                         ("correct", SIDES), ("is_catch", ("0", "1")), ("speeder", ("0", "1", ""))):
        bad = ~df[col].isin(allowed)
        if bad.any():
            values = sorted(set(df.loc[bad, col]))[:3]
            refuse(bad, f"unknown {col} {', '.join(repr(v) for v in values)} (expected {'|'.join(allowed)})")
    ms = pd.to_numeric(df["response_ms"].replace("", np.nan), errors="coerce")
    # "inf", "1e400" (inf once parsed) and "nan" parse as numbers but are no duration.
    refuse((df["response_ms"] != "") & (ms.isna() | (ms < 0) | ~np.isfinite(ms.fillna(0))),
           "response_ms is not a finite non-negative number")

    dup = df.duplicated(["rater_id", "task_id"], keep=False)
    if dup.any():
        first = df.loc[dup].iloc[0]
        refuse(dup, f"duplicate (rater_id, task_id) ({first['rater_id']}, {first['task_id']}) and others")
    # A task is one (item, condition, target): the pair counts group ratings by task_id.
    per_task = df.groupby("task_id")[["item_id", "condition", "target"]].nunique()
    clash = per_task.index[(per_task > 1).any(axis=1)]
    refuse(df["task_id"].isin(clash), f"task_id {clash[0]!r} with different item, condition or target"
           if len(clash) else "")

    out = pd.DataFrame({
        "rater_id": df["rater_id"], "task_id": df["task_id"], "item_id": df["item_id"],
        "condition": df["condition"], "target": df["target"], "choice": df["choice"],
        "correct": df["correct"], "is_catch": df["is_catch"].astype(int),
        "shown_at": df["shown_at"], "answered_at": df["answered_at"], "response_ms": ms.astype(float),
        "speeder": pd.to_numeric(df["speeder"].replace("", np.nan), errors="coerce").astype(float),
    })
    # One canonical order whatever the source's order, so every result (models included) is identical.
    return out.sort_values(["rater_id", "task_id"], kind="stable").reset_index(drop=True)


def add_outcomes(df: pd.DataFrame) -> pd.DataFrame:
    """Add the 0/1 outcome columns: decided, correct_region (chose the target's region), spade."""
    out = df.copy()
    out["decided"] = (out["choice"] != "undecided").astype(int)
    # Letters are per rater (A/B randomized); choice == correct means the target class's region.
    out["correct_region"] = (out["choice"] == out["correct"]).astype(int)
    out["spade"] = (out["condition"] == "spade").astype(int)
    return out
