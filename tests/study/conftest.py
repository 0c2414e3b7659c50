"""Fixtures of the study tests."""
from __future__ import annotations

from pathlib import Path

import pytest

from study.browser import launch_chromium
from study.examples import make_bundle


@pytest.fixture(scope="session")
def study_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 12-item bundle of real ImageNet photos, shared by the whole session (read-only)."""
    return make_bundle(tmp_path_factory.mktemp("study-bundle"), n_items=12)


@pytest.fixture(scope="module")
def browser():
    """Debian's headless chromium through Playwright, one per test module."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = launch_chromium(p)
        yield b
        b.close()
