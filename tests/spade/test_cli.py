"""`spade-study prune`: a real run on a real image, and one-line errors with exit code 2."""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch

import spade
from spade.cli import main

from tests.spade.samples import lite0, sample_images


def _run(capsys, argv: list[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_prune_writes_a_trace_and_prints_report_and_stage_times(capsys, tmp_path) -> None:
    out_path = tmp_path / "sub" / "trace.pt"
    code, out, err = _run(capsys, ["--model", "efficientnet_lite0", "--image", str(sample_images(1)[0]),
                                   "--out", str(out_path), "--augmentations", "4", "--sparsity", "0.6",
                                   "--seed", "5", "--device", "cpu", "--quiet"])
    assert code == 0, err
    assert "_fc" in out and "rel_error" in out
    for stage in ("load", "augment", "capture", "solve", "save"):
        assert f"{stage} " in out.split("time:")[1]
    trace = spade.Trace.load(out_path)
    assert trace.settings["seed"] == 5 and trace.settings["model_name"] == "efficientnet_lite0"
    assert abs(trace.report().sparsity.mean() - 0.6) < 0.05
    model, pp = lite0()
    x = pp(sample_images(1)[0])
    with torch.inference_mode():
        assert int(trace.apply(model)(x).argmax()) == trace.pruned_top1


@pytest.mark.parametrize("argv,needle", [
    (["--model", "resnet51"], "unknown model 'resnet51'"),
    (["--model", "resnet18", "--weights", "/nonexistent/r18.pth"], "weights file not found: /nonexistent/r18.pth"),
    (["--model", "efficientnet_lite0", "--sparsity", "lots"], "bad sparsity 'lots'"),
    (["--model", "efficientnet_lite0", "--augmentations", "0"], "--augmentations must be at least 1"),
])
def test_user_errors_are_one_line_and_exit_2(capsys, tmp_path, argv, needle) -> None:
    out_path = tmp_path / "t.pt"
    code, out, err = _run(capsys, argv + ["--image", str(sample_images(1)[0]), "--out", str(out_path)])
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("error: ") and needle in err, err
    assert not out_path.exists()


def test_unreadable_or_missing_image(capsys, tmp_path) -> None:
    bad = tmp_path / "photo.jpg"
    bad.write_bytes(b"\xff\xd8 this is not a jpeg")
    for image, needle in [(bad, f"cannot read image {bad}"), (tmp_path / "none.jpg", "image not found")]:
        code, _, err = _run(capsys, ["--model", "efficientnet_lite0", "--image", str(image),
                                     "--out", str(tmp_path / "t.pt")])
        assert code == 2 and err.count("\n") == 1 and needle in err, err


def test_the_console_entry_point_dispatches_to_prune(tmp_path) -> None:
    proc = subprocess.run([sys.executable, "-m", "spade_study", "prune", "--model", "no_such_net", "--image", "x.jpg",
                           "--out", str(tmp_path / "t.pt")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: unknown model 'no_such_net' (efficientnet_lite0..4, a torchvision classifier such as resnet50, or timm:NAME)"]
