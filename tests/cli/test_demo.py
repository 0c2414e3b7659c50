"""The embedded default study: its dataset of shipped photos, its configs, and the demo command's errors.

Building the whole demo takes minutes (it is `make demo`); these tests check what it is built
from, with the real pretrained model where a label is at stake.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from spade_study import demo

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("demo") / "dataset"
    demo.build_demo_dataset(folder)
    return folder


def test_demo_dataset_is_built_from_shipped_photos_with_imagenet_labels(dataset: Path) -> None:
    from generation.dataset import load_dataset
    from spade.models import imagenet_categories

    ds = load_dataset(dataset, dataset / "labels.csv")
    assert len(ds.samples) == len(demo.DEMO_IMAGES) >= 4
    categories = imagenet_categories()
    by_file = {s.source: s for s in ds.samples}
    for spec in demo.DEMO_IMAGES:
        sample = by_file[f"images/{spec.file}"]
        with Image.open(sample.path) as im:
            assert im.size == (demo.SIDE, demo.SIDE) and im.mode == "RGB"
        # the hand label names a real ImageNet class (underscores for spaces, as in the sample's labels)
        assert categories[spec.class_index].lower().replace(" ", "_") == spec.name.lower()
        assert sample.class_index == spec.class_index
        for photo in spec.photos:
            assert demo.shipped_photo(photo).is_file()


def test_demo_dataset_build_is_idempotent(dataset: Path) -> None:
    before = {p.name: p.stat().st_mtime_ns for p in (dataset / "images").iterdir()}
    demo.build_demo_dataset(dataset)
    after = {p.name: p.stat().st_mtime_ns for p in (dataset / "images").iterdir()}
    assert before == after


def test_demo_configs_validate_and_fit_the_items() -> None:
    import tomllib

    from generation.config import config_from_dict
    from study.config import config_from_dict as study_config

    gen = config_from_dict(tomllib.loads(demo._template("demo_generate.toml")), base=REPO)
    assert gen.model.name == "efficientnet_lite0" and gen.study.items >= 4
    study = study_config(tomllib.loads(demo._template("demo_study.toml")))
    # a rater never sees an image twice: tasks + catch trials must fit the demo's items
    assert study.tasks_total <= gen.study.items


def test_the_left_photo_of_each_pair_is_not_what_the_model_predicts(dataset: Path) -> None:
    """The pairs exist to be misclassified (true class on the left, another class predicted)."""
    import torch

    import spade

    model, preprocess = spade.models.load_model("efficientnet_lite0")
    batch = torch.cat([preprocess(dataset / "images" / spec.file) for spec in demo.DEMO_IMAGES])
    with torch.no_grad():
        predicted = model(batch).argmax(1).tolist()
    wrong = [p != spec.class_index for p, spec in zip(predicted, demo.DEMO_IMAGES)]
    assert sum(wrong) >= 4, f"only {sum(wrong)} demo images are misclassified: the demo cannot build 4 items"


def test_demo_command_refuses_a_bad_option() -> None:
    proc = subprocess.run([sys.executable, "-m", "spade_study", "demo", "--port", "notaport"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "--port" in proc.stderr
