"""The study bundle's `manifest.json`: its schema, validation, and atomic writing.

This is the contract between `generation` (which writes bundles), `study` (which
serves them) and outside tools; neither owns it. It is pure standard library plus Pillow so that
`study` can import it without importing torch. The schema is validated by hand
rather than with a JSON-Schema library because the checks that matter (regions
inside the image, regions not intersecting, files inside the bundle) are not
expressible in JSON Schema.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from contracts.files import write_json_atomic

MANIFEST_VERSION = 1
MANIFEST_NAME = "manifest.json"
CONDITIONS = ("dense", "spade")
TARGETS = ("true", "predicted")


class ManifestError(ValueError):
    """A bundle whose manifest does not follow the schema."""


def boxes_intersect(a: list[int], b: list[int]) -> bool:
    """Return whether two [x0, y0, x1, y1] boxes (x1, y1 exclusive) share a pixel."""
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _require(cond: bool, where: str, message: str) -> None:
    if not cond:
        raise ManifestError(f"{where}: {message}")


def _check_path(bundle: Path | None, value: Any, where: str) -> None:
    _require(isinstance(value, str) and value != "", where, "must be a non-empty relative path")
    p = Path(value)
    _require(not p.is_absolute() and ".." not in p.parts, where, f"path {value!r} must stay inside the bundle")
    if bundle is not None:
        _require((bundle / p).is_file(), where, f"file {value!r} is missing from the bundle")


def _check_box(box: Any, where: str, size: tuple[int, int] | None) -> None:
    _require(
        isinstance(box, list) and len(box) == 4 and all(isinstance(v, int) and not isinstance(v, bool) for v in box),
        where,
        "must be a list of four integers [x0, y0, x1, y1]",
    )
    x0, y0, x1, y1 = box
    _require(0 <= x0 < x1 and 0 <= y0 < y1, where, f"box {box} is empty or negative")
    if size is not None:
        w, h = size
        _require(x1 <= w and y1 <= h, where, f"box {box} leaves the {w}x{h} image")


def validate_item(item: Any, index: int, bundle: Path | None = None) -> None:
    """Raise ManifestError when one item of the manifest breaks the schema."""
    where = f"items[{index}]"
    _require(isinstance(item, dict), where, "must be an object")
    for key in ("id", "image", "source", "true_label", "predicted_label"):
        _require(isinstance(item.get(key), str) and item[key] != "", f"{where}.{key}", "must be a non-empty string")
    for key in ("true_class", "predicted_class"):
        v = item.get(key)
        _require(isinstance(v, int) and not isinstance(v, bool) and v >= 0, f"{where}.{key}", "must be a class index >= 0")
    _require(item["true_class"] != item["predicted_class"], where, "true_class equals predicted_class (not a misclassified sample)")
    _check_path(bundle, item["image"], f"{where}.image")
    size = None
    if bundle is not None:
        from PIL import Image  # lazy: the schema checks without files need no imaging

        with Image.open(bundle / item["image"]) as im:
            size = im.size
    regions = item.get("regions")
    _require(isinstance(regions, dict) and set(regions) >= set(TARGETS), f"{where}.regions", "needs 'true' and 'predicted' boxes")
    for t in TARGETS:
        _check_box(regions[t], f"{where}.regions.{t}", size)
    _require(not boxes_intersect(regions["true"], regions["predicted"]), f"{where}.regions", "the two regions intersect")
    vis = item.get("visualizations")
    _require(isinstance(vis, dict) and set(vis) >= set(CONDITIONS), f"{where}.visualizations", "needs 'dense' and 'spade'")
    for c in CONDITIONS:
        _require(isinstance(vis[c], dict) and set(vis[c]) >= set(TARGETS), f"{where}.visualizations.{c}", "needs 'true' and 'predicted'")
        for t in TARGETS:
            _check_path(bundle, vis[c][t], f"{where}.visualizations.{c}.{t}")
    # Optional extras written by the generator: per-target Score-CAM maps and region crops.
    for extra in ("scorecam", "crops"):
        if extra in item:
            _require(isinstance(item[extra], dict), f"{where}.{extra}", "must be an object")
            for t, path in item[extra].items():
                _check_path(bundle, path, f"{where}.{extra}.{t}")


def validate_manifest(manifest: Any, bundle: str | Path | None = None) -> dict:
    """Validate a manifest (and, given the bundle folder, its files); return it."""
    bundle = Path(bundle) if bundle is not None else None
    _require(isinstance(manifest, dict), "manifest", "must be a JSON object")
    version = manifest.get("version")
    _require(
        version == MANIFEST_VERSION,
        "manifest.version",
        f"is {version!r}; this code reads version {MANIFEST_VERSION}",
    )
    _require(isinstance(manifest.get("study"), dict), "manifest.study", "must be an object")
    items = manifest.get("items")
    _require(isinstance(items, list), "manifest.items", "must be a list")
    seen: set[str] = set()
    for i, item in enumerate(items):
        validate_item(item, i, bundle)
        _require(item["id"] not in seen, f"items[{i}].id", f"duplicate id {item['id']!r}")
        seen.add(item["id"])
    return manifest


def load_manifest(bundle: str | Path, check_files: bool = True) -> dict:
    """Read and validate `BUNDLE/manifest.json`; raise ManifestError with a one-line reason."""
    bundle = Path(bundle)
    path = bundle / MANIFEST_NAME
    if not path.is_file():
        raise ManifestError(f"{path}: no manifest.json in this folder (is it a study bundle?)")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{path}: not valid JSON ({exc})") from exc
    return validate_manifest(manifest, bundle if check_files else None)


def write_manifest(bundle: str | Path, manifest: dict) -> None:
    """Validate (without touching files) and atomically write the bundle's manifest."""
    validate_manifest(manifest)
    write_json_atomic(Path(bundle) / MANIFEST_NAME, manifest)
