"""BatchNorm recalibration of a pruned model on generic images (the paper's 96.5% top-1 agreement is measured after it).

Pruning shifts the statistics of every layer's output, so the BatchNorm running means and variances
of the dense model no longer fit the pruned one. Recalibration re-estimates them on images that are
*not* the traced image's augmentations: on those, even the dense model's top-1 would change.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import torch
from torch import nn

from .preprocess import ImageLike, Preprocess


def recalibrate_batchnorm(model: nn.Module, batches: Iterable[torch.Tensor]) -> nn.Module:
    """A copy of `model` (in eval mode) whose BatchNorm running statistics are re-estimated on `batches`.

    Written out instead of `torch.optim.swa_utils.update_bn`, which puts the whole model in training
    mode: EfficientNet's drop-connect and dropout would then perturb the statistics being measured.
    Here only the BatchNorm layers run in training mode, with a cumulative average (momentum None).
    """
    model = copy.deepcopy(model).eval()
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return model
    device = next(model.parameters()).device
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
        m.train()
    seen = 0
    with torch.no_grad():
        for batch in batches:
            model(batch.to(device))
            seen += batch.shape[0]
    if seen == 0:
        raise ValueError("no calibration images: BatchNorm statistics cannot be re-estimated")
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
        m.eval()
    return model


def image_batches(images: Sequence[ImageLike], preprocess: Preprocess, batch_size: int = 32) -> Iterator[torch.Tensor]:
    """The images as the model sees them (resize, center crop, normalize), in batches."""
    for start in range(0, len(images), batch_size):
        yield torch.cat([preprocess(image) for image in images[start:start + batch_size]])


def calibration_set(images: Sequence[ImageLike], preprocess: Preprocess, exclude: Iterable[ImageLike] = ()) -> torch.Tensor:
    """Model inputs of `images` except those in `exclude` (compared as paths): one N x C x H x W tensor."""
    skip = {Path(p).resolve() for p in exclude if isinstance(p, (str, Path))}
    chosen = [p for p in images if not (isinstance(p, (str, Path)) and Path(p).resolve() in skip)]
    if not chosen:
        raise ValueError("no calibration images left after excluding the traced ones")
    return torch.cat(list(image_batches(chosen, preprocess)))
