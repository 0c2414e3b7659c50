"""`spade-study generate` on bad input: one line `error: ...` naming the problem, exit code 2, nothing lost."""
from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from generation.cli import main
from contracts.manifest import load_manifest
from tests.generation.helpers import SAMPLE, small_config, write_toml

pytestmark = pytest.mark.usefixtures("single_threaded")

TENCH, HEN = "n01440764_tench.JPEG", "n01514859_hen.JPEG"


def _run(capsys: pytest.CaptureFixture, argv: list[str]) -> tuple[int, str]:
    code = main(argv)
    err = capsys.readouterr().err
    return code, err


def _error_line(err: str) -> str:
    lines = [l for l in err.splitlines() if l.startswith("error: ")]
    assert len(lines) == 1, err
    return lines[0]


def _config(tmp_path: Path, **overrides) -> Path:
    return write_toml(tmp_path / "study.toml", small_config(**overrides))


def _labels(path: Path, rows: list[tuple[str, int]]) -> Path:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["file", "class_index"])
        w.writerows(rows)
    return path


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"scorecam": {"threshhold": 0.5}}, "unknown key 'threshhold' in [scorecam]"),
        ({"model": {"name": "resnet5O"}}, "unknown model 'resnet5O'"),
        ({"model": {"weights": "/nonexistent/resnet50.pth"}}, "weights file not found: /nonexistent/resnet50.pth"),
        ({"visualization": {"method": "deep_dream"}}, "unknown visualization method 'deep_dream'"),
        ({"scorecam": {"layer": "layer4"}}, "[scorecam] layer 'layer4' is not a module of the model"),
    ],
)
def test_bad_settings_stop_with_one_line(capsys, tmp_path: Path, overrides: dict, expected: str) -> None:
    code, err = _run(capsys, [str(_config(tmp_path, **overrides)), "--out", str(tmp_path / "b"), "--quiet"])
    assert code == 2
    assert expected in _error_line(err)
    assert not (tmp_path / "b").exists()  # nothing written before every input is checked


def test_empty_dataset_folder(capsys, tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    cfg = _config(tmp_path, data={"root": str(tmp_path / "images"), "labels": None, "files": None})
    code, err = _run(capsys, [str(cfg), "--out", str(tmp_path / "b"), "--quiet"])
    assert code == 2 and f"no images in {tmp_path / 'images'}" in _error_line(err)


def test_label_outside_the_models_classes(capsys, tmp_path: Path) -> None:
    labels = _labels(tmp_path / "labels.csv", [(TENCH, 0), (HEN, 1000)])
    cfg = _config(tmp_path, data={"labels": str(labels), "files": None})
    code, err = _run(capsys, [str(cfg), "--out", str(tmp_path / "b"), "--quiet"])
    assert code == 2
    assert f"label 1000 of {HEN} is outside the model's 1000 classes (0..999)" in _error_line(err)


def test_imagenet_layout_with_a_few_class_folders_needs_the_wnid_list(capsys, tmp_path: Path) -> None:
    (tmp_path / "val" / "n01440764").mkdir(parents=True)
    shutil.copy(SAMPLE / TENCH, tmp_path / "val" / "n01440764" / "a.JPEG")
    cfg = _config(tmp_path, data={"root": str(tmp_path / "val"), "labels": None, "files": None})
    code, err = _run(capsys, [str(cfg), "--out", str(tmp_path / "b"), "--quiet"])
    assert code == 2 and "has 1 class folders but the model has 1000 classes" in _error_line(err)


def test_out_must_be_new_empty_or_a_bundle_in_progress(capsys, tmp_path: Path) -> None:
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "thesis.tex").write_text("precious")
    code, err = _run(capsys, [str(_config(tmp_path)), "--out", str(tmp_path / "home"), "--quiet"])
    assert code == 2 and "is a folder with other files and no study in progress" in _error_line(err)
    assert sorted(p.name for p in (tmp_path / "home").iterdir()) == ["thesis.tex"]
    (tmp_path / "file").write_text("x")
    code, err = _run(capsys, [str(_config(tmp_path)), "--out", str(tmp_path / "file"), "--quiet"])
    assert code == 2 and "is a file, not a folder" in _error_line(err)


def test_bad_shard_and_bad_merge_arguments(capsys, tmp_path: Path) -> None:
    code, err = _run(capsys, [str(_config(tmp_path)), "--out", str(tmp_path / "b"), "--shard", "2/2"])
    assert code == 2 and "--shard '2/2': needs 0 <= I < N" in _error_line(err)
    code, err = _run(capsys, ["merge", str(tmp_path / "nope"), "--out", str(tmp_path / "m")])
    assert code == 2 and "no manifest.json in this folder" in _error_line(err)
    code, err = _run(capsys, [str(tmp_path / "missing.toml"), "--out", str(tmp_path / "b")])
    assert code == 2 and "config file not found" in _error_line(err)


def test_unreadable_images_are_skipped_with_their_reason_and_odd_ones_converted(capsys, tmp_path: Path) -> None:
    """A whole run over a folder with a corrupt, a grayscale and a tiny image: the run goes on and says why."""
    root = tmp_path / "images"
    root.mkdir()
    (root / "corrupt.jpg").write_bytes((SAMPLE / TENCH).read_bytes()[:2000])
    Image.open(SAMPLE / TENCH).convert("L").save(root / "gray.jpg")
    Image.open(SAMPLE / TENCH).resize((64, 48)).save(root / "tiny.png")
    labels = _labels(root / "labels.csv", [("corrupt.jpg", 0), ("gray.jpg", 0), ("tiny.png", 0)])
    cfg = _config(tmp_path, data={"root": str(root), "labels": str(labels), "files": None})
    code, err = _run(capsys, [str(cfg), "--out", str(tmp_path / "b")])
    assert code == 0, err
    assert "skipped corrupt.jpg: unreadable image" in err
    manifest = load_manifest(tmp_path / "b")
    cands = manifest["study"]["candidates"]
    assert [u["source"] for u in cands["unreadable"]] == ["corrupt.jpg"]
    assert "unreadable image (OSError" in cands["unreadable"][0]["reason"]
    notes = {c["source"]: c["notes"] for c in cands["converted"]}
    assert notes == {"gray.jpg": ["converted from L to RGB"],
                     "tiny.png": ["upscaled from 64x48 (smaller than the 224 px model input)"]}
    assert cands["predicted"] == 2
    assert "skipped corrupt.jpg: unreadable image" in (tmp_path / "b" / "generation.log").read_text()
    # nothing misclassified here (a gray and a tiny tench are still tenches), so no items
    assert cands["misclassified"] == 0 and manifest["items"] == []
    assert json.loads((tmp_path / "b" / ".work" / "predictions.json").read_text())["predicted"] == {"gray.jpg": 0, "tiny.png": 0}
