"""Fixtures of the generation tests."""
from __future__ import annotations

from typing import Iterator

import pytest

from tests.generation.helpers import one_thread


@pytest.fixture(scope="module")
def single_threaded() -> Iterator[None]:
    """Module fixture: one torch thread for a test module that runs the real model (see `one_thread`)."""
    with one_thread():
        yield
