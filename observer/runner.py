"""Answer every main task of a bundle with the observer; write `BUNDLE/observer/<name>.csv` (+ `.json`).

Per item, the two region crops and the four visualizations are embedded in one batch (several
items per batch); each visualization's cosine similarity with each crop gives the task's score,
and `observer.decision` turns it into target / other / undecided.

Resume: similarities are kept per item in `BUNDLE/observer/.work/<name>.json` (rewritten
atomically after every batch) until the results are written; a re-run also reuses the finished
results' similarities for every item whose input files did not change (a hash of its manifest entry
and files) when the embedding is the same. So `observe --flag` or a new `--margin` after a first run
embeds nothing.
"""
from __future__ import annotations

import hashlib
import json
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from PIL import Image
from tqdm.auto import tqdm

from contracts.files import write_json_atomic
from contracts.manifest import CONDITIONS, TARGETS, load_manifest
from contracts.observer import (ObserverError, condition_summary, read_results, results_dir, results_paths,
                                task_row_id, write_results)
from observer.decision import DEFAULT_EASY_GAP, DEFAULT_MARGIN, DEFAULT_SAME_REGIONS, decide, flag

WORK = ".work"
PAIRS = [(c, t) for c in CONDITIONS for t in TARGETS]


def other(target: str) -> str:
    """The other of the two targets."""
    return TARGETS[1] if target == TARGETS[0] else TARGETS[0]


def item_hash(bundle: Path, item: dict[str, Any]) -> str:
    """A hash of an item's manifest entry and of every file it names: cached similarities stay valid while it holds."""
    h = hashlib.sha256(json.dumps(item, sort_keys=True).encode())
    paths = [item["image"], *item.get("crops", {}).values()]
    paths += [item["visualizations"][c][t] for c, t in PAIRS]
    for rel in paths:
        h.update(rel.encode())
        h.update((bundle / rel).read_bytes())
    return h.hexdigest()


def region_crops(bundle: Path, item: dict[str, Any]) -> list[Image.Image]:
    """The two region crops (true, predicted): the bundle's crop files, else cut from the image as the app does."""
    crops = item.get("crops") or {}
    if all(t in crops for t in TARGETS):
        return [_open(bundle / crops[t]) for t in TARGETS]
    image = _open(bundle / item["image"])
    return [image.crop(tuple(item["regions"][t])) for t in TARGETS]


def _open(path: Path) -> Image.Image:
    with Image.open(path) as im:
        return im.convert("RGB")


