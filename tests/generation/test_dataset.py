"""Datasets: both layouts, bad folders and labels, and robust image loading through the real model."""
from __future__ import annotations

import csv
import functools
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from generation.candidates import Predictions, misclassified, predict
from generation.classifier import load_classifier
from generation.config import ModelSettings
from generation.dataset import DatasetError, ImageLoadError, load_dataset, load_rgb
from tests.generation.helpers import LABELS, SAMPLE

pytestmark = pytest.mark.usefixtures("single_threaded")

TENCH, GOLDFISH_FREE = "n01440764_tench.JPEG", "n01514859_hen.JPEG"


@functools.cache
def lite0():
    return load_classifier(ModelSettings(), "cpu")


def _labels_csv(path: Path, rows: list[tuple[str, int]]) -> Path:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["file", "class_index", "wnid", "name"])
        for f, c in rows:
            w.writerow([f, c, "n0", f"name{c}"])
    return path


def test_labels_csv_layout_lists_the_sample() -> None:
    ds = load_dataset(SAMPLE, LABELS)
    assert ds.layout == "labels" and len(ds.samples) == 500
    tench = next(s for s in ds.samples if s.source == TENCH)
    assert tench.class_index == 0 and tench.path == SAMPLE / TENCH and ds.names[0] == "tench"
    subset = load_dataset(SAMPLE, LABELS, files=[TENCH, GOLDFISH_FREE])
    assert [s.source for s in subset.samples] == [TENCH, GOLDFISH_FREE]
    assert len(load_dataset(SAMPLE, LABELS, limit=7).samples) == 7


def test_imagenet_val_layout_indexes_sorted_wnids(tmp_path: Path) -> None:
    for wnid, src in (("n02", GOLDFISH_FREE), ("n01", TENCH)):
        (tmp_path / wnid).mkdir()
        (tmp_path / wnid / "ILSVRC2012_val_1.JPEG").write_bytes((SAMPLE / src).read_bytes())
    (tmp_path / "n01" / "notes.txt").write_text("not an image")
    ds = load_dataset(tmp_path)
    assert ds.layout == "imagenet" and ds.n_class_folders == 2
    assert [(s.source, s.class_index) for s in ds.samples] == [("n01/ILSVRC2012_val_1.JPEG", 0),
                                                               ("n02/ILSVRC2012_val_1.JPEG", 1)]
    wnids = tmp_path / "wnids.txt"
    wnids.write_text("n00\nn01\nn015\nn02\n")
    assert [s.class_index for s in load_dataset(tmp_path, wnids=wnids).samples] == [1, 3]
    wnids.write_text("n01\n")
    with pytest.raises(DatasetError, match="class folder 'n02' .* is not in the wnids file"):
        load_dataset(tmp_path, wnids=wnids)


