"""`spade-study demo`: build the embedded default study offline and serve it.

Everything comes from what the installed packages ship: EfficientNet-Lite0 with
its real ImageNet weights, and real photos from scikit-image and scikit-learn,
hand-labelled with ImageNet classes (`DEMO_IMAGES`). The study needs
misclassified images whose true-class and predicted-class evidence sit in
different places; the shipped photos are single objects, so the demo builds
side-by-side pairs of two photos, labelled with the class of the LEFT photo (as
an ImageNet label names one object of a multi-object photo). Which of them the model gets wrong, and which give two
non-intersecting Score-CAM regions, is decided by the real pipeline, not here.
"""
from __future__ import annotations

import argparse
import csv
import os
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path

from contracts.files import atomic_path

DEFAULT_DIR = Path("data/demo")
PORT = 8501


@dataclass(frozen=True)
class DemoImage:
    """One image of the embedded dataset: one or two shipped photos and the ImageNet class of the first."""

    file: str
    photos: tuple[str, ...]  # "package:relative/path" of the shipped photos, left to right
    class_index: int
    name: str


# Hand labels: the class of the LEFT photo, in ImageNet's vocabulary (standard ImageNet-1k
# indices). Chelsea the cat sits on the right of every pair: the model's evidence for a cat is
# strong, so it tends to predict a cat class for the pair, and the true-class (left) and
# predicted-class (right) Score-CAM regions fall on different halves. Single photos are not
# used: a lone object's two maps overlap, and the paper keeps only non-intersecting regions.
DEMO_IMAGES: tuple[DemoImage, ...] = (
    DemoImage("pair_moped_cat.png", ("skimage:data/motorcycle_left.png", "skimage:data/chelsea.png"), 665, "moped"),
    DemoImage("pair_rocket_cat.png", ("skimage:data/rocket.jpg", "skimage:data/chelsea.png"), 657, "missile"),
    DemoImage("pair_espresso_cat.png", ("skimage:data/coffee.png", "skimage:data/chelsea.png"), 967, "espresso"),
    DemoImage("pair_tripod_cat.png", ("skimage:data/camera.png", "skimage:data/chelsea.png"), 872, "tripod"),
    DemoImage("pair_clock_cat.png", ("skimage:data/clock_motion.png", "skimage:data/chelsea.png"), 892, "wall_clock"),
    DemoImage("pair_palace_cat.png", ("sklearn:datasets/images/china.jpg", "skimage:data/chelsea.png"), 698, "palace"),
    DemoImage("pair_scooter_cat.png", ("skimage:data/motorcycle_right.png", "skimage:data/chelsea.png"), 670, "motor_scooter"),
)

SIDE = 256  # each demo image is SIDE x SIDE: the model's resize-256 / center-crop-224 keeps both halves


def shipped_photo(spec: str) -> Path:
    """Return the file of a photo shipped inside an installed package ("package:relative/path")."""
    import importlib

    package, rel = spec.split(":", 1)
    root = Path(importlib.import_module(package).__file__).parent
    path = root / rel
    if not path.is_file():
        raise FileNotFoundError(f"shipped photo {spec} not found at {path}: is {package} installed?")
    return path


def _fit(photo: Path, width: int, height: int):
    """Center-crop a photo to the aspect of width x height and resize it there."""
    from PIL import Image, ImageOps

    with Image.open(photo) as im:
        return ImageOps.fit(im.convert("RGB"), (width, height), Image.Resampling.LANCZOS)


