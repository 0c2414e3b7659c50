"""The image folder of a study: which images, their labels, and robust loading.

Two layouts: an ImageNet validation folder (`ROOT/<wnid>/*.JPEG`, class index = position of
the wnid in sorted order, or in a `wnids` file) or any folder plus a labels CSV with the
columns `file,class_index` (and optionally `name`), like `imagenet-sample/labels.csv`.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from generation.errors import GenerationError

IMAGE_EXTENSIONS = frozenset({".jpeg", ".jpg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"})
_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})


class DatasetError(GenerationError):
    """The dataset cannot be used (missing folder, no images, bad labels); one-line message."""


class ImageLoadError(ValueError):
    """One image cannot be read; the message is the reason it is skipped."""


@dataclass(frozen=True)
class Sample:
    """One labelled image: `source` is its path relative to the dataset root (POSIX)."""

    source: str
    path: Path
    class_index: int
    name: str | None = None


@dataclass
class Dataset:
    """The samples of a study, and what is known about class names from the labels."""

    root: Path
    samples: list[Sample]
    layout: str  # "labels" or "imagenet"
    names: dict[int, str] = field(default_factory=dict)
    n_class_folders: int | None = None


def _is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def _read_labels(root: Path, labels: Path) -> tuple[list[Sample], dict[int, str]]:
    if not labels.is_file():
        raise DatasetError(f"labels file not found: {labels}")
    with labels.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        columns = set(reader.fieldnames or [])
        if not {"file", "class_index"} <= columns:
            raise DatasetError(f"{labels}: needs the columns file,class_index (found: {', '.join(sorted(columns)) or 'none'})")
        samples, names = [], {}
        for line, row in enumerate(reader, start=2):
            file, index = (row.get("file") or "").strip(), (row.get("class_index") or "").strip()
            try:
                class_index = int(index)
            except ValueError:
                raise DatasetError(f"{labels}:{line}: class_index {index!r} is not an integer") from None
            if not file or class_index < 0:
                raise DatasetError(f"{labels}:{line}: needs a file name and a class index >= 0")
            name = (row.get("name") or "").strip() or None
            if name:
                names[class_index] = name
            source = Path(file).as_posix()
            samples.append(Sample(source, root / source, class_index, name))
    return samples, names


def _read_imagenet(root: Path, wnids_file: Path | None) -> tuple[list[Sample], int]:
    folders = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        loose = [p for p in root.iterdir() if _is_image(p)]
        hint = " (images found: give [data] labels, a CSV file,class_index)" if loose else ""
        raise DatasetError(f"no images in {root}: expected {root}/<wnid>/*.JPEG or a labels CSV{hint}")
    if wnids_file is not None:
        if not wnids_file.is_file():
            raise DatasetError(f"wnids file not found: {wnids_file}")
        wnids = [w.strip() for w in wnids_file.read_text(encoding="utf-8").splitlines() if w.strip()]
        index = {w: i for i, w in enumerate(wnids)}
        unknown = [f for f in folders if f not in index]
        if unknown:
            raise DatasetError(f"class folder {unknown[0]!r} of {root} is not in the wnids file {wnids_file}")
    else:
        index = {w: i for i, w in enumerate(folders)}
    samples = [
        Sample(f"{wnid}/{p.name}", p, index[wnid])
        for wnid in folders
        for p in sorted((root / wnid).iterdir())
        if _is_image(p)
    ]
    return samples, len(folders)


def load_dataset(root: str | Path, labels: str | Path | None = None, wnids: str | Path | None = None,
                 files: list[str] | None = None, limit: int | None = None) -> Dataset:
    """List the labelled images of a dataset; raise DatasetError with a one-line reason."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"dataset folder not found: {root}")
    names: dict[int, str] = {}
    n_folders = None
    if labels is not None:
        samples, names = _read_labels(root, Path(labels))
        layout = "labels"
    else:
        samples, n_folders = _read_imagenet(root, Path(wnids) if wnids is not None else None)
        layout = "imagenet"
    samples.sort(key=lambda s: s.source)
    if files is not None:
        by_source = {s.source: s for s in samples}
        wanted = [Path(f).as_posix() for f in files]
        missing = [f for f in wanted if f not in by_source]
        if missing:
            raise DatasetError(f"[data] files: {missing[0]!r} is not an image of the dataset {root}")
        samples = [by_source[f] for f in sorted(set(wanted))]
    if limit is not None:
        samples = samples[:limit]
    if not samples:
        raise DatasetError(f"no images in {root}" + (f" (labels: {labels})" if labels else ""))
    return Dataset(root, samples, layout, names, n_folders)


def _to_8bit_rgb(im: Image.Image) -> Image.Image:
    """Any PIL mode to RGB: alpha composited on white, CMYK/grayscale/palette converted, 16-bit scaled."""
    if im.mode in _ALPHA_MODES or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if im.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        # PIL's own conversion clips 16-bit and float images to 0..255; scale them instead
        arr = np.asarray(im, dtype=np.float64)
        hi = arr.max() if arr.size and arr.max() > 0 else 1.0
        return Image.fromarray((arr / hi * 255.0).round().astype(np.uint8)).convert("RGB")
    return im.convert("RGB")


def load_rgb(path: str | Path, min_size: int = 0) -> tuple[Image.Image, list[str]]:
    """Read an image as RGB; return it with notes on conversions; raise ImageLoadError with the reason."""
    path = Path(path)
    notes: list[str] = []
    try:
        with Image.open(path) as im:
            im.load()
            mode, size = im.mode, im.size
            rgb = _to_8bit_rgb(im)
    except FileNotFoundError:
        raise ImageLoadError("file not found") from None
    except Image.DecompressionBombError as exc:
        raise ImageLoadError(f"too large ({exc})") from None
    except (OSError, SyntaxError, ValueError) as exc:  # PIL's errors for unreadable/corrupt files
        raise ImageLoadError(f"unreadable image ({exc.__class__.__name__}: {exc})") from None
    if min(size) == 0:
        raise ImageLoadError(f"empty image ({size[0]}x{size[1]})")
    if mode != "RGB":
        notes.append(f"converted from {mode} to RGB")
    if min(size) < min_size:
        notes.append(f"upscaled from {size[0]}x{size[1]} (smaller than the {min_size} px model input)")
    return rgb, notes
