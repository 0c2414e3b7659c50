"""The machine observer's results file: `BUNDLE/observer/<name>.csv` plus `<name>.json`, beside the bundle.

Written by `observer` (`spade-study observe BUNDLE`, torch side); read by `analysis`
(`spade-study analyze --observer`), by `study` (the admin page) and by `bench/`. Pure
standard library, so that the readers never import torch.

One CSV row per main study task (item x condition x target; catch trials are not observed: their
answer is given). The observer answers in the terms of the task, not of a rater's A/B layout,
which is drawn per rater: `target` means it picked the target class's Score-CAM region (what the
paper calls agreement), `other` the other region, `undecided` "can't decide".

The `<name>.json` beside it (the meta) records the network, the margin, the flag thresholds and a
hash of every item's input files, so that a re-run reuses what is still valid.
"""
from __future__ import annotations

import csv
import io
import json
import math
import re
from pathlib import Path
from typing import Any

from contracts.files import write_json_atomic, write_text_atomic
from contracts.manifest import CONDITIONS, TARGETS

OBSERVER_VERSION = 1
OBSERVER_DIR = "observer"
CHOICES: tuple[str, ...] = ("target", "other", "undecided")
FLAGS: tuple[str, ...] = ("", "easy", "impossible")
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")

# column -> meaning: the codebook of the observer file.
CODEBOOK: dict[str, str] = {
    "task_id": "ITEM/CONDITION/TARGET, as in the responses CSV",
    "item_id": "the bundle item",
    "condition": "|".join(CONDITIONS),
    "target": "|".join(TARGETS),
    "choice": "target|other|undecided: the region the observer picked (target = the target class's region)",
    "score": "sim_target - sim_other: > margin picks target, < -margin picks other, else undecided",
    "margin": "the undecided band's half-width used for this row",
    "network": "the embedding network (name[:layer])",
    "sim_target": "cosine similarity of the visualization with the target's region crop",
    "sim_other": "cosine similarity of the visualization with the other region's crop",
    "sim_regions": "cosine similarity of the two region crops with each other",
    "flag": "empty, easy or impossible (written by `spade-study observe --flag`; see docs/observer.md)",
}
COLUMNS: tuple[str, ...] = tuple(CODEBOOK)
_FLOATS = ("score", "margin", "sim_target", "sim_other", "sim_regions")


class ObserverError(ValueError):
    """An observer results file that cannot be read; the message is one line."""


def results_dir(bundle: str | Path) -> Path:
    """The folder of a bundle's observer results."""
    return Path(bundle) / OBSERVER_DIR


def results_paths(bundle: str | Path, name: str) -> tuple[Path, Path]:
    """(CSV, meta JSON) paths of the results called `name`."""
    check_name(name)
    d = results_dir(bundle)
    return d / f"{name}.csv", d / f"{name}.json"


def check_name(name: str) -> str:
    """Return `name` if it is a valid results name (a file stem), else raise ObserverError."""
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise ObserverError(f"results name {name!r} must be letters, digits, '.', '_' or '-' (a file name)")
    return name


def task_row_id(item_id: str, condition: str, target: str) -> str:
    """The task id of a main task (the responses contract's ITEM/CONDITION/TARGET)."""
    return f"{item_id}/{condition}/{target}"


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6f}"
    return str(value)


def write_results(bundle: str | Path, name: str, rows: list[dict[str, Any]], meta: dict[str, Any]) -> Path:
    """Validate and atomically write `<name>.csv` then `<name>.json`; return the CSV path."""
    csv_path, meta_path = results_paths(bundle, name)
    checked = [_check_row(dict(r), f"row {i + 1}") for i, r in enumerate(rows)]
    _check_unique(checked, str(csv_path))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(COLUMNS), lineterminator="\n")
    writer.writeheader()
    for row in checked:
        writer.writerow({k: _format(row[k]) for k in COLUMNS})
    write_text_atomic(csv_path, buf.getvalue())
    write_json_atomic(meta_path, {**meta, "observer_version": OBSERVER_VERSION, "name": name,
                                  "columns": list(COLUMNS), "tasks": len(checked)})
    return csv_path


