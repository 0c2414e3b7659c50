"""The one atomic-write helper: whole files or nothing, the umask's mode, strict JSON."""
from __future__ import annotations

import json
import math
import os
import stat

import pytest

from contracts.files import write_json_atomic, write_text_atomic


def test_result_gets_the_umask_mode_not_0600(tmp_path) -> None:
    old = os.umask(0o022)
    try:
        path = write_text_atomic(tmp_path / "a.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path) -> None:
    path = tmp_path / "s.json"
    write_json_atomic(path, {"a": 1})
    with pytest.raises(TypeError):
        write_json_atomic(path, {"a": object()})
    assert json.loads(path.read_text()) == {"a": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.json"]


def test_json_is_strict(tmp_path) -> None:
    path = write_json_atomic(tmp_path / "s.json", {"nan": math.nan, "inf": [math.inf], "ok": 1.5})
    assert json.loads(path.read_text()) == {"nan": None, "inf": [None], "ok": 1.5}
