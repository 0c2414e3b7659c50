"""Synthetic practice trials and the worked example of the instructions, drawn with Pillow.

Choice (documented in docs/study.md): practice uses synthetic pictures, not bundle
items. A bundle item used for practice would be an image the rater then meets
again in the main tasks (the study never shows an image twice) or an item removed
from the study; and the known answer of a real item is only Score-CAM's opinion,
while a synthetic trial has an unambiguous answer for the feedback. Each synthetic
trial pairs a "visualization" (a repeated texture, as activation-maximizing images
often look) with a photo-like scene holding two textured regions, only one of which
matches the visualization.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from functools import lru_cache

from PIL import Image, ImageDraw, ImageFilter

from contracts.manifest import boxes_intersect

SIZE = 224
PATTERNS = ("stripes", "dots", "checks", "rings", "zigzag", "triangles")
PALETTE = [
    (220, 60, 40),
    (40, 90, 220),
    (240, 190, 30),
    (30, 160, 80),
    (160, 60, 200),
    (20, 180, 190),
]


@dataclass(frozen=True)
class PracticeTrial:
    """One practice picture set with its known answer."""

    index: int
    visualization: Image.Image
    image: Image.Image
    box_a: list[int]
    box_b: list[int]
    correct: str  # "A" or "B"
    explanation: str


def _texture(width: int, height: int, pattern: str, colour: tuple[int, int, int], step: int) -> Image.Image:
    """Return a `width` x `height` tile of one motif (drawn on its own tile so strokes never leave it)."""
    tile = Image.new("RGB", (width, height))
    _paint(ImageDraw.Draw(tile), [0, 0, width, height], pattern, colour, step)
    return tile


def _paint(draw: ImageDraw.ImageDraw, box: list[int], pattern: str, colour: tuple[int, int, int], step: int) -> None:
    x0, y0, x1, y1 = box
    draw.rectangle([x0, y0, x1 - 1, y1 - 1], fill=(245, 245, 240))
    w = max(2, step // 4)
    if pattern == "stripes":
        for k in range(-(y1 - y0), x1 - x0, step):
            draw.line([(x0 + k, y1), (x0 + k + (y1 - y0), y0)], fill=colour, width=w)
    elif pattern == "dots":
        for y in range(y0 + step // 2, y1, step):
            for x in range(x0 + step // 2, x1, step):
                r = step // 3
                draw.ellipse([x - r, y - r, x + r, y + r], fill=colour)
    elif pattern == "checks":
        for j, y in enumerate(range(y0, y1, step)):
            for i, x in enumerate(range(x0, x1, step)):
                if (i + j) % 2 == 0:
                    draw.rectangle([x, y, min(x + step, x1) - 1, min(y + step, y1) - 1], fill=colour)
    elif pattern == "rings":
        cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
        for r in range(step // 2, max(x1 - x0, y1 - y0), step):
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], outline=colour, width=w)
    elif pattern == "zigzag":
        for y in range(y0, y1 + step, step):
            pts = [(x, y + (step // 2 if (x - x0) // step % 2 else 0)) for x in range(x0, x1 + step, step)]
            draw.line(pts, fill=colour, width=w)
    elif pattern == "triangles":
        for y in range(y0, y1, step):
            for x in range(x0, x1, step):
                draw.polygon([(x, y + step - 2), (x + step // 2, y + 2), (x + step - 2, y + step - 2)], fill=colour)
    else:  # pragma: no cover - PATTERNS is closed
        raise ValueError(pattern)


def _box(rng: random.Random, side: str) -> list[int]:
    w, h = rng.randint(60, 84), rng.randint(60, 84)
    x0 = rng.randint(8, SIZE // 2 - w - 4) if side == "left" else rng.randint(SIZE // 2 + 4, SIZE - w - 8)
    y0 = rng.randint(8, SIZE - h - 8)
    return [x0, y0, x0 + w, y0 + h]


@lru_cache(maxsize=64)
def make_trial(index: int, seed: int = 0) -> PracticeTrial:
    """Return practice trial number `index` (deterministic for a given seed; cached, treat as read-only)."""
    rng = random.Random(f"practice:{seed}:{index}")
    target, distractor = rng.sample(PATTERNS, 2)
    c_target, c_distractor = rng.sample(PALETTE, 2)
    step = rng.randint(10, 16)
    # The visualization: the target texture over the whole canvas, warped a little and softened,
    # the way class-neuron visualizations repeat one motif.
    big = _texture(2 * SIZE, 2 * SIZE, target, c_target, 2 * step)
    big = big.rotate(rng.uniform(-20, 20), resample=Image.Resampling.BICUBIC)
    vis = big.crop((SIZE // 2, SIZE // 2, 3 * SIZE // 2, 3 * SIZE // 2)).filter(ImageFilter.GaussianBlur(0.8))
    # The scene: a soft background with two textured regions, one per side.
    img = Image.new("RGB", (SIZE, SIZE))
    d = ImageDraw.Draw(img)
    top, bottom = (rng.randint(120, 200) for _ in range(2))
    for y in range(SIZE):
        t = y / (SIZE - 1)
        v = round(top * (1 - t) + bottom * t)
        d.line([(0, y), (SIZE, y)], fill=(v, min(255, v + 15), max(0, v - 20)))
    for _ in range(12):
        cx, cy, r = rng.randint(0, SIZE), rng.randint(0, SIZE), rng.randint(6, 26)
        g = rng.randint(80, 200)
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=(g, g, g - 10 if g > 10 else g))
    left, right = _box(rng, "left"), _box(rng, "right")
    assert not boxes_intersect(left, right)
    target_left = rng.random() < 0.5
    for box, is_target in ((left, target_left), (right, not target_left)):
        tex = _texture(box[2] - box[0], box[3] - box[1], target if is_target else distractor, c_target if is_target else c_distractor, step)
        img.paste(tex, (box[0], box[1]))
    # A is not always the left region: the label, not the position, carries the answer.
    a_is_left = rng.random() < 0.5
    box_a, box_b = (left, right) if a_is_left else (right, left)
    correct = "A" if a_is_left == target_left else "B"
    other = "B" if correct == "A" else "A"
    explanation = (
        f"The visualization repeats a {target} motif; region {correct} contains that motif, "
        f"region {other} shows {distractor}. The answer is {correct}."
    )
    return PracticeTrial(index, vis, img, box_a, box_b, correct, explanation)


def worked_example(seed: int = 0) -> PracticeTrial:
    """Return the example walked through on the instructions page (never used as a practice trial)."""
    return make_trial(-1, seed)
