"""`spade-study observe`: bad input gets one `error:` line and exit code 2, and nothing is written."""
from __future__ import annotations

from pathlib import Path

import pytest

from contracts.observer import results_dir
from spade_study.cli import main as spade_study


@pytest.mark.parametrize("args, message", [
    (["{missing}"], "no manifest.json"),
    (["{bundle}", "--margin", "-1"], "argument --margin: must lie in [0.0, 2.0]"),
    (["{bundle}", "--name", "../x"], "results name '../x'"),
    (["{bundle}", "--weights", "{missing}"], "--weights"),
    # Imports torch and torchvision's model list: seconds.
    pytest.param(["{bundle}", "--network", "not_a_network", "--quiet"], "unknown model 'not_a_network'",
                 marks=pytest.mark.slow),
])
def test_bad_input_is_one_error_line(bundle_copy: Path, tmp_path: Path, capsys, args: list[str], message: str) -> None:
    argv = ["observe"] + [a.format(bundle=bundle_copy, missing=tmp_path / "nothing") for a in args]
    assert spade_study(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err and message in err, err
    assert not list(bundle_copy.glob("observer/*.csv"))  # nothing written


@pytest.mark.slow
def test_an_unknown_layer_is_one_error_line(bundle_copy: Path, capsys, one_torch_thread) -> None:
    assert spade_study(["observe", str(bundle_copy), "--layer", "no.such.layer", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "no module 'no.such.layer'" in err and "\n" not in err
    assert not list(bundle_copy.glob("observer/*.csv"))


@pytest.mark.slow
def test_a_named_layer_embeds_and_names_its_results(bundle_copy: Path, capsys, one_torch_thread) -> None:
    assert spade_study(["observe", str(bundle_copy), "--layer", "_blocks.15", "--margin", "0.05", "--quiet"]) == 0
    csv_path = results_dir(bundle_copy) / "efficientnet_lite0-_blocks.15.csv"
    assert csv_path.is_file()
    assert "efficientnet_lite0:_blocks.15" in csv_path.read_text().splitlines()[1]
    assert "wrote" in capsys.readouterr().out
