"""Shared helpers of the spade tests: the real sample images and the real pretrained EfficientNet-Lite0."""
from __future__ import annotations

import csv
import functools
from pathlib import Path

SAMPLE_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "imagenet-sample"

@functools.lru_cache(maxsize=1)
def sample_rows() -> list[dict[str, str]]:
    """Rows of labels.csv (file, class_index, wnid, name)."""
    with open(SAMPLE_DIR / "labels.csv", newline="") as f:
        return list(csv.DictReader(f))


def sample_images(n: int, step: int = 25) -> list[Path]:
    """`n` sample images spread over the classes (every `step`-th row)."""
    return [SAMPLE_DIR / r["file"] for r in sample_rows()[::step][:n]]


@functools.lru_cache(maxsize=1)
def lite0():
    """The real pretrained EfficientNet-Lite0 and its Preprocess (loaded once per test session)."""
    from spade.models import load_model

    return load_model("efficientnet_lite0")
