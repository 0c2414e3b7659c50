"""Split a classifier into a frozen prefix and a trainable suffix, so fine-tuning the last blocks can
reuse the prefix's features (computed once) instead of running the whole network every step.

Known families: EfficientNet-Lite (efficientnet_lite_pytorch), torchvision ResNets and nn.Sequential.
Other models are not split: the prefix is the identity and the parameters before `trainable_from`
(in `named_modules` order) are frozen instead.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from saliency.errors import SaliencyError

Stage = tuple[str, Callable[[torch.Tensor], torch.Tensor], list[nn.Module]]


def _efficientnet(m: nn.Module) -> list[Stage]:
    stages: list[Stage] = [("_conv_stem", lambda x: m._swish(m._bn0(m._conv_stem(x))), [m._conv_stem, m._bn0])]
    for i, block in enumerate(m._blocks):
        stages.append((f"_blocks.{i}", block, [block]))  # drop-connect is off in eval mode
    stages.append(("_conv_head", lambda x: m._swish(m._bn1(m._conv_head(x))), [m._conv_head, m._bn1]))
    stages.append(("_fc", lambda x: m._fc(m._dropout(torch.flatten(m._avg_pooling(x), 1))), [m._fc]))
    return stages


def _resnet(m: nn.Module) -> list[Stage]:
    stages: list[Stage] = [("conv1", lambda x: m.maxpool(m.relu(m.bn1(m.conv1(x)))), [m.conv1, m.bn1])]
    for layer in ("layer1", "layer2", "layer3", "layer4"):
        for i, block in enumerate(getattr(m, layer)):
            stages.append((f"{layer}.{i}", block, [block]))
    stages.append(("fc", lambda x: m.fc(torch.flatten(m.avgpool(x), 1)), [m.fc]))
    return stages


def stages(model: nn.Module) -> list[Stage] | None:
    """The model as a sequence of (name, function, modules) stages, or None for an unknown family."""
    if all(hasattr(model, a) for a in ("_conv_stem", "_blocks", "_conv_head", "_fc")):
        return _efficientnet(model)
    if all(hasattr(model, a) for a in ("conv1", "layer4", "fc", "avgpool")):
        return _resnet(model)
    if isinstance(model, nn.Sequential):
        return [(name, child, [child]) for name, child in model.named_children()]
    return None


@dataclass
class Split:
    """prefix(x) -> features (frozen, run under no_grad); suffix(features) -> logits (trained)."""

    prefix: Callable[[torch.Tensor], torch.Tensor]
    suffix: Callable[[torch.Tensor], torch.Tensor]
    trainable: list[nn.Parameter]
    cacheable: bool   # the prefix is a real part of the network (its output can be cached)


def split(model: nn.Module, trainable_from: str) -> Split:
    """Freeze everything before the stage (or module) `trainable_from`; return the split."""
    seq = stages(model)
    for p in model.parameters():
        p.requires_grad_(False)
    if seq is not None:
        names = [s[0] for s in seq]
        if trainable_from not in names:
            raise SaliencyError(f"trainable_from {trainable_from!r} is not a stage of this model "
                                f"(stages: {', '.join(names[:3])}, ..., {', '.join(names[-3:])})")
        k = names.index(trainable_from)
        pre, post = seq[:k], seq[k:]
        params = [p for _, _, mods in post for mod in mods for p in mod.parameters()]

        def prefix(x: torch.Tensor) -> torch.Tensor:
            for _, f, _ in pre:
                x = f(x)
            return x

        def suffix(x: torch.Tensor) -> torch.Tensor:
            for _, f, _ in post:
                x = f(x)
            return x

        cacheable = True
    else:
        names = [n for n, _ in model.named_modules() if n]
        if trainable_from not in names:
            raise SaliencyError(f"trainable_from {trainable_from!r} is not a module of this model")
        after = names[names.index(trainable_from):]
        modules = dict(model.named_modules())
        seen: set[int] = set()
        params = []
        for n in after:
            for p in modules[n].parameters(recurse=False):
                if id(p) not in seen:
                    seen.add(id(p))
                    params.append(p)
        prefix, suffix, cacheable = (lambda x: x), model, False
    for p in params:
        p.requires_grad_(True)
    return Split(prefix, suffix, params, cacheable)
