"""What a rater sees of one task, drawn with Pillow: the photo with regions A and B outlined and labelled, and the two crops.

Class names never reach this module: it gets pixels and boxes only.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

# Blue and orange stay distinguishable for the common colour-vision deficiencies.
SIDE_COLOURS = {"A": (31, 119, 255), "B": (255, 127, 14)}
DISPLAY_SIZE = 448  # the photo is shown at twice the model's 224 px input


@lru_cache(maxsize=256)
def _open_rgb(path: str) -> Image.Image:
    with Image.open(path) as im:
        return im.convert("RGB")


def load_rgb(path: str | Path) -> Image.Image:
    """Open an image file as RGB (cached: the same files are shown to many raters)."""
    return _open_rgb(str(Path(path).resolve())).copy()


def _font(size: int) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def draw_regions(image: Image.Image, box_a: list[int], box_b: list[int], size: int = DISPLAY_SIZE) -> Image.Image:
    """Return the photo enlarged to `size` px wide with both regions outlined and tagged 'A' and 'B'."""
    scale = size / image.width
    out = image.resize((size, round(image.height * scale)), Image.Resampling.LANCZOS)
    draw = ImageDraw.Draw(out)
    width = max(3, size // 150)
    font = _font(max(14, size // 18))
    for side, box in (("A", box_a), ("B", box_b)):
        x0, y0, x1, y1 = (round(v * scale) for v in box)
        colour = SIDE_COLOURS[side]
        draw.rectangle([x0, y0, x1 - 1, y1 - 1], outline=colour, width=width)
        tb = draw.textbbox((0, 0), side, font=font)
        tw, th = tb[2] - tb[0], tb[3] - tb[1]
        pad = max(3, width)
        # The tag sits just inside the box's top-left corner so it never leaves the picture.
        tx0, ty0 = x0, y0
        draw.rectangle([tx0, ty0, tx0 + tw + 2 * pad, ty0 + th + 2 * pad], fill=colour)
        draw.text((tx0 + pad - tb[0], ty0 + pad - tb[1]), side, fill=(255, 255, 255), font=font)
    return out


def crop_region(image: Image.Image, box: list[int], size: int = 200) -> Image.Image:
    """Return one region of the photo, enlarged so its longer side is `size` px."""
    crop = image.crop(tuple(box))
    scale = size / max(crop.size)
    return crop.resize((max(1, round(crop.width * scale)), max(1, round(crop.height * scale))), Image.Resampling.LANCZOS)


def framed(image: Image.Image, side: str, border: int = 6) -> Image.Image:
    """Return a crop with a coloured frame matching its region's outline."""
    out = Image.new("RGB", (image.width + 2 * border, image.height + 2 * border), SIDE_COLOURS[side])
    out.paste(image, (border, border))
    return out


def task_images(
    image_path: str | Path, visualization_path: str | Path | None, box_a: list[int], box_b: list[int], correct: str
) -> dict[str, Image.Image]:
    """Return the four pictures of a task: visualization, photo with regions, crop A, crop B.

    Without a visualization (a catch trial) the correct region's crop takes its place.
    """
    image = load_rgb(image_path)
    if visualization_path is None:
        vis = crop_region(image, box_a if correct == "A" else box_b, 224)
    else:
        vis = load_rgb(visualization_path)
    return {
        "visualization": vis,
        "photo": draw_regions(image, box_a, box_b),
        "crop_a": framed(crop_region(image, box_a), "A"),
        "crop_b": framed(crop_region(image, box_b), "B"),
    }
