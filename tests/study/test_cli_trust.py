"""`spade-study serve` checks at the door: every bundle picture, the database file, the pinned design;
`spade-study db backup|export` instead of web downloads."""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest
from study.examples import IMAGENET_SAMPLE, write_config
from tests.study.helpers import answer_all, make_service, rater_at_tasks

from spade_study.cli import main
from study.db import connect


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


class _FakeStreamlit:
    """Stands in for the Streamlit child process: `serve` got past every check."""

    started = 0

    def __init__(self, *args: object, **kwargs: object) -> None:
        type(self).started += 1

    def wait(self, timeout: float | None = None) -> int:
        return 0

    def poll(self) -> int:
        return 0


@pytest.fixture()
def bundle(tmp_path, study_bundle) -> Path:
    return Path(shutil.copytree(study_bundle, tmp_path / "bundle"))


def _manifest(bundle: Path) -> dict:
    return json.loads((bundle / "manifest.json").read_text())


def test_serve_opens_every_picture_and_refuses_a_bad_one_naming_item_and_file(tmp_path, bundle, capsys, monkeypatch) -> None:
    item = _manifest(bundle)["items"][3]
    photo, vis = bundle / item["image"], bundle / item["visualizations"]["spade"]["predicted"]
    config = write_config(tmp_path / "s.toml")
    db = tmp_path / "s.db"
    good_photo, good_vis = photo.read_bytes(), vis.read_bytes()

    def serve() -> str:
        assert main(["serve", str(bundle), "--db", str(db), "--config", str(config)]) == 2
        return _one_line_error(capsys)

    @contextlib.contextmanager
    def broken(path: Path, good: bytes):
        try:
            yield
        finally:
            path.unlink()
            path.write_bytes(good)

    with broken(vis, good_vis):
        vis.unlink()
        vis.symlink_to("/etc/passwd")
        line = serve()
        assert f"item {item['id']}: visualization spade/predicted file {item['visualizations']['spade']['predicted']}" in line
        assert "resolves outside the bundle" in line
    with broken(photo, good_photo):
        photo.unlink()
        photo.symlink_to(IMAGENET_SAMPLE / "n01440764_tench.JPEG")  # a real photo, but outside the bundle
        assert f"item {item['id']}: image file {item['image']} resolves outside the bundle" in serve()
    with broken(photo, good_photo):
        photo.write_bytes(good_photo[: len(good_photo) // 2])
        line = serve()
        assert f"item {item['id']}: image file {item['image']} is not a readable image" in line and "truncated" in line
    with broken(vis, good_vis):
        vis.write_text("root:x:0:0:root:/root:/bin/bash\n")
        assert "is not a readable image (UnidentifiedImageError" in serve()
    monkeypatch.setattr("study.integrity.MAX_IMAGE_BYTES", 1000)
    assert "bytes, over the limit of 1,000" in serve()
    assert not db.exists()  # refused before anything was written


def _real_study(tmp_path: Path, bundle: Path) -> Path:
    svc = make_service(tmp_path, bundle, identity="invite")
    db = svc.db_path
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return db


def test_serve_refuses_a_damaged_read_only_or_empty_database(tmp_path, bundle, capsys) -> None:
    config = write_config(tmp_path / "s.toml", min_view_seconds=0)
    # Zero bytes: never silently made a new study.
    empty = tmp_path / "empty.db"
    empty.touch()
    assert main(["serve", str(bundle), "--db", str(empty), "--config", str(config)]) == 2
    assert "is an empty file (0 bytes)" in _one_line_error(capsys)
    assert empty.stat().st_size == 0
    # Three pages overwritten.
    (tmp_path / "d").mkdir()
    damaged = _real_study(tmp_path / "d", bundle)
    with open(damaged, "r+b") as f:
        for page in (2, 3, 4):
            f.seek((page - 1) * 4096)
            f.write(os.urandom(4096))
    assert main(["serve", str(bundle), "--db", str(damaged), "--config", str(config)]) == 2
    assert "damaged" in _one_line_error(capsys)
    # Read-only (root ignores file modes: make the file immutable instead).
    (tmp_path / "r").mkdir()
    ro = _real_study(tmp_path / "r", bundle)
    if os.geteuid() == 0:
        subprocess.run(["chattr", "+i", str(ro)], check=True)
    else:
        ro.chmod(0o444)
    try:
        assert main(["serve", str(bundle), "--db", str(ro), "--config", str(config)]) == 2
        assert "cannot be written" in _one_line_error(capsys)
    finally:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(ro)], check=True)


def test_serve_refuses_a_changed_design_unless_allowed_and_records_the_change(tmp_path, bundle, capsys, monkeypatch) -> None:
    monkeypatch.setattr("study.cli.subprocess.Popen", _FakeStreamlit)
    db = tmp_path / "s.db"
    first = write_config(tmp_path / "first.toml", min_view_seconds=1)
    assert main(["serve", str(bundle), "--db", str(db), "--config", str(first)]) == 0
    changed = write_config(tmp_path / "changed.toml", min_view_seconds=0.5, catch_per_rater=0, practice_trials=4)
    assert main(["serve", str(bundle), "--db", str(db), "--config", str(changed)]) == 2
    line = _one_line_error(capsys)
    assert "catch_per_rater: 1 -> 0; min_view_seconds: 1.0 -> 0.5; practice.trials: 3 -> 4" in line
    assert "--allow-design-change" in line
    assert _FakeStreamlit.started == 1
    assert main(["serve", str(bundle), "--db", str(db), "--config", str(changed), "--allow-design-change"]) == 0
    assert "warning: design changed: catch_per_rater: 1 -> 0" in capsys.readouterr().err
    rows = list(connect(db).query("SELECT detail FROM events WHERE kind = 'design_changed'"))
    assert [json.loads(r["detail"]) for r in rows] == [
        {"catch_per_rater": [1, 0], "min_view_seconds": [1.0, 0.5], "practice.trials": [3, 4]}
    ]
    assert main(["serve", str(bundle), "--db", str(db), "--config", str(changed)]) == 0  # now pinned


def test_db_backup_and_export_on_the_command_line(tmp_path, study_bundle, capsys) -> None:
    svc = make_service(tmp_path, study_bundle)
    rid = rater_at_tasks(svc)
    answer_all(svc, rid)
    out = tmp_path / "backup.db"
    assert main(["db", "backup", "--db", str(svc.db_path), "--out", str(out)]) == 0
    assert out.stat().st_mode & 0o077 == 0  # it holds the invite tokens: owner only
    assert connect(out).execute("SELECT COUNT(*) FROM responses").fetchone()[0] == svc.policy.total
    csv = tmp_path / "responses.csv"
    assert main(["db", "export", "--db", str(svc.db_path), "--out", str(csv)]) == 0
    assert len(csv.read_text().splitlines()) == svc.policy.total + 1
    capsys.readouterr()
    assert main(["db", "export", "--db", str(tmp_path / "none.db"), "--out", str(csv)]) == 2
    assert "no such study database" in _one_line_error(capsys)
