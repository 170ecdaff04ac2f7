"""Procedural labelled images of shapes (numpy + Pillow only).

Each image is one filled shape on a textured background. Position, size,
rotation, aspect, colours, background gradient and pixel noise are random,
and the shape colour is only guaranteed to differ from the background by a
modest margin, so a classifier has to learn shape, not colour or placement.
The same ``seed`` always gives the same images, bit for bit.

With ``details=True`` each image also comes with its object box and
attributes (colour, size, background), read off what was drawn: asking for
them draws no extra random numbers, so the images stay the same.
"""
from __future__ import annotations

import colorsys
import math
from typing import Callable, Sequence

import numpy as np
from PIL import Image, ImageDraw

_SUPERSAMPLE = 4  # masks are drawn this much larger, then averaged down: smooth edges at any size


def _regular(n: int, phase: float = 0.0) -> np.ndarray:
    a = phase + 2 * math.pi * np.arange(n) / n
    return np.stack([np.cos(a), np.sin(a)], axis=1)


def _star(points: int = 5, inner: float = 0.42) -> np.ndarray:
    outer = _regular(2 * points, -math.pi / 2)
    radius = np.where(np.arange(2 * points) % 2 == 0, 1.0, inner)
    return outer * radius[:, None]


def _cross(arm: float = 0.34) -> np.ndarray:
    a = arm
    return np.array([(-a, -1), (a, -1), (a, -a), (1, -a), (1, a), (a, a),
                     (a, 1), (-a, 1), (-a, a), (-1, a), (-1, -a), (-a, -a)], dtype=float)


# Each shape: rng -> list of (polygon in unit coordinates, fill 1 or 0).
# Polygons are later rotated, scaled and placed; fill 0 cuts a hole.
_CIRCLE = _regular(96)
SHAPES: dict[str, Callable[[np.random.Generator], list[tuple[np.ndarray, int]]]] = {
    "circle": lambda rng: [(_CIRCLE, 1)],
    "ellipse": lambda rng: [(_CIRCLE * [1.0, rng.uniform(0.45, 0.7)], 1)],
    "square": lambda rng: [(_regular(4, math.pi / 4) * math.sqrt(0.5) * 1.25, 1)],
    "triangle": lambda rng: [(_regular(3, -math.pi / 2) * 1.1, 1)],
    "pentagon": lambda rng: [(_regular(5, -math.pi / 2), 1)],
    "hexagon": lambda rng: [(_regular(6), 1)],
    "star": lambda rng: [(_star(5, rng.uniform(0.38, 0.5)), 1)],
    "cross": lambda rng: [(_cross(rng.uniform(0.26, 0.38)), 1)],
    "ring": lambda rng: [(_CIRCLE, 1), (_CIRCLE * rng.uniform(0.45, 0.65), 0)],
}


_RADIUS = (0.2, 0.42)  # shape radius, as a fraction of the image side
SIZES = ("small", "medium", "large")  # terciles of _RADIUS
# Hue names by the upper end (degrees) of their sector of the colour wheel.
_HUES = ((15, "red"), (45, "orange"), (70, "yellow"), (160, "green"), (200, "cyan"), (260, "blue"),
         (290, "purple"), (335, "pink"), (360, "red"))
COLOURS = ("red", "orange", "yellow", "green", "cyan", "blue", "purple", "pink", "gray")
BACKGROUNDS = ("light", "dark")
_GRAY_SATURATION = 0.25  # below this (HSV saturation of the fill), a colour is called gray


def _mask(rng: np.random.Generator, shape: str, size: int) -> tuple[np.ndarray, float]:
    """Anti-aliased float mask in [0, 1] of one randomly placed shape, and its radius fraction."""
    big = size * _SUPERSAMPLE
    fraction = rng.uniform(*_RADIUS)
    radius = fraction * size
    margin = radius * 0.9  # may touch the border, never mostly leave the image
    cx, cy = rng.uniform(margin, size - margin, 2)
    angle = rng.uniform(0, 2 * math.pi)
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    canvas = Image.new("L", (big, big), 0)
    draw = ImageDraw.Draw(canvas)
    for poly, fill in SHAPES[shape](rng):
        pts = (poly @ rot.T * radius + (cx, cy)) * _SUPERSAMPLE
        draw.polygon([tuple(p) for p in pts], fill=255 * fill)
    small = canvas.resize((size, size), Image.Resampling.BOX)
    return np.asarray(small, dtype=np.float32) / 255.0, float(fraction)


def colour_name(rgb: np.ndarray) -> str:
    """Hue name of an RGB colour (0-255); "gray" when its saturation is low."""
    h, s, _ = colorsys.rgb_to_hsv(*(float(c) / 255.0 for c in rgb))
    if s < _GRAY_SATURATION:
        return "gray"
    degrees = h * 360.0
    return next(name for upper, name in _HUES if degrees < upper)


