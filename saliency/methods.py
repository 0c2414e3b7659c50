"""The saliency methods of the benchmark: a registry of small classes on one base (like pytorch-grad-cam).

The ten methods of the paper come from captum; three baselines (random, centre, edge detector) need no
model. Add a method in a few lines:

    @register
    class MyMethod(CaptumMethod):
        name = "MyMethod"
        def attribute(self, model, x, target, settings):
            return captum.attr.Saliency(model).attribute(x, target=target)

Every call runs on a deep copy of the model (captum's LRP writes attributes onto the layers, and
hooks must never leak into the caller's model). A method whose rules do not cover a layer type of the
model is reported, never silently replaced: `coverage` says "unsupported" (not run) or "partial" (run,
with the reason in every output).
"""
from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from saliency.config import MethodSettings
from saliency.errors import SaliencyError

REGISTRY: dict[str, "SaliencyMethod"] = {}
PAPER_METHODS = ("Saliency", "InputXGradient", "DeepLift", "LRP", "GuidedBackprop", "GuidedGradCam", "LIME",
                 "Occlusion", "IntegratedGradients", "GradientShap")


@dataclass(frozen=True)
class Coverage:
    """Whether a method's rules cover every layer type of a model: ok, partial (runs) or unsupported."""

    status: str
    reason: str = ""


def register(cls: type["SaliencyMethod"]) -> type["SaliencyMethod"]:
    """Class decorator: add a method (an instance of it) to the registry under `cls.name`."""
    REGISTRY[cls.name] = cls()
    return cls


