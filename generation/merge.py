"""Join the bundles of shards `0/N .. N-1/N` into one bundle identical in items to a single run."""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from generation.bundle import ITEMS, WORK, is_finished, item_dir, read_item, write_bundle_manifest
from generation.errors import GenerationError
from contracts.manifest import ManifestError, load_manifest

# study-block keys that must agree between shards (they define which items exist and how they look)
_SHARED = ("config", "model", "seeds", "scorecam_layer", "visualization_method", "selection")


def _load(path: Path) -> dict[str, Any]:
    try:
        return load_manifest(path)
    except ManifestError as exc:
        raise GenerationError(f"shard {path}: {exc}") from None


def merge(shard_dirs: list[str | Path], out: str | Path) -> Path:
    """Copy every shard's items into `out` and write the merged manifest; return `out`."""
    dirs = [Path(d).resolve() for d in shard_dirs]
    out = Path(out).resolve()
    if not dirs:
        raise GenerationError("merge needs at least one shard folder")
    if out in dirs:
        raise GenerationError(f"--out {out} is one of the shards; merge into a new folder")
    manifests = [_load(d) for d in dirs]
    shards = [m["study"].get("shard") for m in manifests]
    for d, s in zip(dirs, shards):
        if not s:
            raise GenerationError(f"{d} is not a shard (it was built without --shard)")
    count = shards[0]["count"]
    first = manifests[0]["study"]
    for d, m, s in zip(dirs, manifests, shards):
        if s["count"] != count:
            raise GenerationError(f"{d} is shard {s['index']}/{s['count']}, the others are of {count}")
        for key in _SHARED:
            if m["study"].get(key) != first.get(key):
                raise GenerationError(f"{d} differs from {dirs[0]} in study.{key}: not shards of the same study")
    indices = sorted(s["index"] for s in shards)
    if indices != list(range(count)):
        missing = sorted(set(range(count)) - set(indices))
        dup = sorted({i for i in indices if indices.count(i) > 1})
        what = f"shard(s) {', '.join(f'{i}/{count}' for i in dup)} given twice" if dup else \
            f"missing shard(s) {', '.join(f'{i}/{count}' for i in missing)}"
        raise GenerationError(f"cannot merge: {what}")
    selection: list[str] = first["selection"]
    owner = {s["index"]: d for d, s in zip(dirs, shards)}
    for rank, id_ in enumerate(selection):
        src = owner[rank % count]
        if not is_finished(src, id_):
            raise GenerationError(f"shard {rank % count}/{count} ({src}) has not finished item {id_!r}: re-run that shard")

    (out / ITEMS).mkdir(parents=True, exist_ok=True)
    tmp_root = out / WORK / "tmp"
    tmp_root.mkdir(parents=True, exist_ok=True)
    records = []
    for rank, id_ in enumerate(selection):
        src = owner[rank % count]
        dst = item_dir(out, id_)
        if not is_finished(out, id_):
            tmp = tmp_root / id_
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.copytree(item_dir(src, id_), tmp)
            if dst.exists():
                shutil.rmtree(dst)
            os.replace(tmp, dst)  # whole items only, as in a single run
        records.append(read_item(out, id_))

    study = dict(first)
    study["shard"] = None
    study["merged_from"] = [{"folder": str(d), "shard": f"{s['index']}/{s['count']}", "device": m["study"].get("device"),
                             "timings": m["study"].get("timings")} for d, s, m in zip(dirs, shards, manifests)]
    items_t: dict[str, Any] = {}
    study["spade"] = {}
    for m in manifests:
        items_t.update(m["study"].get("timings", {}).get("items", {}))
        study["spade"].update(m["study"].get("spade", {}))
    per_item = [sum(t.values()) for t in items_t.values()]
    study["timings"] = {"items": items_t, "mean_item_s": round(sum(per_item) / len(per_item), 3) if per_item else None,
                        "shards": [m["study"].get("timings", {}).get("runs") for m in manifests]}
    study["runs"] = [r for m in manifests for r in m["study"].get("runs", [])]
    write_bundle_manifest(out, study, records)
    shutil.rmtree(out / WORK, ignore_errors=True)
    return out