def item_similarities(embedder: Any, bundle: Path, items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per item id: `sim_regions` (crop vs crop) and, per `condition/target`, the visualization's similarity to each crop.

    Similarities are rounded to 6 decimals, the precision of the results file, so that a decision
    recomputed from the file is the same decision.
    """
    pictures: list[Image.Image] = []
    for item in items:
        pictures += region_crops(bundle, item)
        pictures += [_open(bundle / item["visualizations"][c][t]) for c, t in PAIRS]
    feats = embedder.embed(pictures)
    per = 2 + len(PAIRS)
    out: dict[str, dict[str, Any]] = {}
    for k, item in enumerate(items):
        f = feats[k * per:(k + 1) * per]
        crops, vis = f[:2], f[2:]
        sims = {f"{c}/{t}": {target: round(float(crops[j] @ vis[i]), 6) for j, target in enumerate(TARGETS)}
                for i, (c, t) in enumerate(PAIRS)}
        out[item["id"]] = {"sim_regions": round(float(crops[0] @ crops[1]), 6), "sims": sims}
    return out


def _from_results(csv_path: Path, embedding: dict[str, Any], hashes: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Similarities of unchanged items from finished results of the same embedding ({} when unusable)."""
    try:
        rows, meta = read_results(csv_path)
    except ObserverError:
        return {}
    if meta.get("embedding") != embedding:
        return {}
    old = meta.get("item_hashes") or {}
    cache: dict[str, dict[str, Any]] = {}
    for r in rows:
        i = r["item_id"]
        if old.get(i) != hashes.get(i):
            continue
        entry = cache.setdefault(i, {"sim_regions": r["sim_regions"], "sims": {}})
        entry["sims"][f"{r['condition']}/{r['target']}"] = {r["target"]: r["sim_target"], other(r["target"]): r["sim_other"]}
    return {i: e for i, e in cache.items() if len(e["sims"]) == len(PAIRS)}


def _from_work(work_path: Path, embedding: dict[str, Any], hashes: dict[str, str]) -> dict[str, dict[str, Any]]:
    if not work_path.is_file():
        return {}
    try:
        work = json.loads(work_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {}  # a damaged cache is only lost time
    if not isinstance(work, dict) or work.get("embedding") != embedding:
        return {}
    return {i: e for i, e in (work.get("items") or {}).items()
            if isinstance(e, dict) and e.get("hash") == hashes.get(i) and e.get("hash") is not None}


def task_rows(items: list[dict[str, Any]], cache: dict[str, dict[str, Any]], network: str, margin: float,
              flags: dict[str, float] | None) -> list[dict[str, Any]]:
    """One results row per main task, in manifest order."""
    rows = []
    for item in items:
        entry = cache[item["id"]]
        for c, t in PAIRS:
            s = entry["sims"][f"{c}/{t}"]
            d = decide(s[t], s[other(t)], margin)
            score = round(d.score, 6)
            rows.append({
                "task_id": task_row_id(item["id"], c, t), "item_id": item["id"], "condition": c, "target": t,
                "choice": d.choice, "score": score, "margin": margin, "network": network,
                "sim_target": s[t], "sim_other": s[other(t)], "sim_regions": entry["sim_regions"],
                "flag": flag(score, entry["sim_regions"], **flags) if flags is not None else "",
            })
    return rows


def observe_bundle(bundle: str | Path, make_embedder: Callable[[], Any], embedding: dict[str, Any], network: str, *,
                   name: str, margin: float = DEFAULT_MARGIN, flags: dict[str, float] | None = None,
                   batch_items: int = 4, progress: bool = True) -> dict[str, Any]:
    """Observe every main task of `bundle`, reusing cached similarities; write the results; return a report.

    `make_embedder` is called only when some item needs embedding; `embedding` describes it (see
    `Embedder.describe`) and decides which caches are valid. `flags`: None, or the thresholds
    `easy_gap` and `same_regions` of `observer.decision.flag`.
    """
    bundle = Path(bundle)
    manifest = load_manifest(bundle)
    items = manifest["items"]
    if not items:
        raise ObserverError(f"{bundle}: the bundle has no items")
    csv_path, _ = results_paths(bundle, name)
    work_path = results_dir(bundle) / WORK / f"{name}.json"
    hashes = {item["id"]: item_hash(bundle, item) for item in items}
    cache = _from_results(csv_path, embedding, hashes) if csv_path.is_file() else {}
    for i, e in _from_work(work_path, embedding, hashes).items():
        cache.setdefault(i, e)
    todo = [item for item in items if item["id"] not in cache]
    reused = len(items) - len(todo)
    t0 = time.perf_counter()
    if todo:
        embedder = make_embedder()
        with tqdm(total=len(items), initial=reused, desc=f"observe ({network})", unit="item", disable=not progress) as bar:
            for start in range(0, len(todo), batch_items):
                chunk = todo[start:start + batch_items]
                for i, entry in item_similarities(embedder, bundle, chunk).items():
                    cache[i] = {**entry, "hash": hashes[i]}
                write_json_atomic(work_path, {"embedding": embedding,
                                              "items": {i: {**e, "hash": hashes[i]} for i, e in cache.items()}})
                bar.update(len(chunk))
    seconds = time.perf_counter() - t0
    rows = task_rows(items, cache, network, margin, flags)
    meta = {
        "embedding": embedding, "margin": margin, "flags": flags,
        "bundle": str(bundle), "items": len(items), "item_hashes": hashes,
        "written_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "embedded_items": len(todo), "embedding_seconds": round(seconds, 2),
    }
    write_results(bundle, name, rows, meta)
    work_path.unlink(missing_ok=True)
    try:
        work_path.parent.rmdir()
    except OSError:
        pass  # other runs' caches are still there
    return {"csv": csv_path, "tasks": len(rows), "embedded_items": len(todo), "reused_items": reused,
            "seconds": seconds, "summary": condition_summary(rows)}
