"""A SPADE trace: the per-layer keep-masks and compensated weights of one image, and how it was made."""
from __future__ import annotations

import copy
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from contracts.files import atomic_path

FORMAT = "spade-trace"
VERSION = 1


@dataclass
class LayerTrace:
    """One pruned layer: keep-mask (bit-packed), kept values, and the solver's numbers."""

    name: str
    shape: tuple[int, ...]
    packed_mask: torch.Tensor | None   # uint8, np.packbits of the flattened keep-mask; None: untouched
    values: torch.Tensor | None        # the kept (compensated) weights, in mask order; None: untouched
    target_sparsity: float
    rel_error: float
    damping: float | None

    @property
    def numel(self) -> int:
        """Number of weights of the layer."""
        return int(np.prod(self.shape))

    @property
    def untouched(self) -> bool:
        """True for a layer left as it is (target 0): nothing stored, nothing applied."""
        return self.packed_mask is None

    def mask(self) -> torch.Tensor:
        """The keep-mask as a bool tensor of the weight's shape."""
        bits = np.unpackbits(self.packed_mask.numpy(), count=self.numel).astype(bool)
        return torch.from_numpy(bits).reshape(self.shape)

    def weight(self) -> torch.Tensor:
        """The pruned, compensated weight (zeros where the mask is off)."""
        mask = self.mask()
        w = torch.zeros(self.shape, dtype=self.values.dtype)
        w[mask] = self.values
        return w

    @property
    def sparsity(self) -> float:
        """Achieved fraction of removed weights."""
        if self.untouched:
            return 0.0
        return 1.0 - self.values.numel() / self.numel

    @classmethod
    def untouched_layer(cls, name: str, shape: tuple[int, ...] | torch.Size) -> "LayerTrace":
        """A layer left as it is (target 0)."""
        return cls(name, tuple(shape), None, None, 0.0, 0.0, None)

    @classmethod
    def from_weight(cls, name: str, weight: torch.Tensor, keep: torch.Tensor, target: float,
                    rel_error: float, damping: float | None) -> "LayerTrace":
        """Pack a pruned weight and its keep-mask."""
        keep = keep.reshape(weight.shape).cpu()
        packed = torch.from_numpy(np.packbits(keep.flatten().numpy()))
        values = weight.detach().cpu()[keep].clone()
        return cls(name, tuple(weight.shape), packed, values, float(target), float(rel_error), damping)


@dataclass
class Trace:
    """The SPADE trace of one image: apply it to the model to get the pruned copy."""

    layers: dict[str, LayerTrace]
    settings: dict[str, Any] = field(default_factory=dict)
    dense_top1: int | None = None
    pruned_top1: int | None = None
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def keeps_top1(self) -> bool | None:
        """Whether the pruned copy predicts the dense model's top-1 class on the image (None if unknown)."""
        if self.dense_top1 is None or self.pruned_top1 is None:
            return None
        return self.dense_top1 == self.pruned_top1

    def apply(self, model: nn.Module) -> nn.Module:
        """Return a pruned deep copy of `model`; `model` itself is not changed."""
        pruned = copy.deepcopy(model)
        modules = dict(pruned.named_modules())
        for name, layer in self.layers.items():
            if layer.untouched:
                continue
            module = modules.get(name)
            if module is None or not hasattr(module, "weight"):
                raise ValueError(f"the trace's layer {name!r} is not in this model")
            if tuple(module.weight.shape) != layer.shape:
                raise ValueError(f"layer {name!r}: trace shape {layer.shape} != model shape {tuple(module.weight.shape)}")
            with torch.no_grad():
                module.weight.copy_(layer.weight().to(module.weight.dtype))
        return pruned

    def report(self) -> pd.DataFrame:
        """Per layer: layer, target_sparsity, sparsity, rel_error, damping (in execution order)."""
        rows = [{"layer": l.name, "target_sparsity": l.target_sparsity, "sparsity": l.sparsity,
                 "rel_error": l.rel_error, "damping": l.damping} for l in self.layers.values()]
        return pd.DataFrame(rows, columns=["layer", "target_sparsity", "sparsity", "rel_error", "damping"])

    def to_dict(self) -> dict[str, Any]:
        """Plain tensors and Python values only (loadable with `torch.load(weights_only=True)`)."""
        return {
            # settings as plain JSON data (paths, versions and the like become strings)
            "format": FORMAT, "version": VERSION, "settings": json.loads(json.dumps(self.settings, default=str)),
            "dense_top1": self.dense_top1, "pruned_top1": self.pruned_top1, "timings": dict(self.timings),
            "layers": [{"name": l.name, "shape": list(l.shape), "packed_mask": l.packed_mask, "values": l.values,
                        "target_sparsity": l.target_sparsity, "rel_error": l.rel_error, "damping": l.damping}
                       for l in self.layers.values()],
        }

    def save(self, path: str | os.PathLike) -> None:
        """Write the trace to `path` atomically (a half-written file never replaces a good one)."""
        with atomic_path(path) as tmp:
            torch.save(self.to_dict(), tmp)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Trace":
        """Read a trace written by `save`."""
        try:
            data = torch.load(path, map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise
        except Exception as exc:  # torch raises many types (pickle, zip, runtime) for a bad file
            raise ValueError(f"{path}: not a SPADE trace ({exc.__class__.__name__}: {exc})") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f"{path}: not a SPADE trace")
        if data.get("version") != VERSION:
            raise ValueError(f"{path}: unsupported trace version {data.get('version')!r}")
        layers = {}
        for d in data["layers"]:
            layers[d["name"]] = LayerTrace(d["name"], tuple(d["shape"]), d["packed_mask"], d["values"],
                                           d["target_sparsity"], d["rel_error"], d["damping"])
        return cls(layers, data["settings"], data["dense_top1"], data["pruned_top1"], data.get("timings", {}))
