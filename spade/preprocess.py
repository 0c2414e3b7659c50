"""How a model wants its input: resize, center crop, normalization."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Union

import torch
from PIL import Image
from torchvision.transforms.v2 import functional as TF

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

ImageLike = Union[Image.Image, torch.Tensor, str, Path]


@dataclass(frozen=True)
class Preprocess:
    """Resize the shorter side to `resize`, center-crop `size`, normalize with `mean`/`std`."""

    resize: int = 256
    size: int = 224
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD

    def load(self, image: ImageLike) -> torch.Tensor:
        """Return the image as a float CHW tensor in [0, 1], shorter side resized to `resize`."""
        if isinstance(image, (str, Path)):
            with Image.open(image) as im:
                image = im.convert("RGB")
        if isinstance(image, Image.Image):
            image = image.convert("RGB")
            tensor = TF.to_image(image)
        elif isinstance(image, torch.Tensor):
            if image.dim() != 3 or image.shape[0] not in (1, 3):
                raise ValueError(f"expected a CHW image tensor with 1 or 3 channels, got shape {tuple(image.shape)}")
            tensor = image.detach()
            if tensor.shape[0] == 1:
                tensor = tensor.expand(3, -1, -1)
        else:
            raise TypeError(f"expected a PIL image, a CHW tensor or a path, got {type(image).__name__}")
        tensor = TF.to_dtype(tensor, torch.float32, scale=True)
        return TF.resize(tensor, [self.resize], antialias=True).clamp_(0.0, 1.0)

    def crop(self, image: torch.Tensor) -> torch.Tensor:
        """Center-crop a (batch of) image tensor(s) to `size` x `size`."""
        return TF.center_crop(image, [self.size, self.size])

    def normalize(self, batch: torch.Tensor) -> torch.Tensor:
        """Normalize a float tensor in [0, 1] with `mean` and `std`."""
        return TF.normalize(batch, list(self.mean), list(self.std))

    def __call__(self, image: ImageLike) -> torch.Tensor:
        """Return the model input for one image: a normalized 1 x C x size x size batch."""
        return self.normalize(self.crop(self.load(image)))[None]

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (for saving in a trace or a manifest)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Preprocess":
        """Inverse of `to_dict`."""
        return cls(resize=int(data["resize"]), size=int(data["size"]),
                   mean=tuple(float(x) for x in data["mean"]), std=tuple(float(x) for x in data["std"]))
