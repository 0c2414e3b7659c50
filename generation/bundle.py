"""The bundle on disk: one folder per finished item, written atomically, and the manifest listing them.

Layout of `BUNDLE/`:
    manifest.json                      the study (see contracts/manifest.py)
    items/<id>/image.png               the model's center crop, as shown to raters
    items/<id>/scorecam_{true,predicted}.png   Score-CAM heatmaps over the image
    items/<id>/crop_{true,predicted}.png       the two regions, cropped
    items/<id>/{dense,spade}_{true,predicted}.png  the four visualizations
    items/<id>/item.json               the item's manifest entry plus timings and SPADE facts
    .work/                             caches of a run in progress (predictions, screening, temp items)

An item is first written to `.work/tmp/<id>` and renamed to `items/<id>` once complete, so a
killed run leaves either a whole item or none; `item.json` is written last inside it.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

from PIL import Image

from contracts.manifest import CONDITIONS, MANIFEST_VERSION, TARGETS, write_json_atomic, write_manifest

ITEMS = "items"
WORK = ".work"
ITEM_JSON = "item.json"


def item_id(source: str) -> str:
    """A file-system-safe id from a source path: `n01440764/x.JPEG` -> `n01440764__x`."""
    stem = source.rsplit(".", 1)[0] if "." in Path(source).name else source
    return re.sub(r"[^A-Za-z0-9._-]+", "_", stem.replace("/", "__")).strip("._") or "item"


def item_ids(sources: list[str]) -> dict[str, str]:
    """Ids for all sources of a dataset, unique: sources whose ids collide get a hash of their path appended."""
    base = {s: item_id(s) for s in sources}
    count: dict[str, int] = {}
    for i in base.values():
        count[i] = count.get(i, 0) + 1
    return {s: i if count[i] == 1 else f"{i}-{hashlib.sha1(s.encode()).hexdigest()[:8]}" for s, i in base.items()}


def item_dir(bundle: Path, id_: str) -> Path:
    """Where a finished item lives."""
    return bundle / ITEMS / id_


def is_finished(bundle: Path, id_: str) -> bool:
    """Whether the item was completely written (its folder holds item.json)."""
    return (item_dir(bundle, id_) / ITEM_JSON).is_file()


def item_paths(id_: str) -> dict[str, Any]:
    """The manifest's relative paths of one item's files."""
    base = f"{ITEMS}/{id_}"
    return {
        "image": f"{base}/image.png",
        "scorecam": {t: f"{base}/scorecam_{t}.png" for t in TARGETS},
        "crops": {t: f"{base}/crop_{t}.png" for t in TARGETS},
        "visualizations": {c: {t: f"{base}/{c}_{t}.png" for t in TARGETS} for c in CONDITIONS},
    }


def write_item(bundle: Path, id_: str, images: dict[str, Image.Image], record: dict[str, Any]) -> Path:
    """Write an item's PNGs (keyed by their manifest path) and item.json atomically; return its folder."""
    tmp = bundle / WORK / "tmp" / id_
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    prefix = f"{ITEMS}/{id_}/"
    for rel, image in images.items():
        assert rel.startswith(prefix), rel
        image.save(tmp / rel[len(prefix):], format="PNG")
    write_json_atomic(tmp / ITEM_JSON, record)
    final = item_dir(bundle, id_)
    final.parent.mkdir(parents=True, exist_ok=True)
    if final.exists():  # an unfinished leftover from an older layout or a manual copy
        shutil.rmtree(final)
    os.replace(tmp, final)
    return final


def read_item(bundle: Path, id_: str) -> dict[str, Any]:
    """The item.json record of a finished item."""
    return json.loads((item_dir(bundle, id_) / ITEM_JSON).read_text(encoding="utf-8"))


def finished_records(bundle: Path, order: list[str]) -> list[dict[str, Any]]:
    """The records of the finished items among `order`, in that order."""
    return [read_item(bundle, i) for i in order if is_finished(bundle, i)]


def write_bundle_manifest(bundle: Path, study: dict[str, Any], records: list[dict[str, Any]]) -> dict[str, Any]:
    """Assemble and atomically (re)write `manifest.json` from the item records; return it."""
    manifest = {"version": MANIFEST_VERSION, "study": study, "items": [r["entry"] for r in records]}
    write_manifest(bundle, manifest)
    return manifest