def _check_row(row: dict[str, Any], where: str) -> dict[str, Any]:
    def refuse(what: str) -> None:
        raise ObserverError(f"{where}: {what}")

    for key in ("task_id", "item_id", "network"):
        if not isinstance(row.get(key), str) or not row[key]:
            refuse(f"empty {key}")
    for key, allowed in (("condition", CONDITIONS), ("target", TARGETS), ("choice", CHOICES), ("flag", FLAGS)):
        if row.get(key) not in allowed:
            refuse(f"unknown {key} {row.get(key)!r} (expected {'|'.join(a or '(empty)' for a in allowed)})")
    for key in _FLOATS:
        try:
            row[key] = float(row[key])
        except (TypeError, ValueError, KeyError):
            refuse(f"{key} is not a number: {row.get(key)!r}")
        if not math.isfinite(row[key]):
            refuse(f"{key} is not finite")
    if row["margin"] < 0:
        refuse("margin is negative")
    return row


def _check_unique(rows: list[dict[str, Any]], source: str) -> None:
    seen: set[str] = set()
    for i, row in enumerate(rows):
        if row["task_id"] in seen:
            raise ObserverError(f"{source}: duplicate task_id {row['task_id']!r} (row {i + 1})")
        seen.add(row["task_id"])


def read_results(csv_path: str | Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Read and validate one results CSV and its meta JSON; return (rows with floats, meta)."""
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise ObserverError(f"{csv_path}: no such observer results file")
    meta_path = csv_path.with_suffix(".json")
    if not meta_path.is_file():
        raise ObserverError(f"{csv_path}: its meta file {meta_path.name} is missing (an incomplete run?)")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ObserverError(f"{meta_path}: not valid JSON ({exc})") from None
    if not isinstance(meta, dict) or meta.get("observer_version") != OBSERVER_VERSION:
        raise ObserverError(f"{meta_path}: observer_version is {meta.get('observer_version') if isinstance(meta, dict) else None!r}; "
                            f"this code reads version {OBSERVER_VERSION}")
    try:
        text = csv_path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ObserverError(f"{csv_path}: not a UTF-8 text file") from None
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise ObserverError(f"{csv_path}: missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
    # Line numbers of the file (line 1 is the header) in messages.
    rows = [_check_row(r, f"{csv_path}: line {i + 2}") for i, r in enumerate(reader)]
    if not rows:
        raise ObserverError(f"{csv_path}: no tasks")
    _check_unique(rows, str(csv_path))
    if meta.get("tasks") != len(rows):
        raise ObserverError(f"{csv_path}: {len(rows)} rows but its meta says {meta.get('tasks')!r} (files of two runs?)")
    return rows, meta


def find_results(path: str | Path) -> list[Path]:
    """The results CSVs that `path` names: a results CSV, an `observer/` folder, or a bundle folder."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise ObserverError(f"{path}: no such file or folder")
    folder = results_dir(path) if results_dir(path).is_dir() else path
    return sorted(p for p in folder.glob("*.csv") if p.with_suffix(".json").is_file())


def condition_summary(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per condition: tasks, decided, correct (picked the target's region), flags, and the three rates.

    The rates are the paper's: decision rate = decided / tasks, agreement = correct / decided,
    net agreement = correct / tasks (None when a denominator is 0).
    """
    out: dict[str, dict[str, Any]] = {}
    for cond in CONDITIONS:
        sub = [r for r in rows if r["condition"] == cond]
        n = len(sub)
        decided = sum(r["choice"] != "undecided" for r in sub)
        correct = sum(r["choice"] == "target" for r in sub)
        out[cond] = {
            "tasks": n, "decided": decided, "correct": correct,
            "decision_rate": decided / n if n else None,
            "agreement": correct / decided if decided else None,
            "net_agreement": correct / n if n else None,
            "flagged_easy": sum(r["flag"] == "easy" for r in sub),
            "flagged_impossible": sum(r["flag"] == "impossible" for r in sub),
        }
    return out


def bundle_summaries(bundle: str | Path) -> list[dict[str, Any]]:
    """One row per (results file, condition) of a bundle's observer results, for a table; [] when none.

    Raises ObserverError for a file that cannot be read.
    """
    folder = results_dir(bundle)
    if not folder.is_dir():
        return []
    table = []
    for csv_path in find_results(folder):
        rows, meta = read_results(csv_path)
        for cond, s in condition_summary(rows).items():
            table.append({"observer": csv_path.stem, "network": rows[0]["network"], "margin": meta.get("margin"),
                          "condition": cond, **s})
    return table
