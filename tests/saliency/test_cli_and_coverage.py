"""Command-line errors (one line, exit 2) and the LRP coverage report on the real EfficientNet-Lite0."""
from __future__ import annotations

from pathlib import Path

import pytest

from spade_study.cli import main


def test_trojan_bad_config_is_one_line(tmp_path: Path, capsys) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[data]\nroot = "."\n[[triggers]]\npattern = "checker"\ntarget = 1\npoisned = 3\n')
    assert main(["trojan", str(cfg), "--out", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "poisned" in err and "poisoned" in err and "\n" not in err
    assert not (tmp_path / "m").exists()


def test_saliency_without_model_is_one_line(tmp_path: Path, capsys) -> None:
    cfg = tmp_path / "s.toml"
    cfg.write_text("[samples]\ntrojan = 3\n")
    assert main(["saliency", str(cfg), "--out", str(tmp_path / "o")]) == 2
    assert "--model" in capsys.readouterr().err
    assert main(["saliency", str(cfg), "--out", str(tmp_path / "o"), "--model", str(tmp_path)]) == 2
    assert "no trojan.json" in capsys.readouterr().err
    assert main(["saliency", str(cfg), "--out", str(tmp_path / "o"), "--model", str(tmp_path), "--shard", "3/2"]) == 2


def test_lrp_is_reported_unsupported_on_efficientnet_lite() -> None:
    import spade
    from saliency.methods import PAPER_METHODS, coverage_table

    model, _ = spade.load_model("efficientnet_lite0", weights="random")
    cov = coverage_table(model, list(PAPER_METHODS))
    assert cov["LRP"]["status"] == "unsupported"
    assert "ReLU6" in cov["LRP"]["reason"] and "Conv2dStaticSamePadding" in cov["LRP"]["reason"]
    for name in ("DeepLift", "GuidedBackprop", "GuidedGradCam"):
        assert cov[name]["status"] == "partial" and "ReLU6" in cov[name]["reason"]
    assert cov["Saliency"]["status"] == "ok"


def test_shipped_configs_validate() -> None:
    from saliency.config import load_saliency_config, load_trojan_config

    root = Path(__file__).resolve().parents[2] / "data" / "configs"
    cpu = load_trojan_config(root / "trojan-cpu.toml")
    assert cpu.model.name == "efficientnet_lite0" and 2 <= len(cpu.triggers) <= 4
    gpu = load_trojan_config(root / "trojan-resnet50-gpu.toml")
    assert gpu.model.name == "resnet50" and len(gpu.triggers) == 4
    assert load_saliency_config(root / "saliency-cpu.toml").spade.augmentations == 64
    assert load_saliency_config(root / "saliency-resnet50-gpu.toml").samples.trojan == 140
