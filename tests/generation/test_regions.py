"""Score-CAM maps (against the library's own ScoreCAM) and the map -> region rule."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision
from pytorch_grad_cam import ScoreCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget, ClassifierOutputTarget
from torch import nn

from generation.errors import GenerationError
from generation.regions import find_target_layer, region_from_map, scorecam_maps
from tests.generation.helpers import SAMPLE

pytestmark = pytest.mark.usefixtures("single_threaded")


def _blob(h: int, w: int, cy: float, cx: float, r: float, peak: float) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return peak * np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * r * r))


def test_region_is_the_bounding_box_of_the_largest_component_above_the_threshold() -> None:
    cam = np.zeros((50, 60), np.float32)
    cam[10:20, 5:15] = 1.0      # small, strongest
    cam[30:45, 30:55] = 0.8     # large, weaker
    cam[0, 59] = 0.3            # below any threshold used here
    assert region_from_map(cam, 0.5, "largest") == [30, 30, 55, 45]   # x1, y1 exclusive
    assert region_from_map(cam, 0.5, "peak") == [5, 10, 15, 20]
    assert region_from_map(cam, 0.9, "largest") == [5, 10, 15, 20]   # the weaker blob falls below 0.9 x max
    assert region_from_map(cam, 0.25, "largest") == [30, 30, 55, 45]


def test_region_components_are_8_connected_and_flat_maps_cover_the_image() -> None:
    cam = np.zeros((10, 10), np.float32)
    for i in range(6):
        cam[i, i] = 1.0  # a diagonal line: one component with 8-connectivity
    cam[8, 0] = 1.0
    assert region_from_map(cam, 0.5) == [0, 0, 6, 6]
    assert region_from_map(np.zeros((7, 9), np.float32)) == [0, 0, 9, 7]


def test_region_of_gaussian_blob_grows_as_the_threshold_falls() -> None:
    cam = _blob(100, 100, 40, 60, 10, 1.0)
    boxes = [region_from_map(cam, t) for t in (0.9, 0.5, 0.1)]
    areas = [(x1 - x0) * (y1 - y0) for x0, y0, x1, y1 in boxes]
    assert areas[0] < areas[1] < areas[2]
    for x0, y0, x1, y1 in boxes:
        assert x0 < 60 < x1 and y0 < 40 < y1


class _TinyNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                      nn.Conv2d(8, 12, 3, padding=1), nn.ReLU())
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(12, 5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


@pytest.mark.parametrize("target", ["logit", "softmax"])
def test_shared_mask_scorecam_equals_the_librarys_scorecam(target: str) -> None:
    torch.manual_seed(0)
    model = _TinyNet().eval()
    image = torch.randn(1, 3, 32, 32)
    make = ClassifierOutputSoftmaxTarget if target == "softmax" else ClassifierOutputTarget
    with ScoreCAM(model, [model.features]) as cam:
        cam.batch_size = 5
        expected = cam(input_tensor=image.expand(2, -1, -1, -1), targets=[make(1), make(3)])
    ours = scorecam_maps(model, model.features, image, [1, 3], target=target, batch_size=5)
    assert ours.shape == (2, 32, 32)
    np.testing.assert_allclose(ours, expected, atol=1e-5)
    # all channels as the `max_channels` budget: the same maps
    np.testing.assert_allclose(scorecam_maps(model, model.features, image, [1, 3], target=target, max_channels=12),
                               expected, atol=1e-5)
    fewer = scorecam_maps(model, model.features, image, [1, 3], target=target, max_channels=4)
    assert not np.allclose(fewer, expected, atol=1e-3)


def test_auto_layer_is_the_last_spatial_module_run_once() -> None:
    resnet = torchvision.models.resnet18(weights=None).eval()
    assert find_target_layer(resnet, "auto", 64)[0] == "layer4"
    tiny = _TinyNet().eval()
    name, module = find_target_layer(tiny, "auto", 32)
    assert name == "features" and module is tiny.features
    assert find_target_layer(tiny, "features.3", 32)[1] is tiny.features[3]
    with pytest.raises(GenerationError, match=r"\[scorecam\] layer 'features.9' is not a module of the model"):
        find_target_layer(tiny, "features.9", 32)


def test_scorecam_on_the_real_model_separates_two_classes() -> None:
    """Real EfficientNet-Lite0 on a real misclassified image: the true and the predicted class point elsewhere."""
    from generation.classifier import load_classifier
    from generation.config import ModelSettings
    from generation.dataset import load_rgb
    from generation.pipeline import _model_input

    clf = load_classifier(ModelSettings(), "cpu")
    name, layer = find_target_layer(clf.model, "auto", clf.preprocess.size)
    assert name == "_bn1"  # `_swish` runs twice in EfficientNet: auto skips it
    image, _ = load_rgb(SAMPLE / "n01494475_hammerhead.JPEG")
    x, display = _model_input(clf, image)
    assert display.size == (224, 224)
    assert int(clf.model(x).argmax()) == 842  # a hammerhead shark taken for swimming trunks
    block = dict(clf.model.named_modules())["_blocks.15"]
    maps = scorecam_maps(clf.model, block, x, [4, 842], max_channels=16, batch_size=16)
    assert maps.shape == (2, 224, 224) and maps.min() >= 0 and np.isclose(maps.max(), 1.0, atol=1e-3)
    assert np.corrcoef(maps[0].ravel(), maps[1].ravel())[0, 1] < 0.8
