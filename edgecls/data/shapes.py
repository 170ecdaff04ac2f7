"""Procedural labelled images of shapes (numpy + Pillow only).

Each image is one filled shape on a textured background. Position, size,
rotation, aspect, colours, background gradient and pixel noise are random,
and the shape colour is only guaranteed to differ from the background by a
modest margin, so a classifier has to learn shape, not colour or placement.
The same ``seed`` always gives the same images, bit for bit.
"""
from __future__ import annotations

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


def _mask(rng: np.random.Generator, shape: str, size: int) -> np.ndarray:
    """Anti-aliased float mask in [0, 1] of one randomly placed shape."""
    big = size * _SUPERSAMPLE
    radius = rng.uniform(0.2, 0.42) * size
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
    return np.asarray(small, dtype=np.float32) / 255.0


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


def _render(rng: np.random.Generator, shape: str, size: int) -> np.ndarray:
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
    mask = _mask(rng, shape, size)[..., None]
    img = background * (1 - mask) + np.clip(fg * shade, 0, 255) * mask
    img = img + rng.normal(0, rng.uniform(2, 14), img.shape)
    return np.clip(img + 0.5, 0, 255).astype(np.uint8)


def generate_shapes(*, image_size: int = 64, classes: Sequence[str] = ("circle", "square", "triangle"),
                    count: int = 300, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``count`` RGB images (uint8, (count, S, S, 3)) and int64 labels (index into ``classes``).

    Classes are balanced (counts differ by at most one) and interleaved in
    order; raises ValueError for an unknown shape, a repeated one or bad sizes.
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
    for i, label in enumerate(labels):
        images[i] = _render(rng, classes[label], image_size)
    return images, labels