def _box(mask: np.ndarray) -> np.ndarray:
    """[x0, y0, x1, y1] of the pixels more than half covered, as fractions of the side."""
    inside = mask > 0.5
    if not inside.any():  # not reachable with the radii drawn, but a box must exist
        inside = mask > 0
    rows = np.flatnonzero(inside.any(axis=1))
    cols = np.flatnonzero(inside.any(axis=0))
    h, w = mask.shape
    return np.array([cols[0] / w, rows[0] / h, (cols[-1] + 1) / w, (rows[-1] + 1) / h], dtype=np.float32)


def _colours(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two background colours (for a gradient) and a shape colour that stands out a little."""
    bg_a = rng.uniform(0, 255, 3)
    bg_b = np.clip(bg_a + rng.normal(0, 40, 3), 0, 255)
    for _ in range(100):
        fg = rng.uniform(0, 255, 3)
        if np.linalg.norm(fg - (bg_a + bg_b) / 2) > 90:
            break
    return bg_a, bg_b, fg


def _clutter(rng: np.random.Generator, background: np.ndarray) -> np.ndarray:
    """Up to three thin random lines behind the shape: edges that are not the shape's."""
    n = int(rng.integers(0, 4))
    if n == 0:
        return background
    size = background.shape[0]
    canvas = Image.fromarray(np.clip(background + 0.5, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    for _ in range(n):
        xy = [tuple(p) for p in rng.uniform(0, size, (2, 2))]
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        draw.line(xy, fill=colour, width=max(1, size // 64))
    return np.asarray(canvas, dtype=np.float64)


def _render(rng: np.random.Generator, shape: str, size: int) -> tuple[np.ndarray, dict]:
    """One image, and what was drawn: box, colour, size and background (no random draws for those)."""
    bg_a, bg_b, fg = _colours(rng)
    # Linear background gradient in a random direction.
    t = rng.uniform(0, 2 * math.pi)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / max(size - 1, 1)
    ramp = (np.cos(t) * xx + np.sin(t) * yy)
    ramp = (ramp - ramp.min()) / max(float(ramp.max() - ramp.min()), 1e-6)
    background = bg_a + ramp[..., None] * (bg_b - bg_a)
    background = _clutter(rng, background)
    # Slight shading across the shape, so its fill is not one flat colour.
    shade = 1.0 + rng.uniform(-0.15, 0.15) * (ramp[..., None] - 0.5)
    mask2d, radius = _mask(rng, shape, size)
    mask = mask2d[..., None]
    img = background * (1 - mask) + np.clip(fg * shade, 0, 255) * mask
    img = img + rng.normal(0, rng.uniform(2, 14), img.shape)
    tercile = min(int(3 * (radius - _RADIUS[0]) / (_RADIUS[1] - _RADIUS[0])), 2)
    luma = float(np.mean(background @ np.array([0.299, 0.587, 0.114])))  # ITU-R BT.601
    info = {"box": _box(mask2d), "colour": colour_name(fg), "size": SIZES[tercile],
            "background": "light" if luma >= 127.5 else "dark"}
    return np.clip(img + 0.5, 0, 255).astype(np.uint8), info


def generate_shapes(*, image_size: int = 64, classes: Sequence[str] = ("circle", "square", "triangle"),
                    count: int = 300, seed: int = 0, details: bool = False) -> tuple:
    """``count`` RGB images (uint8, (count, S, S, 3)) and int64 labels (index into ``classes``).

    Classes are balanced (counts differ by at most one) and interleaved in
    order; raises ValueError for an unknown shape, a repeated one or bad sizes.

    With ``details`` returns ``(images, labels, details)``, details being
    {"boxes": float32 (N, 4) [x0, y0, x1, y1] fractions of the side (the box of
    the pixels the shape covers more than half), "shape", "colour" (hue name of
    the fill, or "gray"), "size" (tercile of the radius: small/medium/large),
    "background" ("light"/"dark" by mean luminance)}: str arrays, one per image.
    The images are the same as without ``details``.
    """
    unknown = [c for c in classes if c not in SHAPES]
    if unknown:
        raise ValueError(f"unknown shape(s) {unknown}; supported: {sorted(SHAPES)}")
    if len(set(classes)) != len(classes) or len(classes) < 2:
        raise ValueError(f"classes must name at least 2 different shapes, got {list(classes)}")
    if image_size < 8:
        raise ValueError(f"image_size must be at least 8, got {image_size}")
    if count < len(classes):
        raise ValueError(f"count must be at least the number of classes ({len(classes)}), got {count}")
    rng = np.random.default_rng(seed)
    labels = np.arange(count, dtype=np.int64) % len(classes)
    images = np.empty((count, image_size, image_size, 3), dtype=np.uint8)
    infos = []
    for i, label in enumerate(labels):
        images[i], info = _render(rng, classes[label], image_size)
        infos.append(info)
    if not details:
        return images, labels
    out = {"boxes": np.stack([info["box"] for info in infos]).astype(np.float32),
           "shape": np.array([classes[label] for label in labels], dtype=str)}
    for key in ("colour", "size", "background"):
        out[key] = np.array([info[key] for info in infos], dtype=str)
    return images, labels, out
