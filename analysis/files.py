"""Atomic file writes for the analysis outputs.

A crash or a full disk mid-write must not leave a half-written summary.json
beside complete figures; writing to a temporary file in the same folder and
renaming it (`os.replace`, atomic on POSIX) is the standard way, and small
enough not to pull in a library for it.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    """Write `data` to `path` through a temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write UTF-8 text atomically."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def json_ready(obj: object) -> object:
    """Replace NaN/inf by None and numpy scalars by Python ones, recursively (strict JSON)."""
    if isinstance(obj, dict):
        return {str(k): json_ready(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_ready(v) for v in obj]
    if hasattr(obj, "item") and not isinstance(obj, (str, bytes)):
        obj = obj.item()  # numpy scalar
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_json_atomic(path: str | Path, obj: object) -> Path:
    """Write `obj` as indented, strict JSON (no NaN) atomically."""
    text = json.dumps(json_ready(obj), indent=2, sort_keys=False, allow_nan=False)
    return write_text_atomic(path, text + "\n")
