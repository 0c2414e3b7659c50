"""Helpers of the observer tests: hand-made stimuli, responses for a bundle, results rows."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from PIL import Image

from contracts.manifest import CONDITIONS, TARGETS, write_manifest
from contracts.responses import COLUMNS as RESPONSE_COLUMNS


def manifest(bundle: Path) -> dict:
    """The bundle's manifest as a dict."""
    return json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))


def region_crop(bundle: Path, item: dict, target: str) -> Image.Image:
    """The crop of one target's region, cut from the item's photo."""
    with Image.open(bundle / item["image"]) as im:
        return im.convert("RGB").crop(tuple(item["regions"][target]))


def show_region_as_visualization(bundle: Path, item: dict, condition: str, target: str, region: str) -> None:
    """Overwrite one visualization file with the crop of `region` (the hand-made stimulus)."""
    region_crop(bundle, item, region).save(bundle / item["visualizations"][condition][target], format="PNG")


def add_crop_files(bundle: Path) -> None:
    """Give every item `crops` files (as `generate` writes them) and list them in the manifest."""
    m = manifest(bundle)
    for item in m["items"]:
        item["crops"] = {}
        for t in TARGETS:
            rel = f"vis/{item['id']}_crop_{t}.png"
            region_crop(bundle, item, t).save(bundle / rel, format="PNG")
            item["crops"][t] = rel
    write_manifest(bundle, m)


def responses_for(bundle: Path, raters: int = 4) -> pd.DataFrame:
    """Responses (text, as the CSV holds them) to every main task of a bundle: rater k rates task k of each item.

    Choices cycle through target region, other region and can't decide; letters alternate.
    """
    rows = []
    pairs = [(c, t) for c in CONDITIONS for t in TARGETS]
    for i, item in enumerate(manifest(bundle)["items"]):
        for k, (c, t) in enumerate(pairs[:raters]):
            correct = "AB"[(i + k) % 2]
            outcome = (i + k) % 3
            choice = correct if outcome == 0 else ("B" if correct == "A" else "A") if outcome == 1 else "undecided"
            rows.append({"rater_id": f"r{k}", "task_id": f"{item['id']}/{c}/{t}", "item_id": item["id"],
                         "condition": c, "target": t, "choice": choice, "correct": correct, "is_catch": "0",
                         "shown_at": "2026-11-30T10:00:00Z", "answered_at": "2026-11-30T10:00:05Z",
                         "response_ms": "5000"})
    return pd.DataFrame(rows, columns=list(RESPONSE_COLUMNS))


def result_row(item: str, condition: str, target: str, choice: str, score: float = 0.05, flag: str = "") -> dict:
    """One hand-written observer results row."""
    return {"task_id": f"{item}/{condition}/{target}", "item_id": item, "condition": condition, "target": target,
            "choice": choice, "score": score, "margin": 0.02, "network": "hand", "sim_target": 0.3,
            "sim_other": 0.3 - score, "sim_regions": 0.5, "flag": flag}
