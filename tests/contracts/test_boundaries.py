"""Dependencies flow one way: `study`, `analysis` and `contracts` never import torch, `spade` or `generation`.

Checked in a fresh interpreter per package, importing every module of it, so that a transitive
import anywhere fails the test.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# `observer` too: analysis and study read its results through contracts.observer, never its code.
FORBIDDEN = ("torch", "torchvision", "lucent", "captum", "spade", "generation", "observer")


def _modules(package: str) -> list[str]:
    return sorted(f"{package}.{p.stem}" for p in (REPO / package).glob("*.py")
                  if p.stem not in ("__init__", "app", "__main__"))


def _forbidden_after_import(modules: list[str]) -> list[str]:
    code = "\n".join(f"import {m}" for m in modules) + (
        "\nimport json, sys\nprint(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in %r)))" % (FORBIDDEN,))
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.parametrize("package", ["contracts", "study", "analysis"])
def test_package_stays_off_torch_spade_and_generation(package: str) -> None:
    modules = _modules(package)
    assert len(modules) >= 2, modules  # the glob found the package's modules
    assert _forbidden_after_import(modules) == []


@pytest.mark.slow
def test_the_probe_sees_a_forbidden_import() -> None:
    # The check above is only worth something if it can fail: importing generation is seen.
    assert "generation" in _forbidden_after_import(["generation.regions"])
