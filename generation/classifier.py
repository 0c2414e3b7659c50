"""The study's classifier: loaded through `spade.models`, with what the pipeline needs to know about it."""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import nn

import spade
from spade.models import UnknownModelError, imagenet_categories, resolve_weights_file

from generation.config import RANDOM_WEIGHTS, ModelSettings
from generation.errors import GenerationError


@dataclass
class Classifier:
    """A model in eval mode on its device, its preprocessing, and its output classes."""

    name: str
    model: nn.Module
    preprocess: spade.Preprocess
    device: torch.device
    num_classes: int
    weights_path: Path | None

    def label(self, index: int, names: dict[int, str] | None = None) -> str:
        """A class name: the dataset's own if it has one, else ImageNet's, else `class_<index>`."""
        if names and index in names:
            return names[index]
        if self.num_classes == 1000:
            return _imagenet_names()[index]
        return f"class_{index}"


_NAMES: list[str] = []


def _imagenet_names() -> list[str]:
    if not _NAMES:
        # the labels CSV of imagenet-sample spells torchvision's names with underscores
        _NAMES.extend(n.replace(" ", "_") for n in imagenet_categories())
    return _NAMES


def default_device() -> torch.device:
    """CUDA when available, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def load_classifier(settings: ModelSettings, device: str | torch.device | None = None) -> Classifier:
    """Load the configured model; raise GenerationError naming the problem (unknown name, missing weights)."""
    try:
        device = torch.device(device) if device is not None else default_device()
    except RuntimeError:
        raise GenerationError(f"unknown device {device!r} (e.g. cpu, cuda, cuda:0)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise GenerationError(f"device {device} requested but CUDA is not available here")
    if settings.weights not in (None, RANDOM_WEIGHTS) and not Path(settings.weights).is_file():
        raise GenerationError(f"weights file not found: {settings.weights}")
    try:
        model, preprocess = spade.models.load_model(settings.name, weights=settings.weights, device=device)
    except UnknownModelError as exc:
        raise GenerationError(str(exc)) from None
    except (FileNotFoundError, ValueError) as exc:  # spade's one-line errors for missing or unfit weights
        raise GenerationError(str(exc).splitlines()[0]) from None
    overrides = {k: v for k, v in (("resize", settings.resize), ("size", settings.size)) if v is not None}
    overrides.update({k: tuple(v) for k, v in (("mean", settings.mean), ("std", settings.std)) if v is not None})
    preprocess = replace(preprocess, **overrides)
    if preprocess.resize < preprocess.size:
        raise GenerationError(f"[model] resize ({preprocess.resize}) must be >= size ({preprocess.size})")
    model.eval()
    with torch.inference_mode():
        out = model(torch.zeros(1, 3, preprocess.size, preprocess.size, device=device))
    if not (isinstance(out, torch.Tensor) and out.dim() == 2):
        raise GenerationError(f"model {settings.name!r} does not output one row of class scores per image")
    return Classifier(settings.name, model, preprocess, device, int(out.shape[1]),
                      resolve_weights_file(settings.name, settings.weights))
