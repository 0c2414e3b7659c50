"""What a rater sees of one task, drawn with Pillow: the photo with regions A and B outlined and labelled, and the two crops.

Class names never reach this module: it gets pixels and boxes only.
"""
from __future__ import annotations

import io
from functools import lru_cache
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

# Blue and orange stay distinguishable for the common colour-vision deficiencies.
SIDE_COLOURS = {"A": (31, 119, 255), "B": (255, 127, 14)}
DISPLAY_SIZE = 448  # the photo is shown at twice the model's 224 px input
MIN_LABEL_CONTRAST = 4.5  # WCAG AA for normal text
JPEG_QUALITY = 92  # photos: a tenth of the PNG bytes, no visible loss at this size


def relative_luminance(rgb: tuple[int, int, int]) -> float:
    """WCAG 2 relative luminance of an sRGB colour."""
    def lin(c: int) -> float:
        v = c / 255
        return v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4

    r, g, b = (lin(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast_ratio(fg: tuple[int, int, int], bg: tuple[int, int, int]) -> float:
    """WCAG 2 contrast ratio of two colours (1 to 21)."""
    hi, lo = sorted((relative_luminance(fg), relative_luminance(bg)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def label_text_colour(bg: tuple[int, int, int]) -> tuple[int, int, int]:
    """Black or white, whichever reads better on `bg` (white on this orange is only 2.5:1)."""
    black, white = (0, 0, 0), (255, 255, 255)
    return black if contrast_ratio(black, bg) >= contrast_ratio(white, bg) else white


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
        draw.text((tx0 + pad - tb[0], ty0 + pad - tb[1]), side, fill=label_text_colour(colour), font=font)
    return out


def catch_visualization(image: Image.Image, box: list[int], size: int = 224) -> Image.Image:
    """A catch trial's stand-in visualization: a square around the correct region, at a visualization's
    size (224 x 224), so that its frame, size and place match a real visualization's (a bare crop of a
    non-square region gave catch trials away)."""
    x0, y0, x1, y1 = box
    side = min(max(x1 - x0, y1 - y0), image.width, image.height)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    left = int(min(max(0, round(cx - side / 2)), image.width - side))
    top = int(min(max(0, round(cy - side / 2)), image.height - side))
    return image.crop((left, top, left + side, top + side)).resize((size, size), Image.Resampling.LANCZOS)


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
        vis = catch_visualization(image, box_a if correct == "A" else box_b)
    else:
        vis = load_rgb(visualization_path)
    return {
        "visualization": vis,
        "photo": draw_regions(image, box_a, box_b),
        "crop_a": framed(crop_region(image, box_a), "A"),
        "crop_b": framed(crop_region(image, box_b), "B"),
    }


def jpeg_bytes(image: Image.Image, quality: int = JPEG_QUALITY) -> bytes:
    """Encode a picture as JPEG bytes (what the page sends; st.image would re-encode a PIL image on every rerun)."""
    buf = io.BytesIO()
    image.convert("RGB").save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def picture_size(data: bytes) -> tuple[int, int]:
    """(width, height) of encoded picture bytes (reads the header only)."""
    with Image.open(io.BytesIO(data)) as im:
        return im.size


def picture_format(data: bytes) -> str:
    """"PNG" or "JPEG": the format of encoded picture bytes (st.image re-encodes bytes whose format it is not told)."""
    return "PNG" if data[:8] == b"\x89PNG\r\n\x1a\n" else "JPEG"


@lru_cache(maxsize=512)
def _task_picture_bytes(image_path: str, visualization_path: str | None, box_a: tuple, box_b: tuple, correct: str) -> tuple:
    image = load_rgb(image_path)
    pics = {
        "photo": jpeg_bytes(draw_regions(image, list(box_a), list(box_b))),
        "crop_a": jpeg_bytes(framed(crop_region(image, list(box_a)), "A")),
        "crop_b": jpeg_bytes(framed(crop_region(image, list(box_b)), "B")),
    }
    if visualization_path is None:
        # PNG like the bundle's visualizations: a catch trial must not differ even in its file type.
        buf = io.BytesIO()
        catch_visualization(image, list(box_a) if correct == "A" else list(box_b)).save(buf, format="PNG")
        vis = buf.getvalue()
    else:
        # The stimulus itself goes out byte for byte when it is a PNG or JPEG file (no re-encoding).
        raw = Path(visualization_path).read_bytes()
        vis = raw if raw[:8] == b"\x89PNG\r\n\x1a\n" or raw[:3] == b"\xff\xd8\xff" else jpeg_bytes(load_rgb(visualization_path))
    return (("visualization", vis), *pics.items())


def task_picture_bytes(
    image_path: str | Path, visualization_path: str | Path | None, box_a: list[int], box_b: list[int], correct: str
) -> dict[str, bytes]:
    """The four pictures of a task as JPEG bytes, drawn and encoded once per task layout and then cached
    (512 layouts of ~150 kB: at most ~80 MB; many raters see the same tasks)."""
    vis = None if visualization_path is None else str(visualization_path)
    return dict(_task_picture_bytes(str(image_path), vis, tuple(box_a), tuple(box_b), correct))
