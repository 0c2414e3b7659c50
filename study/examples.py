"""Example study data shipped with the package: a small bundle of real ImageNet sample photos and a study config.

- `make_bundle(root, n_items)` builds a valid study bundle from the real ImageNet sample photos
  (`../shared/data/imagenet-sample` beside the repository, never copied into it) with
  Pillow-drawn stand-ins for the visualizations; no torch needed.
- `write_config(path, **overrides)` writes a small study TOML.

Tests, benchmarks and the docs' examples import these from here.
"""
from __future__ import annotations

import csv
import random
from pathlib import Path

from PIL import Image, ImageDraw, ImageOps

REPO = Path(__file__).resolve().parents[1]
IMAGENET_SAMPLE = REPO.parent / "shared" / "data" / "imagenet-sample"


def imagenet_rows(n: int) -> list[dict]:
    """Return the first `n` rows of the ImageNet sample's labels.csv."""
    with open(IMAGENET_SAMPLE / "labels.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    if len(rows) < n:
        raise ValueError(f"the ImageNet sample has {len(rows)} images, {n} asked")
    return rows[:n]


def _visualization(seed: str, size: int = 224) -> Image.Image:
    """A stand-in for a Lucent visualization: a repeated coloured motif (the study only displays it)."""
    rng = random.Random(seed)
    colour = tuple(rng.randint(30, 230) for _ in range(3))
    bg = tuple(255 - c for c in colour)
    im = Image.new("RGB", (size, size), bg)
    d = ImageDraw.Draw(im)
    step = rng.randint(14, 28)
    for y in range(0, size, step):
        for x in range(0, size, step):
            r = rng.randint(step // 4, step // 2)
            d.ellipse([x, y, x + r, y + r], fill=colour)
    return im


def make_bundle(root: str | Path, n_items: int = 12, name: str = "test-bundle") -> Path:
    """Write a valid study bundle of `n_items` real ImageNet photos (224 px) into `root`; return it.

    Each item pretends the model predicted the next photo's class; its regions are two
    non-intersecting boxes that move from item to item; the class names are the real
    ImageNet names, so tests can check that raters never see them.
    """
    from contracts.manifest import write_manifest

    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "vis").mkdir(exist_ok=True)
    rows = imagenet_rows(n_items + 1)
    items = []
    for i in range(n_items):
        row, other = rows[i], rows[i + 1]
        item_id = f"item{i:03d}"
        with Image.open(IMAGENET_SAMPLE / row["file"]) as im:
            # Validation-style preprocessing (resize 256, centre crop 224), done with Pillow: no torch here.
            photo = ImageOps.fit(ImageOps.contain(im.convert("RGB"), (256, 256 * 4)), (224, 224))
        photo.save(root / "images" / f"{item_id}.jpg", quality=90)
        dx, dy = (i * 7) % 40, (i * 11) % 40
        true_box = [8 + dx, 8 + dy, 88 + dx, 88 + dy]
        pred_box = [120 + (dy // 2), 110 + (dx // 2), 200 + (dy // 2), 190 + (dx // 2)]
        if i % 2:
            true_box, pred_box = pred_box, true_box
        vis = {}
        for cond in ("dense", "spade"):
            vis[cond] = {}
            for target in ("true", "predicted"):
                rel = f"vis/{item_id}_{cond}_{target}.png"
                _visualization(f"{item_id}:{cond}:{target}").save(root / rel)
                vis[cond][target] = rel
        items.append(
            {
                "id": item_id,
                "image": f"images/{item_id}.jpg",
                "source": row["file"],
                "true_label": row["name"],
                "predicted_label": other["name"],
                "true_class": int(row["class_index"]),
                "predicted_class": int(other["class_index"]),
                "regions": {"true": true_box, "predicted": pred_box},
                "visualizations": vis,
            }
        )
    manifest = {"version": 1, "study": {"name": name, "model": "fixture", "note": "test bundle"}, "items": items}
    write_manifest(root, manifest)
    return root


def write_config(path: str | Path, **overrides: object) -> Path:
    """Write a small study TOML for tests; keyword overrides go to [study], `practice_*` to [practice],
    `exclusion_*` to [exclusion], `prolific_study_id` and `completion_code` to [prolific]."""
    study = {
        "identity": "invite",
        "tasks_per_rater": 4,
        "ratings_per_task": 2,
        "catch_per_rater": 1,
        "confidence": False,
        "seed": 7,
    }
    practice = {"trials": 3, "min_correct": 2, "max_rounds": 2}
    extra_sections: dict[str, dict] = {}
    for key, value in overrides.items():
        if key.startswith("practice_"):
            practice[key.removeprefix("practice_")] = value
        elif key == "completion_code":
            extra_sections.setdefault("prolific", {})["completion_code"] = value
        elif key == "prolific_study_id":
            extra_sections.setdefault("prolific", {})["study_id"] = value
        elif key.startswith("exclusion_"):
            extra_sections.setdefault("exclusion", {})[key.removeprefix("exclusion_")] = value
        else:
            study[key] = value

    def fmt(v: object) -> str:
        """Format one TOML value."""
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        return str(v)

    lines = ["[study]"] + [f"{k} = {fmt(v)}" for k, v in study.items()]
    lines += ["", "[practice]"] + [f"{k} = {fmt(v)}" for k, v in practice.items()]
    for section, table in extra_sections.items():
        lines += ["", f"[{section}]"] + [f"{k} = {fmt(v)}" for k, v in table.items()]
    path = Path(path)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
