"""Stage 2: Score-CAM maps of the dense model for two classes, and the region rule that turns a map into a box.

Score-CAM (Wang et al. 2019) through pytorch-grad-cam, on the rectified (ReLU) feature maps of
the target layer, scoring each channel's masked image by the class logit (or softmax).

Region rule (documented in docs/generation.md): keep the pixels of the map at or above
`threshold` x its maximum; label their 8-connected components (skimage.measure); take the
largest component (`component = "largest"`) or the one holding the map's maximum
(`component = "peak"`); the region is that component's bounding box [x0, y0, x1, y1], x1 and y1
exclusive, in pixels of the model's center crop (the bundle's display image).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from pytorch_grad_cam import ScoreCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget, ClassifierOutputTarget
from skimage.measure import label, regionprops
from torch import nn
from tqdm.auto import tqdm

from generation.errors import GenerationError


def find_target_layer(model: nn.Module, spec: str, size: int) -> tuple[str, nn.Module]:
    """The Score-CAM layer: a module name, or `auto` for the last module that runs once and outputs a spatial map."""
    modules = dict(model.named_modules())
    if spec != "auto":
        if spec not in modules or spec == "":
            near = [n for n in modules if n and n.split(".")[-1] == spec.split(".")[-1]][:3]
            hint = f" (similar: {', '.join(near)})" if near else ""
            raise GenerationError(f"[scorecam] layer {spec!r} is not a module of the model{hint}")
        return spec, modules[spec]
    finished: list[str] = []
    shapes: dict[str, tuple[int, ...]] = {}
    calls: dict[str, int] = {}

    def hook(name: str) -> Callable:
        def record(_m: nn.Module, _i: tuple, out: object) -> None:
            calls[name] = calls.get(name, 0) + 1
            finished.append(name)
            if isinstance(out, torch.Tensor):
                shapes[name] = tuple(out.shape)
        return record

    handles = [m.register_forward_hook(hook(n)) for n, m in modules.items() if n]
    try:
        device = next(model.parameters()).device
        with torch.inference_mode():
            model(torch.zeros(1, 3, size, size, device=device))
    finally:
        for h in handles:
            h.remove()
    # a module called twice (e.g. a shared activation) would give Score-CAM two maps for one layer
    spatial = [n for n in finished if calls[n] == 1 and len(shapes.get(n, ())) == 4 and min(shapes[n][2:]) > 1]
    if not spatial:
        raise GenerationError("[scorecam] layer = 'auto' found no layer with a spatial output; name one")
    return spatial[-1], modules[spatial[-1]]


class SharedMaskScoreCAM(ScoreCAM):
    """pytorch-grad-cam's ScoreCAM, scoring all targets of ONE image with one pass over its masked copies.

    The library runs the masked copies once per (image, target) pair; the study asks for two
    targets of the same image, so this halves the cost. It also streams the masked copies in
    batches (the library materializes all of them at once: 2048 x 3 x 224 x 224 floats for
    ResNet50's layer4) and can restrict the masks to the `max_channels` channels with the
    largest spatial variance (an optional speed knob; default: all channels, as the paper).
    """

    def __init__(self, model: nn.Module, target_layers: list[nn.Module], batch_size: int = 64,
                 max_channels: int | None = None, progress: bool = False) -> None:
        # Score-CAM is defined on rectified feature maps. `auto` may pick a layer that sits before
        # its activation (EfficientNet-Lite's `_bn1`, whose ReLU6 module is shared and runs twice):
        # unrectified, its negative responses cancel the weighted sum and every map comes out 0.
        super().__init__(model, target_layers, reshape_transform=torch.relu)
        self.batch_size = batch_size
        self.max_channels = max_channels
        self.progress = progress

    def get_cam_weights(self, input_tensor: torch.Tensor, target_layer: nn.Module, targets: list,
                        activations: np.ndarray, grads: np.ndarray) -> np.ndarray:
        """Softmax over channels of each target's score on the image masked by each channel."""
        if not torch.equal(input_tensor, input_tensor[:1].expand_as(input_tensor)):
            return super().get_cam_weights(input_tensor, target_layer, targets, activations, grads)
        with torch.no_grad():
            act = torch.from_numpy(activations[:1]).to(self.device)
            up = F.interpolate(act, size=input_tensor.shape[-2:], mode="bilinear", align_corners=True)[0]
            flat = up.flatten(1)
            lo, hi = flat.min(dim=1).values, flat.max(dim=1).values
            up = (up - lo[:, None, None]) / (hi - lo + 1e-8)[:, None, None]
            channels = torch.arange(up.shape[0], device=up.device)
            if self.max_channels is not None and self.max_channels < up.shape[0]:
                channels = act[0].flatten(1).var(dim=1).topk(self.max_channels).indices.sort().values
            scores = torch.full((len(targets), up.shape[0]), float("-inf"))
            image = input_tensor[:1]
            for i in tqdm(range(0, len(channels), self.batch_size), desc="score-cam", unit="batch",
                          disable=not self.progress, leave=False):
                idx = channels[i:i + self.batch_size]
                outputs = self.model(image * up[idx, None])
                # the hooks append every masked pass; the maps were already read, so drop them
                self.activations_and_grads.activations.clear()
                for t, target in enumerate(targets):
                    scores[t, idx.cpu()] = torch.stack([target(o) for o in outputs]).float().cpu()
            return torch.softmax(scores, dim=1).numpy()


@dataclass(frozen=True)
class RegionPair:
    """Score-CAM maps (H x W in [0, 1]) and boxes for the true and the predicted class."""

    maps: np.ndarray            # 2 x H x W: true, predicted
    boxes: tuple[list[int], list[int]]


def scorecam_maps(model: nn.Module, layer: nn.Module, image: torch.Tensor, classes: list[int], *,
                  target: str = "logit", batch_size: int = 64, max_channels: int | None = None,
                  progress: bool = False) -> np.ndarray:
    """Score-CAM maps (len(classes) x H x W, each scaled to [0, 1]) of one normalized 1 x C x H x W image."""
    make = ClassifierOutputSoftmaxTarget if target == "softmax" else ClassifierOutputTarget
    batch = image.expand(len(classes), -1, -1, -1)
    with SharedMaskScoreCAM(model, [layer], batch_size, max_channels, progress) as cam, torch.no_grad():
        maps = cam(input_tensor=batch, targets=[make(c) for c in classes])
    return np.asarray(maps, dtype=np.float32)


def region_from_map(cam: np.ndarray, threshold: float = 0.5, component: str = "largest") -> list[int]:
    """The region of one map as [x0, y0, x1, y1] (exclusive ends), by the rule in this module's docstring."""
    peak = float(cam.max())
    if not np.isfinite(peak) or peak <= 0:
        h, w = cam.shape
        return [0, 0, w, h]  # a flat map points nowhere: the whole image (it intersects anything)
    labels = label(cam >= threshold * peak, connectivity=2)
    props = regionprops(labels)
    if component == "peak":
        y, x = np.unravel_index(int(np.argmax(cam)), cam.shape)
        chosen = next(p for p in props if p.label == labels[y, x])
    else:
        chosen = max(props, key=lambda p: (p.area, -p.label))
    y0, x0, y1, x1 = chosen.bbox
    return [int(x0), int(y0), int(x1), int(y1)]
