"""Checks `spade-study serve` runs before it serves anyone: every picture of the bundle, and the database file.

A problem found here is one `error:` line at start, not a broken page (or a lost answer) later:
- every image the raters can be shown is opened with Pillow (`verify`, then a full `load`, which
  finds truncated files), must be at most `MAX_IMAGE_BYTES` and `MAX_IMAGE_PIXELS`, and must
  resolve inside the bundle (a symlink out of the bundle is refused);
- the database passes `PRAGMA quick_check` and takes a real write (a read-only file or folder
  fails here, not at the first answer); an empty (0-byte) file is refused, never made a new study.
"""
from __future__ import annotations

import sqlite3
import warnings
from pathlib import Path
from typing import Iterator

from PIL import Image

from study.db import BUSY_TIMEOUT_MS, StudyDBError, iso_from_ms, now_ms

MAX_IMAGE_BYTES = 20 * 1024 * 1024  # a photo or visualization of a study is well under 1 MB
MAX_IMAGE_PIXELS = 40_000_000  # Pillow's decompression-bomb guard is about 89 M; a study picture needs far less


class BundleError(ValueError):
    """A bundle picture that cannot be served; the message names the item and the file."""


def bundle_images(manifest: dict) -> Iterator[tuple[str, str, str]]:
    """Yield (item id, role, relative path) for every picture a rater can be shown."""
    for item in manifest["items"]:
        yield item["id"], "image", item["image"]
        for condition, by_target in sorted(item.get("visualizations", {}).items()):
            for target, rel in sorted(by_target.items()):
                yield item["id"], f"visualization {condition}/{target}", rel


def check_image(bundle: Path, rel: str, max_bytes: int | None = None) -> str | None:
    """Return why the picture at `bundle/rel` cannot be served, or None when it can."""
    max_bytes = MAX_IMAGE_BYTES if max_bytes is None else max_bytes
    root = bundle.resolve()
    path = bundle / rel
    try:
        real = path.resolve(strict=True)
    except (OSError, RuntimeError) as exc:  # missing target, symlink loop
        return f"cannot be opened ({type(exc).__name__})"
    if not real.is_relative_to(root):
        return "resolves outside the bundle (through a symlink)"
    if not real.is_file():
        return "is not a regular file"
    size = real.stat().st_size
    if size > max_bytes:
        return f"is {size:,} bytes, over the limit of {max_bytes:,}"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(real) as im:
                im.verify()  # structure and checksums; the image is unusable afterwards
            with Image.open(real) as im:
                if im.width * im.height > MAX_IMAGE_PIXELS:
                    return f"is {im.width}x{im.height} pixels, over the limit of {MAX_IMAGE_PIXELS:,}"
                im.load()  # decodes every pixel: finds a truncated file that verify() lets through
    except Exception as exc:  # Pillow raises many types for bad files; each is a refusal here
        return f"is not a readable image ({type(exc).__name__}: {str(exc)[:120]})"
    return None


def check_bundle(bundle: str | Path, manifest: dict, max_bytes: int | None = None) -> int:
    """Open every picture of the bundle; raise BundleError naming the first bad one; return how many were checked."""
    bundle = Path(bundle)
    n = 0
    for item_id, role, rel in bundle_images(manifest):
        why = check_image(bundle, rel, max_bytes)
        if why is not None:
            raise BundleError(f"item {item_id}: {role} file {rel} {why}")
        n += 1
    return n


def check_database(path: str | Path) -> None:
    """Refuse a database file that is empty, damaged or not writable (StudyDBError, one line). A missing
    file is fine (it will be created) when its folder is writable."""
    path = Path(path)
    if not path.exists():
        return
    if path.is_dir():
        raise StudyDBError(f"{path}: is a folder, not a study database file")
    if path.stat().st_size == 0:
        raise StudyDBError(f"{path}: is an empty file (0 bytes), not a study database; remove it or choose another --db")
    try:
        conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    except sqlite3.Error as exc:
        raise StudyDBError(f"{path}: cannot be opened ({exc})") from None
    try:
        try:
            rows = [r[0] for r in conn.execute("PRAGMA quick_check").fetchall()]
        except sqlite3.DatabaseError as exc:
            raise StudyDBError(f"{path}: is damaged or not a SQLite database ({exc})") from None
        if rows != ["ok"]:
            raise StudyDBError(f"{path}: is damaged (PRAGMA quick_check: {rows[0][:120]}); restore it from a backup")
        has_meta = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'").fetchone()
        if has_meta is None:
            return  # not a study database: open_db says so
        try:
            # A real write, committed: a read-only file, or a folder where the WAL files cannot be
            # created, fails here instead of at a rater's first answer.
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('last_write_check', ?)", [iso_from_ms(now_ms())])
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StudyDBError(f"{path}: cannot be written ({exc}); check the permissions of the file and its folder") from None
    finally:
        conn.close()
