"""Seeded, batched image augmentations of the paper (Random Crop, flip, Color Jitter, Random Remove).

Against the reference notebook (IST-DASLab/SPADE, `SingleImageDataset`: RandomResizedCrop(224,
scale=(0.2, 1)), RandomHorizontalFlip, ColorJitter(brightness=0.5, hue=0.3)) two deviations are
kept, each measured in docs/spade.md ("Deviations from the reference code", D5 and D6):
- Random Remove (random erasing) is added: the paper's text names it, the notebook has none.
  Its parameters are torchvision's `RandomErasing` defaults (p 0.5, scale (0.02, 0.33), ratio
  (0.3, 3.3), value 0); the paper gives none. `Augmentations(erase_p=0.0)` turns it off.
- Crops are taken from the image resized to the model's `Preprocess.resize` (256 px on the shorter
  side for 224-px models), where the reference crops the original photograph, so small crops of a
  large photograph come out blurrier here.

torchvision's transforms draw ONE set of random parameters per call, so a batch
would get the same crop/jitter for every sample; kornia (which draws per-sample
parameters) is pinned by Lucent to 0.4.1, which no longer runs on current torch.
So the random parameters are drawn here, per sample and from a seeded generator,
and applied with torchvision's batched kernels (`roi_align` for crop+resize,
its RGB<->HSV conversion for the hue shift) on the compute device.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Iterator

import torch
from torchvision.ops import roi_align
# The public `adjust_hue` takes one hue factor per call; these are the converters it uses
# internally, and they work on batches (torchvision is pinned in pyproject).
from torchvision.transforms.v2.functional._color import _hsv_to_rgb, _rgb_to_hsv

from .preprocess import Preprocess


@dataclass(frozen=True)
class Augmentations:
    """Parameters of the augmentations: crop, flip and jitter as in the reference notebook; erasing:
    torchvision's RandomErasing defaults (the notebook has no erasing; see the module docstring)."""

    crop_scale: tuple[float, float] = (0.2, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip_p: float = 0.5
    brightness: float = 0.5
    hue: float = 0.3
    erase_p: float = 0.5
    erase_scale: tuple[float, float] = (0.02, 0.33)
    erase_ratio: tuple[float, float] = (0.3, 3.3)

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (saved with a trace)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


@dataclass
class AugmentationParams:
    """Per-sample random parameters of n augmentations (CPU tensors)."""

    boxes: torch.Tensor        # n x 4: x1, y1, x2, y2 in pixels of the resized image (not the original)
    flip: torch.Tensor         # n, bool
    brightness: torch.Tensor   # n, multiplicative factor
    hue: torch.Tensor          # n, shift in [-0.5, 0.5] of a full turn
    erase: torch.Tensor        # n x 4: top, left, height, width in output pixels (height 0: no erasing)


def _log_uniform(u: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    return torch.exp(math.log(lo) + u * (math.log(hi) - math.log(lo)))


def sample_params(n: int, height: int, width: int, size: int, seed: int,
                  aug: Augmentations = Augmentations(), include_original: bool = True) -> AugmentationParams:
    """Draw the parameters of `n` augmentations of a `height` x `width` image (the first one the identity crop)."""
    g = torch.Generator().manual_seed(int(seed))
    u = torch.rand(n, 12, generator=g, dtype=torch.float64)
    area = height * width * (aug.crop_scale[0] + u[:, 0] * (aug.crop_scale[1] - aug.crop_scale[0]))
    ratio = _log_uniform(u[:, 1], *aug.crop_ratio)
    # torchvision retries up to 10 times when the box does not fit; clamping keeps it one draw per sample
    w = torch.sqrt(area * ratio).clamp(max=width)
    h = torch.sqrt(area / ratio).clamp(max=height)
    x1 = u[:, 2] * (width - w)
    y1 = u[:, 3] * (height - h)
    boxes = torch.stack([x1, y1, x1 + w, y1 + h], dim=1)
    flip = u[:, 4] < aug.flip_p
    brightness = 1 - aug.brightness + 2 * aug.brightness * u[:, 5]
    hue = -aug.hue + 2 * aug.hue * u[:, 6]
    e_area = size * size * (aug.erase_scale[0] + u[:, 7] * (aug.erase_scale[1] - aug.erase_scale[0]))
    e_ratio = _log_uniform(u[:, 8], *aug.erase_ratio)
    eh = torch.sqrt(e_area * e_ratio).round().clamp(1, size)
    ew = torch.sqrt(e_area / e_ratio).round().clamp(1, size)
    top = (u[:, 9] * (size - eh + 1)).floor()
    left = (u[:, 10] * (size - ew + 1)).floor()
    eh = torch.where(u[:, 11] < aug.erase_p, eh, torch.zeros_like(eh))
    erase = torch.stack([top, left, eh, ew], dim=1)
    if include_original and n > 0:
        side = min(height, width, size)
        ox, oy = (width - side) / 2, (height - side) / 2
        boxes[0] = torch.tensor([ox, oy, ox + side, oy + side], dtype=boxes.dtype)
        flip[0], brightness[0], hue[0], erase[0, 2] = False, 1.0, 0.0, 0.0
    return AugmentationParams(boxes.float(), flip, brightness.float(), hue.float(), erase.long())


def apply_params(image: torch.Tensor, params: AugmentationParams, start: int, stop: int,
                 preprocess: Preprocess) -> torch.Tensor:
    """Augment samples `start:stop` of `image` (CHW in [0, 1], on the compute device); return a normalized batch."""
    device, size = image.device, preprocess.size
    boxes = params.boxes[start:stop].to(device)
    n = boxes.shape[0]
    rois = torch.cat([torch.zeros(n, 1, device=device), boxes], dim=1)
    x = roi_align(image[None], rois, output_size=(size, size), spatial_scale=1.0, sampling_ratio=2, aligned=True)
    if params.boxes.shape[0] and start == 0 and _is_identity_crop(params.boxes[0], image, size):
        x[0] = preprocess.crop(image)  # the original sample is exactly the model's usual input
    flip = params.flip[start:stop].to(device)
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    x = (x * params.brightness[start:stop].to(device)[:, None, None, None]).clamp_(0.0, 1.0)
    hue = params.hue[start:stop].to(device)
    shift = hue != 0
    if bool(shift.any()):
        hsv = _rgb_to_hsv(x[shift])
        hsv[:, 0] = (hsv[:, 0] + hue[shift][:, None, None]).remainder_(1.0)
        x[shift] = _hsv_to_rgb(hsv)
    x = preprocess.normalize(x)
    # Random Remove: torchvision's RandomErasing (default parameters, value 0), applied after
    # normalization as in its docs; not in the reference notebook (D5 in docs/spade.md)
    top, left, eh, ew = params.erase[start:stop].to(device).unbind(1)
    rows = torch.arange(size, device=device)
    in_rows = (rows[None] >= top[:, None]) & (rows[None] < (top + eh)[:, None])
    in_cols = (rows[None] >= left[:, None]) & (rows[None] < (left + ew)[:, None])
    erase = in_rows[:, :, None] & in_cols[:, None, :]
    return x.masked_fill_(erase[:, None], 0.0)


def _is_identity_crop(box: torch.Tensor, image: torch.Tensor, size: int) -> bool:
    height, width = image.shape[-2:]
    side = min(height, width, size)
    return abs(float(box[2] - box[0]) - side) < 1e-3 and side == size


def augmented_batches(image: torch.Tensor, n: int, batch_size: int, seed: int, preprocess: Preprocess,
                      aug: Augmentations = Augmentations()) -> Iterator[torch.Tensor]:
    """Yield `n` augmented, normalized samples of `image` in batches; sample 0 is the image itself."""
    params = sample_params(n, image.shape[-2], image.shape[-1], preprocess.size, seed, aug)
    for start in range(0, n, batch_size):
        yield apply_params(image, params, start, min(start + batch_size, n), preprocess)
