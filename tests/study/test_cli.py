"""`spade-study serve` and `spade-study raters`: one-line errors, invites, listing, revocation, the printed URL."""
from __future__ import annotations

import os
import subprocess
import sys
import urllib.request

import pytest
from study.examples import write_config
from tests.study.helpers import REPO, answer_all, free_port, make_service, stop_process_group, wait_healthy

from spade_study.cli import main
from study.db import connect, open_db


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def test_serve_refuses_bad_inputs_with_one_line(tmp_path, study_bundle, capsys) -> None:
    db = str(tmp_path / "s.db")
    assert main(["serve", str(tmp_path / "nowhere"), "--db", db]) == 2
    assert "no manifest.json" in _one_line_error(capsys)
    bad = tmp_path / "bad.toml"
    bad.write_text("[study]\ntasks_per_rater = 4\nratings = 2\n")
    assert main(["serve", str(study_bundle), "--db", db, "--config", str(bad)]) == 2
    assert "unknown key 'ratings'" in _one_line_error(capsys)
    big = write_config(tmp_path / "big.toml", tasks_per_rater=20)
    assert main(["serve", str(study_bundle), "--db", db, "--config", str(big)]) == 2
    assert "exceeds the bundle's 12 items" in _one_line_error(capsys)
    assert main(["serve", str(study_bundle), "--db", db, "--port", "70000"]) == 2
    assert "--port" in _one_line_error(capsys)
    assert main(["serve", str(study_bundle)]) == 2
    assert "--db" in _one_line_error(capsys)
    old = tmp_path / "old.db"
    open_db(old).execute("UPDATE meta SET value = '0' WHERE key = 'schema_version'")
    small = write_config(tmp_path / "small.toml")
    assert main(["serve", str(study_bundle), "--db", str(old), "--config", str(small)]) == 2
    assert "schema version 0" in _one_line_error(capsys)


def test_serve_prints_its_url_and_serves_on_loopback(tmp_path, study_bundle) -> None:
    port = free_port()
    config = write_config(tmp_path / "s.toml")
    proc = subprocess.Popen(
        [sys.executable, "-m", "spade_study", "serve", str(study_bundle), "--db", str(tmp_path / "s.db"), "--port", str(port), "--config", str(config)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=dict(os.environ),
        start_new_session=True,
    )  # fmt: skip
    try:
        first = proc.stdout.readline()
        assert first.startswith(f"Serving the study at http://127.0.0.1:{port}/")
        wait_healthy(f"http://127.0.0.1:{port}", proc)
        # Stopping `serve` (SIGTERM, as a service manager would) stops Streamlit with it.
        proc.terminate()
        assert proc.wait(timeout=30) == 0
        with pytest.raises(OSError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2)
    finally:
        stop_process_group(proc)
    assert connect(tmp_path / "s.db").execute("SELECT COUNT(*) FROM tasks").fetchone()[0] == 12 * 8


def test_raters_invite_list_and_revoke(tmp_path, study_bundle, capsys) -> None:
    svc = make_service(tmp_path, study_bundle, identity="invite")
    db = str(svc.db_path)
    assert main(["raters", "invite", "--db", db, "--n", "3", "--base-url", "https://study.example.org/"]) == 0
    out = capsys.readouterr()
    urls = out.out.strip().splitlines()
    assert len(urls) == 3 and all(u.startswith("https://study.example.org/?token=") for u in urls)
    assert "created 3 invite links" in out.err
    token = urls[0].split("token=")[1]
    rater = svc.identify({"token": token})
    svc.consent({"token": token})
    svc.finish_instructions(rater.rater_id)
    from tests.study.helpers import finish_practice

    finish_practice(svc, rater.rater_id)
    answer_all(svc, rater.rater_id, choose=lambda a: a.correct)
    assert main(["raters", "list", "--db", db]) == 0
    out = capsys.readouterr()
    lines = out.out.strip().splitlines()
    assert lines[0].split()[:4] == ["rater_id", "source", "answered", "assigned"]
    row = next(line for line in lines if line.startswith(rater.rater_id)).split()
    assert row[1:7] == ["invite", "5", "5", "2", "2", "1"]  # answered, assigned, dense, spade, catch correct
    assert "3 raters, 1 completed" in out.err
    assert main(["raters", "revoke", "--db", db, token]) == 0
    assert capsys.readouterr().out.strip() == f"revoked {rater.rater_id}"
    assert main(["raters", "revoke", "--db", db, "nobody"]) == 2
    assert "no rater with token or id 'nobody'" in _one_line_error(capsys)


def test_raters_errors_are_one_line(tmp_path, capsys) -> None:
    db = str(tmp_path / "s.db")
    assert main(["raters", "invite", "--db", db, "--n", "2", "--base-url", "study.example.org"]) == 2
    assert "must start with http" in _one_line_error(capsys)
    assert main(["raters", "list", "--db", str(tmp_path / "missing.db")]) == 2
    assert "no such study database" in _one_line_error(capsys)
    assert main(["raters", "invite", "--db", db, "--n", "many", "--base-url", "http://x/"]) == 2
    assert "invalid int value" in _one_line_error(capsys)
    assert main(["raters"]) == 2
    _one_line_error(capsys)


def test_rater_tokens_never_start_with_a_dash(monkeypatch) -> None:
    # A token such as '-WAnfnXqS8YSbVvx' was read as an option by `raters revoke TOKEN` (seen in a real run).
    import study.db

    drawn = iter(["-WAnfnXqS8YSbVvx", "-abc", "ok_token-123456"])
    monkeypatch.setattr(study.db.secrets, "token_urlsafe", lambda n: next(drawn))
    assert study.db.new_token() == "ok_token-123456"