def test_bad_datasets_stop_with_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="dataset folder not found"):
        load_dataset(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no images in"):
        load_dataset(tmp_path / "empty")
    with pytest.raises(DatasetError, match="no images in"):
        load_dataset(tmp_path / "empty", _labels_csv(tmp_path / "l.csv", []))
    with pytest.raises(DatasetError, match="labels file not found"):
        load_dataset(SAMPLE, tmp_path / "missing.csv")
    (tmp_path / "bad.csv").write_text("filename,label\nx.jpg,1\n")
    with pytest.raises(DatasetError, match="needs the columns file,class_index"):
        load_dataset(SAMPLE, tmp_path / "bad.csv")
    (tmp_path / "bad2.csv").write_text("file,class_index\nx.jpg,tench\n")
    with pytest.raises(DatasetError, match=r"bad2.csv:2: class_index 'tench' is not an integer"):
        load_dataset(SAMPLE, tmp_path / "bad2.csv")
    with pytest.raises(DatasetError, match="'nope.JPEG' is not an image of the dataset"):
        load_dataset(SAMPLE, LABELS, files=["nope.JPEG"])


@pytest.fixture(scope="module")
def odd_images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real sample images saved as corrupt, grayscale, CMYK, RGBA, palette and tiny files."""
    root = tmp_path_factory.mktemp("odd")
    real = Image.open(SAMPLE / TENCH).convert("RGB")
    real.save(root / "normal.jpg")
    data = (SAMPLE / TENCH).read_bytes()
    (root / "truncated.jpg").write_bytes(data[: len(data) // 3])
    (root / "garbage.jpg").write_bytes(b"this is not a jpeg at all" * 10)
    real.convert("L").save(root / "gray.jpg")
    real.convert("CMYK").save(root / "cmyk.jpg")
    rgba = real.convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize(real.size))
    rgba.save(root / "rgba.png")
    real.convert("P").save(root / "palette.png")
    real.resize((20, 14)).save(root / "tiny.png")
    files = ["normal.jpg", "truncated.jpg", "garbage.jpg", "gray.jpg", "cmyk.jpg", "rgba.png", "palette.png",
             "tiny.png", "missing.jpg"]
    _labels_csv(root / "labels.csv", [(f, 0) for f in files])
    return root


def test_load_rgb_converts_modes_and_reports_why_it_fails(odd_images: Path) -> None:
    for name, mode in (("gray.jpg", "L"), ("cmyk.jpg", "CMYK"), ("rgba.png", "RGBA"), ("palette.png", "P")):
        im, notes = load_rgb(odd_images / name, 224)
        assert im.mode == "RGB" and notes == [f"converted from {mode} to RGB"]
    rgba, _ = load_rgb(odd_images / "rgba.png")
    # fully transparent pixels (alpha 0 at the top) are composited on white, opaque ones keep their color
    top, bottom = np.asarray(rgba)[0], np.asarray(rgba)[-1]
    assert top.min() >= 250 and np.abs(bottom.astype(int) - np.asarray(Image.open(odd_images / "normal.jpg"))[-1]).mean() < 12
    _, notes = load_rgb(odd_images / "tiny.png", 224)
    assert notes == ["upscaled from 20x14 (smaller than the 224 px model input)"]
    with pytest.raises(ImageLoadError, match="unreadable image"):
        load_rgb(odd_images / "truncated.jpg")
    with pytest.raises(ImageLoadError, match="unreadable image .*UnidentifiedImageError"):
        load_rgb(odd_images / "garbage.jpg")
    with pytest.raises(ImageLoadError, match="file not found"):
        load_rgb(odd_images / "missing.jpg")


def test_prediction_skips_bad_images_with_reasons_and_resumes(odd_images: Path, tmp_path: Path) -> None:
    clf = lite0()
    ds = load_dataset(odd_images, odd_images / "labels.csv")
    checkpoint = tmp_path / "predictions.json"
    preds = predict(clf, ds.samples, batch_size=4, checkpoint=checkpoint, progress=False)
    assert set(preds.skipped) == {"truncated.jpg", "garbage.jpg", "missing.jpg"}
    assert "file not found" in preds.skipped["missing.jpg"]
    assert set(preds.predicted) == {"normal.jpg", "gray.jpg", "cmyk.jpg", "rgba.png", "palette.png", "tiny.png"}
    assert preds.notes["tiny.png"] == ["upscaled from 20x14 (smaller than the 224 px model input)"]
    assert preds.notes["cmyk.jpg"] == ["converted from CMYK to RGB"]
    # the tench is recognised in color, in gray and after the CMYK round trip
    assert preds.predicted["normal.jpg"] == 0 and preds.predicted["gray.jpg"] == 0 and preds.predicted["cmyk.jpg"] == 0
    saved = Predictions.load(checkpoint)
    assert saved == preds
    # a resumed prediction reads the checkpoint and runs the model on nothing
    calls = []
    handle = clf.model.register_forward_hook(lambda *a: calls.append(1))
    try:
        again = predict(clf, ds.samples, batch_size=4, checkpoint=checkpoint, progress=False)
    finally:
        handle.remove()
    assert again == preds and calls == []


def test_misclassified_candidates_in_seeded_order() -> None:
    ds = load_dataset(SAMPLE, LABELS, limit=40)
    preds = Predictions(predicted={s.source: (s.class_index + (i % 3 == 0)) for i, s in enumerate(ds.samples)})
    a = misclassified(ds.samples, preds, seed=0)
    assert {s.source for s, _ in a} == {s.source for i, s in enumerate(ds.samples) if i % 3 == 0}
    assert all(p == s.class_index + 1 for s, p in a)
    assert [s.source for s, _ in a] == [s.source for s, _ in misclassified(list(reversed(ds.samples)), preds, seed=0)]
    assert [s.source for s, _ in a] != [s.source for s, _ in misclassified(ds.samples, preds, seed=1)]
