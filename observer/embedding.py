"""Embed pictures with a chosen network: L2-normalized features, so that a dot product is a cosine similarity.

The network comes from `spade.models.load_model` (EfficientNet-Lite0..4 from their offline weight
packages, a torchvision classifier from a local weights file or the torch hub cache, `timm:NAME`).
The default is EfficientNet-Lite0's penultimate features (the input of its last Linear layer),
which runs offline; `layer` picks another module's output instead, averaged over space.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from PIL import Image
from torchvision.transforms.v2 import functional as TF

from observer.networks import DEFAULT_NETWORK, PENULTIMATE, EmbeddingError, embedding_key, network_label

__all__ = ["Embedder", "EmbeddingError"]


class Embedder:
    """A network and a layer that turn pictures into unit-length feature vectors."""

    def __init__(self, network: str = DEFAULT_NETWORK, weights: str | None = None, layer: str | None = None,
                 device: str | None = None) -> None:
        from spade.models import UnknownModelError, load_model

        try:
            self.model, self.preprocess = load_model(network, weights, device)
        except (UnknownModelError, FileNotFoundError, ValueError) as exc:
            raise EmbeddingError(str(exc)) from None
        self.network, self.weights = network, weights
        self.layer = layer or PENULTIMATE
        self.device = next(self.model.parameters()).device
        if self.layer == PENULTIMATE:
            linears = [m for m in self.model.modules() if isinstance(m, torch.nn.Linear)]
            if not linears:
                raise EmbeddingError(f"{network} has no Linear layer: pass --layer with one of its module names")
            self._module, self._pre = linears[-1], True
        else:
            modules = dict(self.model.named_modules())
            if self.layer not in modules:
                some = ", ".join(n for n in list(modules)[1:6])
                raise EmbeddingError(f"{network} has no module {self.layer!r} (its modules are named like {some}, ...)")
            self._module, self._pre = modules[self.layer], False

    @property
    def label(self) -> str:
        """The network column of the results (see `network_label`)."""
        return network_label(self.network, self.layer)

    def describe(self) -> dict[str, Any]:
        """What identifies these embeddings (see `embedding_key`)."""
        return embedding_key(self.network, self.weights, self.layer)

    def _batch(self, images: list[Image.Image]) -> torch.Tensor:
        # Raters see each crop and visualization whole: resize to the input size, no center crop.
        size = [self.preprocess.size, self.preprocess.size]
        tensors = [TF.resize(TF.to_dtype(TF.to_image(im.convert("RGB")), torch.float32, scale=True), size,
                             antialias=True).clamp_(0.0, 1.0) for im in images]
        return self.preprocess.normalize(torch.stack(tensors)).to(self.device)

    def embed(self, images: list[Image.Image]) -> np.ndarray:
        """Return an (n, d) float64 array of unit-length features, one row per picture."""
        grabbed: list[torch.Tensor] = []
        if self._pre:
            hook = self._module.register_forward_pre_hook(lambda _m, inp: grabbed.append(inp[0].detach()))
        else:
            hook = self._module.register_forward_hook(lambda _m, _inp, out: grabbed.append(out.detach()))
        try:
            with torch.no_grad():
                self.model(self._batch(images))
        finally:
            hook.remove()
        feats = grabbed[0]
        if feats.dim() == 4:  # a convolutional layer: average over space
            feats = feats.mean(dim=(2, 3))
        feats = feats.flatten(1).double().cpu().numpy()
        return feats / np.linalg.norm(feats, axis=1, keepdims=True).clip(1e-12)
