"""`spade-study serve` and `spade-study raters`: the study's command line.

`serve` checks the bundle, config and database first (so a mistake is one line on
the terminal, not a broken web page), then runs `streamlit run study/app.py`
headless on localhost, handing over the paths through environment variables.
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from contracts.manifest import ManifestError
from study.config import ConfigError, load_config
from study.db import StudyDBError

# study/server.py wraps study/app.py in Streamlit's ASGI app: anti-framing headers, no public /_stcore/metrics.
APP = Path(__file__).resolve().parent / "server.py"


def _error(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one `error: ...` line and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        """Print the usage error on one line and exit with code 2."""
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(2)


def _serve_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="spade-study serve", description="Serve a study bundle to raters (Streamlit + SQLite) on localhost.")
    p.add_argument("bundle", metavar="BUNDLE_DIR", help="study bundle folder (with manifest.json)")
    p.add_argument("--db", required=True, metavar="STUDY.db", help="SQLite file of the study (created if missing)")
    p.add_argument("--port", type=int, default=8501, help="port on 127.0.0.1 (default 8501)")
    p.add_argument("--config", metavar="STUDY.toml", help="study config (default: built-in defaults)")
    p.add_argument("--address", default="127.0.0.1", help="address to listen on (default 127.0.0.1; put a reverse proxy in front for the internet)")
    p.add_argument("--allow-design-change", action="store_true",
                   help="accept a config whose design keys differ from the ones pinned in the database (recorded as a design_changed event)")
    return p


def serve_main(argv: list[str]) -> int:
    """Check the inputs, then run the Streamlit app until interrupted; return its exit code."""
    try:
        args = _serve_parser().parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    if not 1 <= args.port <= 65535:
        return _error(f"--port must be between 1 and 65535, not {args.port}")
    bundle, db = Path(args.bundle).resolve(), Path(args.db).resolve()
    config = Path(args.config).resolve() if args.config else None
    try:
        from contracts.manifest import load_manifest
        from study.integrity import check_bundle, check_database
        from study.service import StudyService

        cfg = load_config(config)
        check_bundle(bundle, load_manifest(bundle))  # opens every picture: a bad one is refused now, not on a rater's page
        check_database(db)  # damaged, read-only or empty file: refused before anything is written
        svc = StudyService(db, bundle, cfg, allow_design_change=args.allow_design_change)  # creates/binds the DB, pins the design
    except (ManifestError, ConfigError, StudyDBError, ValueError) as exc:
        return _error(str(exc))
    for key, (old, new) in svc.design_changes.items():
        print(f"warning: design changed: {key}: {old!r} -> {new!r} (recorded as a design_changed event)", file=sys.stderr)
    env = {
        **os.environ,
        "SPADE_STUDY_BUNDLE": str(bundle),
        "SPADE_STUDY_DB": str(db),
        "SPADE_STUDY_CONFIG": str(config or ""),
    }
    cmd = [
        sys.executable, "-m", "streamlit", "run", str(APP),
        "--server.headless", "true",
        "--server.address", args.address,
        "--server.port", str(args.port),
        "--server.fileWatcherType", "none",
        "--server.runOnSave", "false",
        "--browser.gatherUsageStats", "false",
        "--client.toolbarMode", "minimal",
        "--global.developmentMode", "false",
        # Tracebacks never reach a rater's page (they hold server paths); the app logs errors for the admin.
        "--client.showErrorDetails", "none",
    ]  # fmt: skip
    url = f"http://{args.address}:{args.port}/"
    print(f"Serving the study at {url} (bundle {bundle}, database {db}); admin page: {url}?page=admin", flush=True)
    proc = subprocess.Popen(cmd, env=env)
    # Stopping `serve` must stop Streamlit too: forward the usual stop signals to it, then wait.
    forwarded = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
    previous = {}
    asked: list[int] = []

    def forward(signum: int, _frame: object) -> None:
        asked.append(signum)
        proc.send_signal(signum)

    if threading.current_thread() is threading.main_thread():
        for sig in forwarded:
            previous[sig] = signal.signal(sig, forward)
    try:
        code = proc.wait()
        # A server that died of the stop signal we forwarded was stopped as asked: an orderly stop.
        return 0 if asked and code in (-asked[-1], 128 + asked[-1]) else code
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _raters_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="spade-study raters", description="Invite, list and revoke the raters of a study database.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    inv = sub.add_parser("invite", help="create N invite links (one per line on stdout)")
    inv.add_argument("--db", required=True, metavar="STUDY.db")
    inv.add_argument("--n", type=int, required=True, help="number of raters to invite")
    inv.add_argument("--base-url", required=True, help="public URL of the study app, e.g. https://study.example.org/")
    ls = sub.add_parser("list", help="show each rater's progress")
    ls.add_argument("--db", required=True, metavar="STUDY.db")
    rv = sub.add_parser("revoke", help="withdraw one rater's link (their answers are kept)")
    rv.add_argument("--db", required=True, metavar="STUDY.db")
    rv.add_argument("who", metavar="TOKEN_OR_RATER_ID")
    return p


def _fmt(v: object) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.2f}"
    return str(v)


def raters_main(argv: list[str]) -> int:
    """`spade-study raters invite|list|revoke`."""
    try:
        args = _raters_parser().parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    from study.db import open_db
    from study.invites import create_invites, revoke
    from study.stats import rater_rows

    try:
        if args.command == "invite":
            invites = create_invites(args.db, args.n, args.base_url)
            for inv in invites:
                print(inv.url)
            print(f"created {len(invites)} invite links in {args.db}", file=sys.stderr)
            return 0
        if args.command == "revoke":
            rater_id = revoke(args.db, args.who)
            print(f"revoked {rater_id}")
            return 0
        db = open_db(args.db, create=False)
        try:
            rows = rater_rows(db)
        finally:
            db.conn.close()
    except (StudyDBError, ValueError) as exc:
        return _error(str(exc))
    except KeyError as exc:
        return _error(str(exc.args[0]))
    cols = ["rater_id", "source", "answered", "assigned", "dense", "spade", "catch_correct", "catch_answered", "practice_passed", "completed_at", "revoked_at"]
    table = [cols] + [[_fmt(r[c]) for c in cols] for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(cols))]
    for row in table:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip())
    print(f"{len(rows)} raters, {sum(1 for r in rows if r['completed_at'])} completed", file=sys.stderr)
    return 0


def _db_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="spade-study db", description="Copy data out of a study database (on the server, not through the web).")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    bk = sub.add_parser("backup", help="write a consistent single-file copy of the live database (it holds every invite token: keep it private)")
    bk.add_argument("--db", required=True, metavar="STUDY.db")
    bk.add_argument("--out", required=True, metavar="BACKUP.db")
    ex = sub.add_parser("export", help="write the responses CSV (withdrawn raters left out)")
    ex.add_argument("--db", required=True, metavar="STUDY.db")
    ex.add_argument("--out", required=True, metavar="RESPONSES.csv")
    return p


def db_main(argv: list[str]) -> int:
    """`spade-study db backup|export`: the only ways data leave the server (the admin page has no downloads)."""
    try:
        args = _db_parser().parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    from study.db import open_db
    from study.export import backup, write_responses_csv

    try:
        open_db(args.db, create=False).conn.close()  # a study database, of this schema version
        out = Path(args.out)
        if out.resolve() == Path(args.db).resolve():
            return _error("--out must not be the database itself")
        if not out.parent.is_dir():
            return _error(f"{out.parent}: folder does not exist")
        if args.command == "backup":
            backup(args.db, out)
            print(f"wrote {out} (a consistent copy; it holds every rater's invite token)")
        else:
            n = write_responses_csv(args.db, out)
            print(f"wrote {out} ({n} responses)")
    except StudyDBError as exc:
        return _error(str(exc))
    return 0
