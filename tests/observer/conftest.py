"""Fixtures of the observer tests: a small torch-free bundle and the real EfficientNet-Lite0 embedder."""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Iterator

import pytest

from study.examples import make_bundle


@pytest.fixture(scope="session")
def small_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-item bundle of real ImageNet photos (no crop files: the observer cuts them), read-only."""
    return make_bundle(tmp_path_factory.mktemp("observer-bundle"), n_items=2)


@pytest.fixture
def bundle_copy(small_bundle: Path, tmp_path: Path) -> Path:
    """A private copy of the small bundle, for tests that change it or write results into it."""
    return Path(shutil.copytree(small_bundle, tmp_path / "bundle"))


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """One torch thread for a test that runs the network (a shared 2-core machine; the same arithmetic every run), restored after."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="session")
def embedder() -> object:
    """The default embedder: EfficientNet-Lite0 with its real weights, penultimate layer (loaded once)."""
    from observer.embedding import Embedder

    return Embedder()