def build_demo_dataset(folder: Path) -> Path:
    """Write the embedded dataset (PNG images + labels.csv) into `folder`; return the labels file."""
    from PIL import Image

    images = folder / "images"
    images.mkdir(parents=True, exist_ok=True)
    for spec in DEMO_IMAGES:
        target = images / spec.file
        if target.is_file():
            continue
        canvas = Image.new("RGB", (SIDE, SIDE))
        width = SIDE // len(spec.photos)
        for i, photo in enumerate(spec.photos):
            canvas.paste(_fit(shipped_photo(photo), width, SIDE), (i * width, 0))
        with atomic_path(target) as tmp:
            canvas.save(tmp, format="PNG")
    labels = folder / "labels.csv"
    with open(labels, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["file", "class_index", "name"])
        for spec in DEMO_IMAGES:
            writer.writerow([f"images/{spec.file}", spec.class_index, spec.name])
    return labels


def _template(name: str) -> str:
    return (Path(__file__).parent / name).read_text(encoding="utf-8")


def _admin_password(folder: Path) -> str:
    """The admin password: $SPADE_STUDY_ADMIN_PASSWORD, else one generated once and kept beside the demo."""
    env = os.environ.get("SPADE_STUDY_ADMIN_PASSWORD")
    if env:
        return env
    path = folder / "admin_password.txt"
    if not path.is_file():
        path.write_text(secrets.token_urlsafe(12) + "\n", encoding="utf-8")
        path.chmod(0o600)
    return path.read_text(encoding="utf-8").strip()


def build(folder: Path, device: str | None = None) -> Path:
    """Build (or resume) the demo bundle under `folder`; return the bundle folder."""
    from generation.cli import main as generate_main

    folder.mkdir(parents=True, exist_ok=True)
    build_demo_dataset(folder / "dataset")
    config = folder / "generate.toml"
    config.write_text(_template("demo_generate.toml"), encoding="utf-8")
    bundle = folder / "bundle"
    argv = [str(config), "--out", str(bundle)] + (["--device", device] if device else [])
    rc = generate_main(argv)
    if rc != 0:
        raise SystemExit(rc)
    return bundle


def main(argv: list[str]) -> int:
    """Entry point of `spade-study demo`."""
    p = argparse.ArgumentParser(prog="spade-study demo", description=__doc__.splitlines()[0])
    p.add_argument("--dir", type=Path, default=DEFAULT_DIR, help=f"where the demo lives (default {DEFAULT_DIR})")
    p.add_argument("--no-serve", action="store_true", help="build the study, do not serve it")
    p.add_argument("--port", type=int, default=PORT, help=f"port of the app (default {PORT})")
    p.add_argument("--device", default=None, help="torch device for generation (default: cuda if present, else cpu)")
    args = p.parse_args(argv)
    folder = args.dir.resolve()
    bundle = build(folder, args.device)
    from contracts.manifest import load_manifest

    n_items = len(load_manifest(bundle, check_files=False)["items"])
    print(f"demo study: {n_items} items in {bundle}")
    if args.no_serve:
        return 0

    from study.cli import raters_main, serve_main

    db = folder / "study.db"
    study_config = folder / "study.toml"
    study_config.write_text(_template("demo_study.toml"), encoding="utf-8")
    base_url = f"http://localhost:{args.port}/"
    invites = folder / "invite_links.txt"
    if not invites.is_file():
        # One ready invite link; `spade-study raters invite` makes more.
        import contextlib
        import io

        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            rc = raters_main(["invite", "--db", str(db), "--n", "1", "--base-url", base_url])
        if rc != 0:
            return rc
        invites.write_text(buf.getvalue(), encoding="utf-8")
    os.environ["SPADE_STUDY_ADMIN_PASSWORD"] = _admin_password(folder)
    print("invite link (open it in a browser to rate):")
    print("  " + invites.read_text(encoding="utf-8").strip().replace("\n", "\n  "))
    print(f"admin page: {base_url}?page=admin  (password in {folder / 'admin_password.txt'} "
          "or $SPADE_STUDY_ADMIN_PASSWORD)")
    print(f"more raters: spade-study raters invite --db {db} --n 24 --base-url {base_url}")
    sys.stdout.flush()
    return serve_main([str(bundle), "--db", str(db), "--port", str(args.port), "--config", str(study_config)])
