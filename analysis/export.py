"""The trial-level data release: `spade-study analyze export`, a folder ready to deposit.

    spade-study analyze export (--db STUDY.db | --responses RESPONSES.csv) --out DIR
                               [--config STUDY.toml] [--plan plan.md] [--bundle BUNDLE_DIR]

writes into DIR:
- `responses.csv`: every response (catch trials included, flagged), validated, in the
  canonical order of `analysis.io` and the columns of `contracts.responses`; values exactly
  as stored (ids are not rewritten: open it with a CSV reader, not a spreadsheet);
- `codebook.md` / `codebook.json`: every column with its type, allowed values and meaning
  (`contracts.responses.CODEBOOK`, the one definition the app and the analysis share);
- `study.toml` and `plan.md`: copies of the study config and the pre-registration, if given;
- `release.json`: sha256 of every file above, of the source, and of the bundle's
  manifest (`--bundle`), the bundle fingerprint and design stored in the study database
  (`--db`), the responses contract version and the counts.

Nothing is written when an input is bad: every input is read and checked first.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sqlite3
import sys
from pathlib import Path

import pandas as pd

from contracts.files import write_json_atomic, write_text_atomic
from contracts.manifest import MANIFEST_NAME
from contracts.responses import CODEBOOK, COLUMNS, RESPONSES_VERSION

RELEASE_VERSION = 1
DB_META_KEYS = ("bundle_fingerprint", "bundle_name", "design", "exclusion_rules", "schema_version", "created_at")


class ExportError(ValueError):
    """An input the release cannot be made from; the message is one line."""


def sha256_file(path: str | Path) -> str:
    """The sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def codebook_markdown() -> str:
    """The codebook as a Markdown table."""
    rows = [f"| `{col}` | {typ} | {allowed.replace('|', ' or ')} | {meaning.replace('|', '/')} |"
            for col, (typ, allowed, meaning) in CODEBOOK.items()]
    return "\n".join([f"# Codebook of responses.csv (responses contract version {RESPONSES_VERSION})", "",
                      "One row per stored answer. A task is one visualization (image x condition x target); "
                      "`choice == correct` means the rater chose the region Score-CAM attributes to the "
                      "visualized class. Catch trials (`is_catch = 1`) are left out of every outcome.", "",
                      "| column | type | allowed values | meaning |", "|---|---|---|---|", *rows, ""])


def responses_csv(responses: pd.DataFrame) -> str:
    """The validated responses as CSV text, numbers written as stored (no '1200.0' for 1200)."""
    out = responses[[c for c in COLUMNS if c in responses.columns]].copy()
    for col in out.columns:
        if out[col].dtype.kind == "f":
            out[col] = [("" if pd.isna(v) else str(int(v)) if float(v).is_integer() else repr(float(v)))
                        for v in out[col]]
    return out.to_csv(index=False, lineterminator="\n")


def db_meta(path: Path) -> dict[str, str]:
    """The study database's meta keys of `DB_META_KEYS` (read-only; missing keys left out)."""
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            rows = conn.execute(f"SELECT key, value FROM meta WHERE key IN ({','.join('?' * len(DB_META_KEYS))})",
                                DB_META_KEYS).fetchall()
        finally:
            conn.close()
    except sqlite3.DatabaseError:
        return {}  # a responses_export view without the app's meta table: nothing to add
    return {k: v for k, v in rows}


def build_parser() -> argparse.ArgumentParser:
    """The parser of `spade-study analyze export`."""
    from analysis.cli import OneLineParser

    p = OneLineParser(prog="spade-study analyze export",
                      description="Write the trial-level data release: responses, codebook, config, plan, hashes.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--db", type=Path, help="study database (read-only)")
    src.add_argument("--responses", type=Path, help="responses CSV exported by the study app")
    p.add_argument("--out", type=Path, required=True, help="release folder (created; files replaced atomically)")
    p.add_argument("--config", type=Path, default=None, help="the study's TOML config, copied into the release")
    p.add_argument("--plan", type=Path, default=None, help="the pre-registration (plan.md), copied into the release")
    p.add_argument("--bundle", type=Path, default=None, help=f"the bundle folder: its {MANIFEST_NAME} is hashed")
    return p


def main(argv: list[str]) -> int:
    """Entry point of `spade-study analyze export`."""
    from analysis.cli import UsageError
    from analysis.io import ResponsesError, load_responses

    try:
        args = build_parser().parse_args(argv)
        if args.out.exists() and not args.out.is_dir():
            raise ExportError(f"--out {args.out} exists and is not a folder")
        copies: dict[str, bytes] = {}
        for flag, path, name in (("--config", args.config, "study.toml"), ("--plan", args.plan, "plan.md")):
            if path is not None:
                if not path.is_file():
                    raise ExportError(f"{flag} {path}: no such file")
                copies[name] = path.read_bytes()
        manifest = None
        if args.bundle is not None:
            manifest = args.bundle / MANIFEST_NAME if args.bundle.is_dir() else args.bundle
            if not manifest.is_file():
                raise ExportError(f"--bundle {args.bundle}: no {MANIFEST_NAME} there")
        responses = load_responses(db=args.db, csv=args.responses)
    except (UsageError, ExportError, ResponsesError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    source = args.db or args.responses
    out = args.out
    files = {"responses.csv": write_text_atomic(out / "responses.csv", responses_csv(responses)),
             "codebook.md": write_text_atomic(out / "codebook.md", codebook_markdown()),
             "codebook.json": write_json_atomic(out / "codebook.json", {
                 "responses_version": RESPONSES_VERSION,
                 "columns": [{"name": c, "type": t, "allowed": a, "meaning": m} for c, (t, a, m) in CODEBOOK.items()]})}
    for name, data in copies.items():
        files[name] = write_text_atomic(out / name, data.decode("utf-8", errors="replace"))
    release = {
        "release_version": RELEASE_VERSION,
        "responses_version": RESPONSES_VERSION,
        "source": {"kind": "db" if args.db else "csv", "name": source.name, "sha256": sha256_file(source)},
        "bundle_manifest": {"name": MANIFEST_NAME, "sha256": sha256_file(manifest)} if manifest else None,
        "study_db_meta": db_meta(args.db) if args.db else None,
        "counts": {"responses": int(len(responses)), "catch_trials": int(responses["is_catch"].sum()),
                   "raters": int(responses["rater_id"].nunique()), "items": int(responses["item_id"].nunique())},
        "files": {name: sha256_file(path) for name, path in sorted(files.items())},
    }
    write_json_atomic(out / "release.json", release)
    print(f"wrote {out}: responses.csv ({len(responses)} rows), codebook.md/.json"
          + "".join(f", {n}" for n in copies) + ", release.json (sha256 of every file)")
    return 0
