"""Bundle layout: item ids, atomic item writes, manifest assembly."""
from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from generation.bundle import ITEM_JSON, is_finished, item_dir, item_id, item_ids, item_paths, read_item, write_item
from tests.generation.helpers import SAMPLE


def test_item_ids_are_file_system_safe_and_unique() -> None:
    assert item_id("n01440764_tench.JPEG") == "n01440764_tench"
    assert item_id("n01440764/ILSVRC2012_val_00000293.JPEG") == "n01440764__ILSVRC2012_val_00000293"
    assert item_id("odd name (1).jpg") == "odd_name_1"
    ids = item_ids(["a.JPEG", "a.png", "b.jpg", "x/y.jpg", "x__y.jpg"])
    assert len(set(ids.values())) == 5
    assert ids["b.jpg"] == "b"  # no collision, no suffix
    assert ids["a.JPEG"].startswith("a-") and ids["x/y.jpg"].startswith("x__y-")
    assert ids == item_ids(["x__y.jpg", "b.jpg", "a.png", "x/y.jpg", "a.JPEG"])  # order does not matter


class _Exploding:
    """An image whose save fails, as a full disk or a kill would interrupt the write."""

    def save(self, *args, **kwargs) -> None:
        raise OSError("No space left on device")


def test_an_interrupted_item_write_leaves_no_item(tmp_path: Path) -> None:
    photo = Image.open(SAMPLE / "n01440764_tench.JPEG").convert("RGB").resize((32, 32))
    paths = item_paths("it")
    images = {paths["image"]: photo, paths["crops"]["true"]: _Exploding()}
    with pytest.raises(OSError, match="No space left"):
        write_item(tmp_path, "it", images, {"entry": {"id": "it"}})
    assert not is_finished(tmp_path, "it") and not item_dir(tmp_path, "it").exists()
    images[paths["crops"]["true"]] = photo
    final = write_item(tmp_path, "it", images, {"entry": {"id": "it"}})
    assert final == item_dir(tmp_path, "it") and is_finished(tmp_path, "it")
    assert sorted(p.name for p in final.iterdir()) == sorted(["image.png", "crop_true.png", ITEM_JSON])
    assert read_item(tmp_path, "it") == {"entry": {"id": "it"}}
    assert not (tmp_path / ".work" / "tmp" / "it").exists()
