"""The generation config: defaults, path resolution, and one-line errors for bad keys and values."""
from __future__ import annotations

from pathlib import Path

import pytest

from generation.config import ConfigError, config_from_dict, load_config
from generation.dataset import load_dataset
from tests.generation.helpers import REPO, SAMPLE, write_toml


def test_defaults_are_the_papers(tmp_path: Path) -> None:
    cfg = config_from_dict({"data": {"root": str(SAMPLE)}})
    assert cfg.model.name == "efficientnet_lite0" and cfg.model.weights is None
    assert cfg.study.items == 100 and cfg.study.seed == 0
    assert cfg.spade.solver == "sparsegpt" and cfg.spade.augmentations == 1024
    assert cfg.visualization.steps == 512 and cfg.visualization.size == 224
    assert cfg.visualization.fft and cfg.visualization.decorrelate and cfg.visualization.transforms == "standard"
    assert cfg.scorecam.batch_size == 64 and cfg.scorecam.layer == "auto"


def test_relative_paths_resolve_against_the_config_folder(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    path = write_toml(tmp_path / "conf" / "c.toml", {"model": {"weights": "w/model.pth"},
                                                     "data": {"root": "../images", "labels": "labels.csv"}})
    cfg = load_config(path)
    assert cfg.data.root == str((tmp_path / "images").resolve())
    assert cfg.data.labels == str((tmp_path / "conf" / "labels.csv").resolve())
    assert cfg.model.weights == str((tmp_path / "conf" / "w" / "model.pth").resolve())


@pytest.mark.parametrize("name", ["imagenet-sample.toml", "imagenet-sample-cpu.toml"])
def test_shipped_configs_load_and_find_the_sample_images(name: str) -> None:
    cfg = load_config(REPO / "data" / "configs" / name)
    assert Path(cfg.data.root) == SAMPLE.resolve()
    ds = load_dataset(cfg.data.root, cfg.data.labels, cfg.data.wnids, cfg.data.files, cfg.data.limit)
    assert len(ds.samples) == (cfg.data.limit or 500)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"data": {"root": "x"}, "scorecam": {"trheshold": 0.5}},
         "unknown key 'trheshold' in [scorecam] (known: layer, batch_size, target, threshold"),
        ({"dataa": {"root": "x"}}, "unknown section [dataa]"),
        ({"study": {"items": 3}}, "[data] is required"),
        ({"data": {"root": "x"}, "study": {"items": 0}}, "[study] items: Input should be greater than 0"),
        ({"data": {"root": "x"}, "study": {"items": "3"}}, "[study] items: Input should be a valid integer"),
        ({"data": {"root": "x"}, "scorecam": {"target": "probability"}}, "[scorecam] target: Input should be 'logit' or 'softmax'"),
        ({"data": {"root": "x"}, "spade": {"sparsity": "lienar(0,1)"}}, "[spade] sparsity: bad sparsity 'lienar(0,1)'"),
        ({"data": {"root": "x"}, "spade": {"sparsity": 1.5}}, "[spade] sparsity: Input should be less than or equal to 1"),
        ({"data": {"root": "x"}, "model": {"mean": [0.5, 0.5]}}, "[model] mean: List should have at least 3 items"),
    ],
)
def test_bad_configs_give_one_line_errors(data: dict, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        config_from_dict(data, source="study.toml")
    message = str(info.value)
    assert message.startswith("study.toml: ") and expected in message
    assert "\n" not in message


def test_unreadable_config_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[data\nroot = 1\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)


def test_sparsity_accepts_numbers_schedules_and_patterns() -> None:
    for value in (0.5, 1, "default", "linear(0,0.99)", "resnet50_tuned", {"layer4.*": 0.95, "fc": 0.9}):
        cfg = config_from_dict({"data": {"root": "x"}, "spade": {"sparsity": value}})
        assert cfg.spade.sparsity == value


def _docs_block(lang: str, after: str) -> str:
    text = (REPO / "docs" / "generation.md").read_text(encoding="utf-8")
    start = text.index(f"```{lang}\n", text.index(after)) + len(lang) + 4
    return text[start:text.index("```", start)]


def test_the_documented_config_reference_is_valid_complete_and_shows_the_defaults() -> None:
    import re
    import tomllib

    from generation.config import GenerationConfig

    block = _docs_block("toml", "## Config reference")
    documented = tomllib.loads(block)
    cfg = config_from_dict(documented, base=REPO)
    defaults = config_from_dict({"data": {"root": documented["data"]["root"]}}, base=REPO)
    assert cfg == defaults  # every uncommented value is the default
    section = None
    keys: dict[str, set[str]] = {}
    for line in block.splitlines():
        if m := re.match(r"^\[(\w+)\]", line):
            section = m.group(1)
        elif m := re.match(r"^#? ?(\w+) = ", line):
            keys.setdefault(section, set()).add(m.group(1))
    for name, field in GenerationConfig.model_fields.items():
        assert keys[name] == set(field.annotation.model_fields), name  # every key documented
