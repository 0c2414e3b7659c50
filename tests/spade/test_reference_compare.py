"""bench/reference_compare.py's loader, on a stand-in checkout (the real reference has no license: never copied here)."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]


def _module():
    spec = importlib.util.spec_from_file_location("reference_compare", ROOT / "bench" / "reference_compare.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _fake_checkout(root: Path) -> Path:
    """A checkout with the reference's layout: notebook cells that call .cuda(), src/sparseGPT.py."""
    (root / "src").mkdir(parents=True)
    (root / "src" / "sparseGPT.py").write_text("import transformers\nclass SparseGPT:\n    pass\n")
    cells = [
        "class SingleImageDataset(Dataset):\n    def __init__(self, sample, nsample, normalize=False):\n"
        "        self.n = nsample\n",
        "def FOBC_core(train_data, modelp, layer_filter, sparsity_function, percdamp=0.01):\n"
        "    x = torch.ones(2, 3).cuda()\n    modelp.weight.data = modelp.weight.data.cuda() * 0\n"
        "    return modelp\n",
    ]
    nb = {"cells": [{"cell_type": "code", "source": [c]} for c in cells] + [{"cell_type": "markdown", "source": ["x"]}]}
    (root / "sample_notebook.ipynb").write_text(json.dumps(nb))
    return root


def test_fobc_core_is_loaded_from_the_notebook_with_cuda_calls_removed(tmp_path: Path) -> None:
    rc = _module()
    fobc_core, dataset_cls = rc.load_fobc_core(_fake_checkout(tmp_path / "SPADE"))
    layer = torch.nn.Linear(3, 2)
    assert fobc_core(dataset_cls(None, 4), layer, None, None) is layer  # ran on the CPU
    assert torch.count_nonzero(layer.weight) == 0


def test_a_folder_that_is_not_the_reference_is_a_one_line_error(tmp_path: Path, capsys) -> None:
    rc = _module()
    assert rc.main(["--reference", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "not a checkout of IST-DASLab/SPADE" in err and err.count("\n") == 1
