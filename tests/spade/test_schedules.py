"""Per-layer sparsity targets: floats, name/glob mappings, depth schedules, the tuned ResNet50 ratios."""
from __future__ import annotations

import pytest
import torchvision

from spade import schedules
from spade.prune import select_layers


def test_resnet50_tuned_matches_the_paper() -> None:
    names = list(select_layers(torchvision.models.resnet50(weights=None)))
    t = schedules.resolve(schedules.resnet50_tuned, names)
    assert t["conv1"] == 0.0 and t["fc"] == 0.95
    assert t["layer4.0.downsample.0"] == 0.95 and t["layer4.2.conv3"] == 0.95
    assert t["layer3.5.conv1"] == 0.0 and t["layer3.4.conv2"] == 0.0
    assert t["layer3.3.conv2"] == 0.8 and t["layer3.2.conv1"] == 0.9
    assert t["layer3.1.conv3"] == 0.8 and t["layer3.0.downsample.0"] == 0.8
    assert t["layer2.3.conv1"] == 0.95 and t["layer2.2.conv2"] == 0.99
    assert t["layer2.1.conv3"] == 0.0 and t["layer2.0.downsample.0"] == 0.2
    assert t["layer1.2.conv1"] == 0.0 and t["layer1.1.conv2"] == 0.8 and t["layer1.0.conv1"] == 0.2
    assert len(t) == 54


def test_linear_by_depth_and_the_default() -> None:
    layers = [f"l{i}" for i in range(11)]
    t = schedules.resolve(schedules.linear(0, 0.99), layers)
    assert t["l0"] == 0 and t["l10"] == pytest.approx(0.99) and t["l5"] == pytest.approx(0.495)
    d = schedules.resolve(schedules.DEFAULT, layers)
    assert d["l0"] == 0 and d["l10"] == pytest.approx(schedules.DEFAULT.end)
    assert list(d.values()) == sorted(d.values())


def test_the_default_caps_depthwise_convolutions() -> None:
    model = torchvision.models.mobilenet_v3_small(weights=None)
    modules = select_layers(model)
    names = list(modules)
    t = schedules.resolve(schedules.DEFAULT, names, modules)
    depthwise = [n for n, m in modules.items() if getattr(m, "groups", 1) > 1 and m.groups == m.in_channels]
    assert len(depthwise) == 11 and t[names[0]] == 0.0
    assert all(t[n] <= schedules.DEFAULT.depthwise_max for n in depthwise)
    assert t[names[-1]] == pytest.approx(0.8) and max(t.values()) == pytest.approx(0.8)
    late_dw = depthwise[-1]
    assert schedules.resolve(schedules.DEFAULT, names)[late_dw] > 0.5  # without the modules: no cap
    assert "depthwise <= 0.5" in str(schedules.DEFAULT)


def test_mappings_exact_names_then_most_specific_pattern_then_untouched() -> None:
    spec = {"a.*": 0.5, "a.b.*": 0.7, "a.b.c": 0.9}
    t = schedules.resolve(spec, ["a.x", "a.b.y", "a.b.c", "z"])
    assert t == {"a.x": 0.5, "a.b.y": 0.7, "a.b.c": 0.9, "z": 0.0}
    assert schedules.resolve(0.3, ["a", "b"]) == {"a": 0.3, "b": 0.3}


def test_an_unmatched_mapping_key_is_an_error_naming_it() -> None:
    layers = ["layer4.0.conv1", "layer4.0.conv2", "fc"]
    with pytest.raises(schedules.UnmatchedKeyError, match=r"^sparsity key\(s\) 'layr4\.\*' match no Conv2d or Linear"):
        schedules.resolve({"layr4.*": 0.9, "fc": 0.95}, layers)
    # a key may match a prunable layer outside the selection being pruned
    assert schedules.resolve({"layer3.*": 0.5, "fc": 0.9}, ["fc"], known=layers + ["layer3.1.conv1"]) == {"fc": 0.9}
    with pytest.raises(ValueError, match="'layer3.\\*'"):
        schedules.resolve({"layer3.*": 0.5, "fc": 0.9}, ["fc"], known=layers)


def test_the_paper_heuristic_is_a_named_schedule() -> None:
    layers = [f"l{i}" for i in range(5)]
    t = schedules.resolve(schedules.paper(), layers)
    assert t["l0"] == 0 and t["l4"] == pytest.approx(0.99) and t["l2"] == pytest.approx(0.495)
    assert schedules.paper() == schedules.PAPER == schedules.linear(0, 0.99) == schedules.parse("paper")


@pytest.mark.parametrize("text,expected", [("0.9", 0.9), ("linear(0, 0.99)", schedules.linear(0, 0.99)),
                                           ("default", schedules.DEFAULT), ("paper", schedules.PAPER),
                                           ("resnet50_tuned", schedules.resnet50_tuned)])
def test_parse(text: str, expected) -> None:
    assert schedules.parse(text) == expected


@pytest.mark.parametrize("text", ["1.2", "-0.1", "lienar(0,1)", "linear(0)", "linear(0,2)", "dense"])
def test_parse_rejects_bad_values(text: str) -> None:
    with pytest.raises(ValueError):
        schedules.parse(text)
    with pytest.raises(ValueError):
        schedules.resolve({"x": 1.5}, ["x"])
