"""Atomic file writes, the one helper every part uses for its outputs.

A crash or a full disk mid-write must not leave a half-written manifest, summary.json or trace
beside complete files: writing to a temporary file in the same folder and renaming it
(`os.replace`, atomic on POSIX) is the standard way, and small enough not to pull in a library.
The temporary file is created mode 0600 by `mkstemp`; the result gets the mode a plain `open()`
would give (0666 minus the umask), so outputs are shared as the user's umask says.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Iterator


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | Path, mode: int | None = None) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success fsync it and rename it over `path`, else remove it.

    The file gets `mode` if given (0o600 for secrets such as a database backup), else the umask's.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, mode if mode is not None else 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    """Write `data` to `path` through a temporary file and a rename."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write UTF-8 text atomically (newlines written as given)."""
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
    """Write `obj` as indented, strict JSON (NaN and inf become null) atomically."""
    text = json.dumps(json_ready(obj), indent=2, sort_keys=False, allow_nan=False)
    return write_text_atomic(path, text + "\n")
