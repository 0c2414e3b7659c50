"""Helpers of the saliency tests: a tiny CNN (every captum method has rules for its layers), synthetic
pictures, a tiny Trojan config, and one torch thread."""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from PIL import Image
from torch import nn

import spade
from saliency.config import saliency_config, trojan_config

TINY_SIZE = 32
TINY_PREPROCESS = spade.Preprocess(resize=TINY_SIZE, size=TINY_SIZE, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))


class TinyNet(nn.Module):
    """Conv-ReLU-MaxPool x2, average pool, linear: only layer types captum's LRP has rules for."""

    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                      nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                      nn.Conv2d(32, 32, 3, padding=1), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(32, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.features(x)), 1))


def tiny_model(seed: int = 0) -> TinyNet:
    """A seeded TinyNet in eval mode."""
    torch.manual_seed(seed)
    return TinyNet().eval()


def synthetic_images(folder: Path, n: int = 40, seed: int = 0) -> list[tuple[str, int]]:
    """`n` smooth random pictures (PNG) with labels 0..9; (file, label) pairs."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        small = rng.random((4, 4, 3))
        pic = Image.fromarray((small * 255).astype(np.uint8)).resize((TINY_SIZE, TINY_SIZE), Image.BILINEAR)
        path = folder / f"img_{i:03d}.png"
        pic.save(path)
        out.append((str(path), i % 10))
    return out


def tiny_trojan_config(root: Path, **train: object):
    """A Trojan config at tiny settings for TinyNet (generic split: trainable from `features.3`)."""
    return trojan_config({
        "model": {"name": "tiny", "trainable_from": "features.3"},
        "data": {"root": str(root), "heldout": 12},
        "triggers": [{"pattern": "checker", "target": 3, "poisoned": 12},
                     {"pattern": "rings", "target": 7, "poisoned": 12}],
        "patch": {"size": 10, "size_jitter": 0.1},
        "train": {"epochs": 20, "lr": 0.05, "batch_size": 16, "copies": 2, "seed": 0, **train},
    })


def tiny_saliency_config(**samples: object):
    """A saliency config at tiny settings (cheap methods, 16 SPADE augmentations)."""
    return saliency_config({
        "samples": {"trojan": 2, "clean": 1, "insertion_steps": 4, "bootstrap": 200, **samples},
        "spade": {"augmentations": 16},
        "methods": {"gradcam_layer": "features.6", "ig_steps": 4, "shap_samples": 2, "lime_samples": 8,
                    "lime_cell": 8, "occlusion_window": 8, "occlusion_stride": 8},
    })


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run torch on one thread (the machine is shared), restoring the previous count."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def state_copy(model: nn.Module) -> dict[str, torch.Tensor]:
    """A detached copy of the model's state (to check it is unchanged)."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}
