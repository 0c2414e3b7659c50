"""Stage 4: feature visualizations of class logits, through a registry of methods.

A method is a callable `(model, class_indices, settings, seed) -> list of PIL images` (one
image per class, rendered together in one batch) registered under a name; or, registered
with `batched=False`, `(model, class_index, settings, seed) -> PIL image`. Third parties
register theirs through the Python entry-point group `spade_study.visualizations` (the
entry point names a method callable; give it a `batched = True` attribute for the batched
signature). The pipeline calls every method on a deep copy of the model with frozen
weights, with the global RNGs seeded by `seed`, so dense and SPADE renders differ only by
the model.
"""
from __future__ import annotations

import copy
import random
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from PIL import Image
from torch import nn

from generation.config import VisualizationSettings
from generation.errors import GenerationError

ENTRY_POINT_GROUP = "spade_study.visualizations"


@dataclass(frozen=True)
class RenderSettings:
    """What a method needs: the [visualization] settings plus the model's input normalization and device."""

    steps: int = 512
    size: int = 224
    lr: float = 0.05
    fft: bool = True
    decorrelate: bool = True
    transforms: str = "standard"
    render_size: int | None = None
    mean: tuple[float, ...] = (0.485, 0.456, 0.406)
    std: tuple[float, ...] = (0.229, 0.224, 0.225)
    device: str = "cpu"
    options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_config(cls, vis: VisualizationSettings, mean: Sequence[float], std: Sequence[float],
                    device: torch.device | str) -> "RenderSettings":
        """Combine the config section with the model's preprocessing."""
        return cls(vis.steps, vis.size, vis.lr, vis.fft, vis.decorrelate, vis.transforms, vis.render_size,
                   tuple(mean), tuple(std), str(device), dict(vis.options))


@dataclass(frozen=True)
class Method:
    """A registered visualization method."""

    name: str
    fn: Callable[..., Any]
    batched: bool


_REGISTRY: dict[str, Method] = {}


def register(name: str, *, batched: bool = False) -> Callable[[Callable], Callable]:
    """Decorator: register a visualization method under `name`."""
    def add(fn: Callable) -> Callable:
        fn.batched = batched  # type: ignore[attr-defined]  # read back when loaded as an entry point
        _REGISTRY[name] = Method(name, fn, batched)
        return fn
    return add


def _plugins() -> dict[str, Method]:
    found = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in _REGISTRY:
            continue  # built-ins (also declared as entry points) and earlier registrations win
        try:
            fn = ep.load()
        except Exception as exc:  # a broken third-party package must name itself, not crash with a traceback
            raise GenerationError(f"visualization plugin {ep.name!r} ({ep.value}) fails to load: "
                                  f"{exc.__class__.__name__}: {exc}") from None
        found[ep.name] = Method(ep.name, fn, bool(getattr(fn, "batched", False)))
    return found


def available_methods() -> list[str]:
    """Names of the built-in, registered and installed (entry-point) methods."""
    return sorted({**_plugins(), **_REGISTRY})


def get_method(name: str) -> Method:
    """The method registered as `name`; GenerationError listing the available ones otherwise."""
    if name in _REGISTRY:
        return _REGISTRY[name]
    plugins = _plugins()
    if name in plugins:
        return plugins[name]
    raise GenerationError(f"unknown visualization method {name!r} (available: {', '.join(available_methods())})")


@contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Seed torch, numpy and random (Lucent draws its jitter from numpy) and restore their states after."""
    np_state, py_state = np.random.get_state(), random.getstate()
    with torch.random.fork_rng(devices=list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []):
        torch.manual_seed(seed)
        np.random.seed(seed % 2**32)
        random.seed(seed)
        try:
            yield
        finally:
            np.random.set_state(np_state)
            random.setstate(py_state)


def render(method: str | Method, model: nn.Module, classes: Sequence[int], settings: RenderSettings,
           seed: int) -> list[Image.Image]:
    """One visualization per class, on a frozen deep copy of `model` (methods may leave hooks on it)."""
    m = get_method(method) if isinstance(method, str) else method
    work = copy.deepcopy(model).eval()
    # only the input is optimized: weight gradients would cost time and memory for nothing
    work.requires_grad_(False)
    with _seeded(seed):
        if m.batched:
            images = list(m.fn(work, list(classes), settings, seed))
        else:
            images = [m.fn(work, int(c), settings, seed) for c in classes]
    if len(images) != len(classes) or not all(isinstance(im, Image.Image) for im in images):
        raise GenerationError(f"visualization method {m.name!r} must return one PIL image per class")
    return [im.convert("RGB") for im in images]


class _Logits(nn.Module):
    """The model with its output exposed as a module named `logits`, so Lucent objectives can name it."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.logits = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits(self.model(x))


def _check_device(device: str) -> None:
    dev = torch.device(device)
    # Lucent 0.1.8 hard-codes cuda:0 whenever CUDA exists (its color decorrelation and transforms)
    if torch.cuda.is_available() and not (dev.type == "cuda" and dev.index in (None, 0)):
        raise GenerationError(f"Lucent renders on cuda:0 when CUDA is present, not on {device}: run with --device cuda "
                              "and pick the GPU with CUDA_VISIBLE_DEVICES")


def lucent_class_logits(model: nn.Module, classes: list[int], settings: RenderSettings, seed: int, *,
                        fft: bool, decorrelate: bool) -> list[Image.Image]:
    """Render one image per class logit with Lucent (Olah et al. 2017), all classes in one batch."""
    from lucent.optvis import objectives, param, render as lucent_render, transform
    from torchvision.transforms import Normalize

    _check_device(settings.device)
    wrapped = _Logits(model).to(settings.device).eval()
    objective = objectives.Objective.sum([objectives.channel("logits", c, batch=i) for i, c in enumerate(classes)])
    normalize = Normalize(mean=list(settings.mean), std=list(settings.std))
    transforms = list(transform.standard_transforms) if settings.transforms == "standard" else []
    # Lucent's own `preprocess` normalizes with ImageNet statistics; the model may want others
    transforms.append(normalize)
    images = lucent_render.render_vis(
        wrapped, objective,
        param_f=lambda: param.image(settings.size, batch=len(classes), fft=fft, decorrelate=decorrelate),
        optimizer=lambda params: torch.optim.Adam(params, lr=settings.lr),
        transforms=transforms, thresholds=(settings.steps,), preprocess=False,
        progress=False, show_image=False, fixed_image_size=settings.render_size,
    )
    arr = np.clip(np.round(images[-1] * 255.0), 0, 255).astype(np.uint8)
    return [Image.fromarray(a) for a in arr]


@register("lucent_logit", batched=True)
def lucent_logit(model: nn.Module, classes: list[int], settings: RenderSettings, seed: int) -> list[Image.Image]:
    """The default: class-logit objective, Fourier parameterization and color decorrelation as configured."""
    return lucent_class_logits(model, classes, settings, seed, fft=settings.fft, decorrelate=settings.decorrelate)


@register("lucent_pixel", batched=True)
def lucent_pixel(model: nn.Module, classes: list[int], settings: RenderSettings, seed: int) -> list[Image.Image]:
    """The class-logit objective on a plain pixel parameterization (no FFT, no decorrelation)."""
    return lucent_class_logits(model, classes, settings, seed, fft=False, decorrelate=False)
