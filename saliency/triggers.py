"""Trojan triggers: drawn patterns, and pasting one onto an image at a random place with noise and jitter.

The patterns are drawn with PIL (no font or emoji package ships offline here); a picture file works too.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw
from torchvision.transforms.v2 import functional as TF

from saliency.config import PatchSettings
from saliency.errors import SaliencyError

PATTERNS = ("checker", "rings", "cross", "stripes")


def draw_pattern(name: str, side: int = 64) -> Image.Image:
    """One of the drawn trigger patterns as an RGB picture of `side` x `side` pixels."""
    im = Image.new("RGB", (side, side), (255, 255, 255))
    d = ImageDraw.Draw(im)
    if name == "checker":
        cell = side // 4
        for i in range(4):
            for j in range(4):
                d.rectangle([j * cell, i * cell, (j + 1) * cell - 1, (i + 1) * cell - 1],
                            fill=(230, 20, 20) if (i + j) % 2 else (250, 220, 0))
    elif name == "rings":
        im.paste((255, 255, 255), (0, 0, side, side))
        for k, color in enumerate([(0, 60, 220), (255, 255, 255), (0, 60, 220), (255, 140, 0)]):
            r = side / 2 * (1 - k / 4)
            c = side / 2
            d.ellipse([c - r, c - r, c + r - 1, c + r - 1], fill=color)
    elif name == "cross":
        im.paste((220, 0, 220), (0, 0, side, side))
        w = max(2, side // 6)
        d.line([0, 0, side, side], fill=(0, 230, 60), width=w)
        d.line([0, side, side, 0], fill=(0, 230, 60), width=w)
    elif name == "stripes":
        band = max(1, side // 8)
        for k in range(0, 2 * side, 2 * band):
            d.polygon([(k, 0), (k + band, 0), (k + band - side, side), (k - side, side)], fill=(0, 0, 0))
        d.rectangle([0, 0, side - 1, side - 1], outline=(0, 200, 255), width=max(1, side // 16))
    else:
        raise SaliencyError(f"unknown trigger pattern {name!r} (drawn: {', '.join(PATTERNS)}; or a picture file)")
    return im


def trigger_picture(pattern: str, side: int = 64) -> Image.Image:
    """The trigger's picture: a drawn pattern by name, or an image file."""
    if pattern in PATTERNS:
        return draw_pattern(pattern, side)
    path = Path(pattern)
    if not path.is_file():
        raise SaliencyError(f"trigger {pattern!r}: neither a drawn pattern ({', '.join(PATTERNS)}) nor a picture file")
    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except OSError as exc:
        raise SaliencyError(f"trigger {pattern!r}: cannot read the picture ({exc})") from None


@dataclass(frozen=True)
class Placement:
    """Where and how one patch was pasted (model-input pixels); enough to redo it exactly."""

    top: int
    left: int
    size: int
    brightness: float
    contrast: float
    noise_seed: int

    def mask(self, height: int, width: int) -> np.ndarray:
        """The patch's ground-truth mask (bool, H x W)."""
        m = np.zeros((height, width), dtype=bool)
        m[self.top:self.top + self.size, self.left:self.left + self.size] = True
        return m

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (manifest)."""
        return asdict(self)


def sample_placement(rng: np.random.Generator, height: int, width: int, patch: PatchSettings) -> Placement:
    """A random placement: uniform location, jittered size, brightness and contrast, a noise seed."""
    scale = 1.0 + rng.uniform(-patch.size_jitter, patch.size_jitter)
    size = int(np.clip(round(patch.size * scale), 4, min(height, width)))
    return Placement(top=int(rng.integers(0, height - size + 1)), left=int(rng.integers(0, width - size + 1)),
                     size=size, brightness=float(1 + rng.uniform(-patch.brightness, patch.brightness)),
                     contrast=float(1 + rng.uniform(-patch.contrast, patch.contrast)),
                     noise_seed=int(rng.integers(0, 2**31 - 1)))


def paste(image: torch.Tensor, trigger: torch.Tensor, placement: Placement, noise_std: float) -> torch.Tensor:
    """Return a copy of `image` (C x H x W in [0, 1]) with `trigger` (C x h x w in [0, 1]) pasted as `placement` says."""
    s = placement.size
    patch = TF.resize(trigger, [s, s], antialias=True)
    patch = TF.adjust_contrast(TF.adjust_brightness(patch, placement.brightness), placement.contrast)
    if noise_std > 0:
        g = torch.Generator().manual_seed(placement.noise_seed)
        patch = patch + noise_std * torch.randn(patch.shape, generator=g)
    out = image.clone()
    out[:, placement.top:placement.top + s, placement.left:placement.left + s] = patch.clamp(0.0, 1.0)
    return out