def get_method(name: str) -> "SaliencyMethod":
    """The registered method called `name`."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise SaliencyError(f"unknown saliency method {name!r} (known: {', '.join(REGISTRY)})") from None


def _activation_types(model: nn.Module) -> set[type]:
    """Types of the activation modules of the model (torch.nn.modules.activation)."""
    return {type(m) for m in model.modules() if type(m).__module__ == "torch.nn.modules.activation"}


def to_map(attribution: torch.Tensor, reduce: str = "abs_sum") -> np.ndarray:
    """A 1 x C x H x W attribution as an H x W map (sum over channels of |a|, or of a)."""
    a = attribution.detach().float()[0]
    a = a.abs() if reduce == "abs_sum" else a
    return a.sum(0).cpu().numpy().astype(np.float64)


class SaliencyMethod:
    """Base: `compute` gives an H x W map for one input and target class."""

    name: ClassVar[str] = ""
    kind: ClassVar[str] = "method"   # or "baseline" (ignores the model)

    def coverage(self, model: nn.Module) -> Coverage:
        """Whether this method's rules cover the model's layers."""
        return Coverage("ok")

    def attribute(self, model: nn.Module, x: torch.Tensor, target: int, settings: MethodSettings) -> torch.Tensor:
        """The 1 x C x H x W attribution of `target` for input `x` (normalized)."""
        raise NotImplementedError

    def compute(self, model: nn.Module, x: torch.Tensor, target: int, picture: torch.Tensor,
                settings: MethodSettings, seed: int = 0) -> np.ndarray:
        """The H x W saliency map; `model` is not changed (the method runs on a deep copy)."""
        work = copy.deepcopy(model).eval()
        for p in work.parameters():
            p.requires_grad_(False)  # gradients w.r.t. the input only: captum needs none for the weights
        torch.manual_seed(seed)
        x = x.clone().requires_grad_(True)
        with warnings.catch_warnings():
            # captum announces on every call that it sets (and removes) hooks: noise in the progress output
            warnings.filterwarnings("ignore", message="Setting (forward|backward)", category=UserWarning)
            return to_map(self.attribute(work, x, int(target), settings), settings.reduce)


class CaptumMethod(SaliencyMethod):
    """A method from captum.attr."""


@register
class Saliency(CaptumMethod):
    name = "Saliency"

    def attribute(self, model, x, target, settings):
        from captum.attr import Saliency as S

        return S(model).attribute(x, target=target, abs=True)


@register
class InputXGradient(CaptumMethod):
    name = "InputXGradient"

    def attribute(self, model, x, target, settings):
        from captum.attr import InputXGradient as S

        return S(model).attribute(x, target=target)


def _uncovered(model: nn.Module, supported: set[type]) -> list[str]:
    return sorted(t.__name__ for t in _activation_types(model) if t not in supported)


@register
class DeepLift(CaptumMethod):
    name = "DeepLift"

    def coverage(self, model):
        from captum.attr._core.deep_lift import SUPPORTED_NON_LINEAR

        missing = _uncovered(model, set(SUPPORTED_NON_LINEAR))
        if missing:
            return Coverage("partial", f"captum's DeepLift has no rule for {', '.join(missing)}: plain gradients "
                                       f"pass through those layers")
        return Coverage("ok")

    def attribute(self, model, x, target, settings):
        from captum.attr import DeepLift as S

        return S(model).attribute(x, target=target, baselines=torch.zeros_like(x))


@register
class LRP(CaptumMethod):
    name = "LRP"

    def coverage(self, model):
        from captum.attr._core.lrp import SUPPORTED_LAYERS_WITH_RULES, SUPPORTED_NON_LINEAR_LAYERS

        known = set(SUPPORTED_LAYERS_WITH_RULES) | set(SUPPORTED_NON_LINEAR_LAYERS)
        # captum's LRP walks the leaf modules and matches their exact type (a Conv2d subclass has no rule)
        leaves = {type(m) for m in model.modules() if not list(m.children())}
        missing = sorted(t.__name__ for t in leaves if t not in known)
        # a module with weights of its own and children is never visited, so its weights would get no rule
        hidden = sorted({type(m).__name__ for m in model.modules()
                         if list(m.children()) and any(True for _ in m.parameters(recurse=False))})
        reasons = [f"captum's LRP has no rule for {', '.join(missing)}"] if missing else []
        if hidden:
            reasons.append(f"it visits leaf modules only and would skip the weights of {', '.join(hidden)}")
        if reasons:
            return Coverage("unsupported", "; ".join(reasons))
        if any(isinstance(m, nn.ReLU) and m.inplace for m in model.modules()):
            return Coverage("unsupported", "in-place ReLU (captum's LRP needs out-of-place activations)")
        return Coverage("ok")

    def attribute(self, model, x, target, settings):
        from captum.attr import LRP as S

        return S(model).attribute(x, target=target)


def _guided_coverage(model: nn.Module, who: str) -> Coverage:
    missing = _uncovered(model, {nn.ReLU})
    if missing:
        return Coverage("partial", f"captum's {who} guides nn.ReLU only: {', '.join(missing)} layers pass plain "
                                   f"gradients")
    return Coverage("ok")


@register
class GuidedBackprop(CaptumMethod):
    name = "GuidedBackprop"

    def coverage(self, model):
        return _guided_coverage(model, "GuidedBackprop")

    def attribute(self, model, x, target, settings):
        from captum.attr import GuidedBackprop as S

        return S(model).attribute(x, target=target)


@register
class GuidedGradCam(CaptumMethod):
    name = "GuidedGradCam"

    def coverage(self, model):
        return _guided_coverage(model, "GuidedGradCam")

    def attribute(self, model, x, target, settings):
        from captum.attr import GuidedGradCam as S

        layer = dict(model.named_modules()).get(settings.gradcam_layer)
        if layer is None:
            raise SaliencyError(f"[methods] gradcam_layer {settings.gradcam_layer!r} is not a module of the model")
        return S(model, layer).attribute(x, target=target, interpolate_mode="bilinear")


def grid_mask(height: int, width: int, cell: int, device: torch.device) -> torch.Tensor:
    """Feature mask of square cells (LIME's features): 1 x 1 x H x W integer ids."""
    rows = torch.arange(height, device=device) // cell
    cols = torch.arange(width, device=device) // cell
    ids = rows[:, None] * int((width + cell - 1) // cell) + cols[None, :]
    return ids[None, None]


@register
class LIME(CaptumMethod):
    name = "LIME"

    def attribute(self, model, x, target, settings):
        from captum.attr import Lime

        mask = grid_mask(x.shape[-2], x.shape[-1], settings.lime_cell, x.device)
        with torch.no_grad():
            return Lime(model).attribute(x.detach(), target=target, feature_mask=mask, baselines=0.0,
                                         n_samples=settings.lime_samples, perturbations_per_eval=settings.batch_size)


@register
class Occlusion(CaptumMethod):
    name = "Occlusion"

    def attribute(self, model, x, target, settings):
        from captum.attr import Occlusion as S

        w, s = settings.occlusion_window, settings.occlusion_stride
        with torch.no_grad():
            return S(model).attribute(x.detach(), target=target, sliding_window_shapes=(x.shape[1], w, w),
                                      strides=(x.shape[1], s, s), baselines=0.0,
                                      perturbations_per_eval=settings.batch_size)


@register
class IntegratedGradients(CaptumMethod):
    name = "IntegratedGradients"

    def attribute(self, model, x, target, settings):
        from captum.attr import IntegratedGradients as S

        return S(model).attribute(x, target=target, baselines=torch.zeros_like(x), n_steps=settings.ig_steps,
                                  internal_batch_size=settings.batch_size)


@register
class GradientShap(CaptumMethod):
    name = "GradientShap"

    def attribute(self, model, x, target, settings):
        from captum.attr import GradientShap as S

        baselines = torch.cat([torch.zeros_like(x), 0.1 * torch.randn_like(x)])
        return S(model).attribute(x, baselines=baselines, target=target, n_samples=settings.shap_samples,
                                  stdevs=0.09)


class Baseline(SaliencyMethod):
    """A map that does not look at the model (Casper et al.'s sanity baselines)."""

    kind = "baseline"

    def picture_map(self, picture: torch.Tensor, seed: int) -> np.ndarray:
        """The H x W map of a picture (C x H x W in [0, 1])."""
        raise NotImplementedError

    def compute(self, model, x, target, picture, settings, seed=0):
        return self.picture_map(picture, seed)


@register
class RandomMap(Baseline):
    name = "random"

    def picture_map(self, picture, seed):
        return np.random.default_rng(seed).random(tuple(picture.shape[-2:]))


@register
class CentreMap(Baseline):
    name = "centre"

    def picture_map(self, picture, seed):
        h, w = picture.shape[-2:]
        yy, xx = np.mgrid[0:h, 0:w]
        return -np.hypot(yy - (h - 1) / 2, xx - (w - 1) / 2)


@register
class EdgeMap(Baseline):
    name = "edge"

    def picture_map(self, picture, seed):
        from skimage.color import rgb2gray
        from skimage.filters import sobel

        return sobel(rgb2gray(picture.permute(1, 2, 0).cpu().numpy())).astype(np.float64)


def method_names(settings: MethodSettings) -> list[str]:
    """The configured methods (default: the paper's ten), checked against the registry."""
    names = list(settings.names) if settings.names is not None else list(PAPER_METHODS)
    for n in names + list(settings.baselines):
        get_method(n)
    return names


def coverage_table(model: nn.Module, names: list[str]) -> dict[str, dict[str, Any]]:
    """name -> {status, reason} for the model."""
    return {n: {"status": (c := get_method(n).coverage(model)).status, "reason": c.reason} for n in names}
