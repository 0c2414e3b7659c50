"""The visualization registry: built-ins on the real model, seeding, hook hygiene, and entry-point plugins."""
from __future__ import annotations

import functools
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from generation import visualize
from generation.classifier import load_classifier
from generation.config import ModelSettings, VisualizationSettings
from generation.errors import GenerationError
from generation.visualize import RenderSettings, available_methods, get_method, register, render


pytestmark = pytest.mark.usefixtures("single_threaded")


@functools.cache
def lite0():
    return load_classifier(ModelSettings(), "cpu")


def _settings(**kw) -> RenderSettings:
    clf = lite0()
    vis = VisualizationSettings(**{"steps": 6, "size": 48, "render_size": 48, **kw})
    return RenderSettings.from_config(vis, clf.preprocess.mean, clf.preprocess.std, "cpu")


def _hooks(model) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def test_default_method_renders_both_classes_in_one_batch_reproducibly() -> None:
    model = lite0().model
    before = _hooks(model)
    a = render("lucent_logit", model, [1, 500], _settings(), seed=3)
    assert _hooks(model) == before  # Lucent hooks every module of what it renders: a copy, not ours
    # the copy is frozen (no weight gradients); the caller's model keeps its flags
    assert all(p.requires_grad and p.grad is None for p in model.parameters())
    assert [im.size for im in a] == [(48, 48), (48, 48)] and all(im.mode == "RGB" for im in a)
    b = render("lucent_logit", model, [1, 500], _settings(), seed=3)
    c = render("lucent_logit", model, [1, 500], _settings(), seed=4)
    arr = lambda im: np.asarray(im, dtype=np.int16)
    assert all(np.array_equal(arr(x), arr(y)) for x, y in zip(a, b))      # same seed, same images
    assert not np.array_equal(arr(a[0]), arr(c[0]))                      # another seed, another image
    assert np.abs(arr(a[0]) - arr(a[1])).mean() > 2                      # two classes, two images


def test_pixel_method_differs_from_the_fourier_default() -> None:
    model = lite0().model
    fft = render("lucent_logit", model, [7], _settings(), seed=0)[0]
    pixel = render("lucent_pixel", model, [7], _settings(), seed=0)[0]
    assert np.abs(np.asarray(fft, dtype=np.int16) - np.asarray(pixel, dtype=np.int16)).mean() > 5


def test_registry_knows_builtins_and_rejects_unknown_names() -> None:
    assert {"lucent_logit", "lucent_pixel"} <= set(available_methods())
    assert get_method("lucent_logit").batched
    with pytest.raises(GenerationError, match=r"unknown visualization method 'deepdream' \(available: .*lucent_logit"):
        get_method("deepdream")


def test_an_unbatched_method_is_called_once_per_class_with_the_settings_and_seed() -> None:
    calls = []

    @register("test_flat_color")
    def flat(model, class_index, settings, seed):
        calls.append((class_index, settings.size, seed, model.training))
        return Image.new("RGB", (settings.size, settings.size), (class_index % 256, seed, 0))

    try:
        images = render("test_flat_color", lite0().model, [3, 9], _settings(), seed=5)
    finally:
        visualize._REGISTRY.pop("test_flat_color")
    assert calls == [(3, 48, 5, False), (9, 48, 5, False)]
    assert [im.getpixel((0, 0)) for im in images] == [(3, 5, 0), (9, 5, 0)]


def test_a_method_must_return_one_image_per_class() -> None:
    register("test_broken", batched=True)(lambda model, classes, settings, seed: [])
    try:
        with pytest.raises(GenerationError, match="must return one PIL image per class"):
            render("test_broken", lite0().model, [1, 2], _settings(), seed=0)
    finally:
        visualize._REGISTRY.pop("test_broken")


def test_third_party_methods_register_through_the_entry_point_group(tmp_path: Path, monkeypatch) -> None:
    """A real installed distribution (a .dist-info on sys.path) declaring a `spade_study.visualizations` entry point."""
    (tmp_path / "my_vis.py").write_text(textwrap.dedent("""
        from PIL import Image

        def gray(model, classes, settings, seed):
            return [Image.new("L", (settings.size, settings.size), 10 * c) for c in classes]

        gray.batched = True

        def broken():
            raise RuntimeError
    """))
    dist = tmp_path / "my_vis-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: my-vis\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[spade_study.visualizations]\nmy_gray = my_vis:gray\nmy_missing = my_vis:nothing_here\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(GenerationError, match=r"visualization plugin 'my_missing' \(my_vis:nothing_here\) fails to load"):
        available_methods()
    (dist / "entry_points.txt").write_text("[spade_study.visualizations]\nmy_gray = my_vis:gray\n")
    assert "my_gray" in available_methods()
    method = get_method("my_gray")
    assert method.batched
    images = render("my_gray", lite0().model, [2, 5], _settings(), seed=0)
    assert [im.getpixel((0, 0)) for im in images] == [(20, 20, 20), (50, 50, 50)]
    sys.modules.pop("my_vis", None)


def test_the_documented_plugin_example_runs(tmp_path: Path, monkeypatch) -> None:
    """The docs' under-20-lines method, installed as a real entry point, renders through the pipeline's `render`."""
    from tests.generation.helpers import REPO

    text = (REPO / "docs" / "generation.md").read_text(encoding="utf-8")
    start = text.index("```python\n", text.index("A new method in a package of your own")) + len("```python\n")
    code = text[start:text.index("```", start)]
    assert len(code.strip().splitlines()) < 20
    (tmp_path / "my_vis_doc.py").write_text(code)
    dist = tmp_path / "my_vis_doc-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: my-vis-doc\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[spade_study.visualizations]\ngradient_ascent = my_vis_doc:gradient_ascent\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    images = render("gradient_ascent", lite0().model, [1, 500], _settings(steps=3, size=32), seed=0)
    assert [im.size for im in images] == [(32, 32), (32, 32)]
    assert not np.array_equal(np.asarray(images[0]), np.asarray(images[1]))
    sys.modules.pop("my_vis_doc", None)
