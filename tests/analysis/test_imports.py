"""`analysis` never imports torch nor `study`, not even transitively, and its package import stays light."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from analysis.examples import paper_responses, write_csv

REPO = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import sys, pkgutil, importlib
import analysis
light = set(sys.modules)
assert "statsmodels" not in light and "matplotlib" not in light, "analysis/__init__ pulls heavy imports"
for mod in pkgutil.iter_modules(analysis.__path__):
    importlib.import_module(f"analysis.{mod.name}")
from analysis.cli import main
assert main(["--responses", sys.argv[1], "--out", sys.argv[2], "--quiet", "--bootstrap", "50"]) == 0
bad = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "torchvision", "study", "lucent", "generation", "spade"))
print("FORBIDDEN", bad)
"""


@pytest.mark.slow
def test_analysis_imports_neither_torch_nor_study(tmp_path):
    csv = write_csv(paper_responses(), tmp_path / "r.csv")
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(csv), str(tmp_path / "out")], cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "FORBIDDEN []" in proc.stdout, proc.stdout
    assert (tmp_path / "out" / "summary.json").is_file()
