"""Fixtures of the saliency tests."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.saliency.helpers import (TINY_PREPROCESS, one_thread, synthetic_images, tiny_model,
                                    tiny_trojan_config)


@pytest.fixture(scope="session")
def single_threaded() -> Iterator[None]:
    """One torch thread for tests that run a model."""
    with one_thread():
        yield


@pytest.fixture(scope="session")
def tiny_trojan(tmp_path_factory: pytest.TempPathFactory, single_threaded: None) -> dict[str, Any]:
    """A TinyNet with two Trojans planted at tiny settings: its folder, manifest and images."""
    from saliency.trojan import plant

    root = tmp_path_factory.mktemp("tiny")
    images = synthetic_images(root / "images")
    out = root / "model"
    manifest = plant(tiny_trojan_config(root / "images"), out, device="cpu", progress=False,
                     model=tiny_model(), preprocess=TINY_PREPROCESS, images=images)
    return {"dir": out, "manifest": manifest, "images": images, "root": root}
