"""Image corruptions after Hendrycks & Dietterich (2019), "Benchmarking Neural Network Robustness to Common
Corruptions and Perturbations" (ImageNet-C), for measuring accuracy under shift on the device side too.

Six of their fifteen corruptions, with the five severities of their ``make_imagenet_c.py`` parameter tables:

=================  =====================================  ======================================================
name               severity 1..5                          what it does
=================  =====================================  ======================================================
gaussian_noise     c = .08 .12 .18 .26 .38                x + N(0, c) on the 0..1 scale, clipped
gaussian_blur      sigma = 1 2 3 4 6 (at 224 px)          Gaussian blur, edge pixels repeated
jpeg               quality = 25 18 15 10 7                JPEG encode and decode (Pillow, 4:2:0 as Pillow does)
brightness         c = .1 .2 .3 .4 .5                     HSV value + c, clipped (hue, saturation kept)
contrast           c = .4 .3 .2 .1 .05                    (x - per-channel image mean) * c + mean
pixelate           c = .6 .5 .4 .3 .25                    BOX resize to c x the size and back
=================  =====================================  ======================================================

Image size. ImageNet-C's images are 224 px; ours may be 8-px digits or 96-px
photos. The only size-dependent parameter is the blur's sigma, given in pixels of
a 224-px image: it is scaled to ``sigma * min(H, W) / 224``, so it blurs the
same fraction of the image at every size (the damage a 224-px image blurred by
sigma would show once shrunk to H x W). Sub-pixel sigmas (small images) stay
meaningful because the blur is three extended box filters per axis whose
variance is exactly sigma^2 (Pillow's GaussianBlur method), where a kernel
sampled at pixel centres would round a 0.2-px sigma to no blur at all. Pixelate's c already is a fraction of the side
(``max(1, int(side * c))`` per axis); noise, brightness and contrast act per
pixel or per image and need no scaling.

Everything is numpy, vectorised over the batch, single-threaded (running sums
and table lookups, no BLAS: the eval workers already use every core), except ``jpeg``, which needs Pillow (one encode and
decode per image; a :class:`DependencyMissing` error says so when Pillow is not
installed). Results are deterministic: ``gaussian_noise`` draws image ``i``'s
noise from ``(seed, index + i)``, so a batch split into shards (``index`` = the
shard's first image) gets the same noise as the whole batch.
"""
from __future__ import annotations

import io
import math
from typing import Any, Sequence

import numpy as np

from edgecls.runtime.errors import DependencyMissing, UsageError

CORRUPTIONS = ("gaussian_noise", "gaussian_blur", "jpeg", "brightness", "contrast", "pixelate")
SEVERITIES = (1, 2, 3, 4, 5)
DEFAULT_SEVERITIES = (1, 3, 5)  # light, middle and heavy damage: what eval and bench use unless told
REFERENCE_SIZE = 224  # ImageNet-C's image side: the blur's sigma is in its pixels

PARAMETERS: dict[str, tuple[float, ...]] = {
    "gaussian_noise": (0.08, 0.12, 0.18, 0.26, 0.38),
    "gaussian_blur": (1, 2, 3, 4, 6),
    "jpeg": (25, 18, 15, 10, 7),
    "brightness": (0.1, 0.2, 0.3, 0.4, 0.5),
    "contrast": (0.4, 0.3, 0.2, 0.1, 0.05),
    "pixelate": (0.6, 0.5, 0.4, 0.3, 0.25),
}


def parse_corruptions(text: Any) -> tuple[str, ...]:
    """'gaussian_noise,jpeg' (or a sequence; 'all' for every one) -> names in the given order, no repeats."""
    items = _items(text)
    if items == ["all"]:
        return CORRUPTIONS
    unknown = [n for n in items if n not in CORRUPTIONS]
    if unknown or not items:
        what = f"unknown corruption {unknown[0]!r}" if unknown else "no corruption named"
        raise UsageError(f"--corruptions: {what}; choose from {', '.join(CORRUPTIONS)} (or all)")
    return tuple(dict.fromkeys(items))


def parse_severities(text: Any) -> tuple[int, ...]:
    """'1,3,5' (or a sequence of ints) -> sorted severities without repeats, each 1..5."""
    items = _items(text)
    values = []
    for item in items:
        value = int(item) if item.lstrip("+-").isdigit() else None
        if value not in SEVERITIES:
            raise UsageError(f"--severities: {item!r} is not a severity; give whole numbers from 1 to 5, "
                             "e.g. 1,3,5")
        values.append(value)
    if not values:
        raise UsageError("--severities: no severity given; give whole numbers from 1 to 5, e.g. 1,3,5")
    return tuple(sorted(set(values)))


def check_available(names: Sequence[str]) -> None:
    """DependencyMissing now, before any work, when a corruption needs Pillow and it is not installed."""
    if "jpeg" in names:
        from edgecls.runtime.image import has_pillow

        if not has_pillow():
            raise DependencyMissing(_NO_PILLOW)


_NO_PILLOW = "the jpeg corruption needs Pillow (pip install Pillow); the other corruptions need only numpy"


def _items(text: Any) -> list[str]:
    if isinstance(text, (list, tuple)):
        return [str(t).strip() for t in text if str(t).strip()]
    return [t.strip() for t in str(text or "").split(",") if t.strip()]


def corrupt(pixels: np.ndarray, name: str, severity: int, *, seed: int = 0, index: int = 0) -> np.ndarray:
    """``pixels`` (uint8 (H, W, C) or (N, H, W, C)) with corruption ``name`` at ``severity`` 1..5; same shape.

    ``seed`` and ``index`` (the batch's first image's position in the whole set) fix the random noise.
    """
    if name not in CORRUPTIONS:
        raise UsageError(f"unknown corruption {name!r}; choose from {', '.join(CORRUPTIONS)}")
    if isinstance(severity, bool) or severity not in SEVERITIES:
        raise UsageError(f"severity must be a whole number from 1 to 5, got {severity!r}")
    arr = np.asarray(pixels)
    if arr.dtype != np.uint8 or arr.ndim not in (3, 4):
        raise UsageError(f"corrupt() takes uint8 (H, W, C) or (N, H, W, C) pixels, got {arr.dtype} {arr.shape}")
    batch = arr if arr.ndim == 4 else arr[None]
    c = PARAMETERS[name][severity - 1]
    if len(batch) == 0:
        out = batch.copy()
    elif name == "gaussian_noise":
        out = _noise(batch, c, seed, index)
    elif name == "gaussian_blur":
        out = _blur(batch, c * min(batch.shape[1:3]) / REFERENCE_SIZE)
    elif name == "jpeg":
        out = _jpeg(batch, int(c))
    elif name == "brightness":
        out = _brightness(batch, c)
    elif name == "contrast":
        mean = batch.mean(axis=(1, 2), keepdims=True, dtype=np.float64).astype(np.float32)
        x = batch.astype(np.float32)
        x *= np.float32(c)
        x += mean * np.float32(1 - c)  # (x - mean) c + mean: between x and the mean, so in 0..255
        out = np.rint(x, out=x).astype(np.uint8)
    else:  # pixelate
        out = _pixelate(batch, c)
    return out if arr.ndim == 4 else out[0]


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def _noise(batch: np.ndarray, c: float, seed: int, index: int) -> np.ndarray:
    """x + N(0, 255 c), rounded: the noise is drawn as 16-bit uniforms mapped through N's quantiles (65536 levels,
    |z| <= 4.3), rounded to whole levels first, which changes no sum but makes the addition integer arithmetic."""
    table = _noise_table(float(c))
    out = np.empty(batch.shape, np.uint8)
    for i, img in enumerate(batch):  # one generator per image: the same noise however the set is sharded
        rng = np.random.default_rng([int(seed), int(index) + i])
        noisy = table[rng.integers(0, 1 << 16, size=img.shape, dtype=np.uint16)]
        noisy += img
        np.clip(noisy, 0, 255, out=noisy)
        out[i] = noisy
    return out


_quantiles: list[np.ndarray] = []


def _noise_table(c: float) -> np.ndarray:
    """int16 (65536,): round(255 c z) for z the normal quantile at each 16-bit level's centre."""
    if not _quantiles:
        from statistics import NormalDist

        inv = NormalDist().inv_cdf
        _quantiles.append(np.array([inv((i + 0.5) / (1 << 16)) for i in range(1 << 16)]))
    return np.rint(255.0 * c * _quantiles[0]).astype(np.int16)


def _blur(batch: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of standard deviation ``sigma`` px along H and W, edges repeated.

    Three extended box filters per axis (Gwosdek et al. 2011, the method of Pillow's
    GaussianBlur): their variance is exactly sigma^2 for any sigma, sub-pixel ones
    included, and each costs a running sum whatever sigma is. Numpy only and no BLAS:
    matrix products would be threaded by OpenBLAS, which the eval workers (one per
    core, each running an interpreter) would oversubscribe.
    """
    x = batch.astype(np.float32)
    if sigma > 0:
        var = sigma * sigma / 3  # per pass
        length = math.sqrt(12 * var + 1)
        l = int(math.floor((length - 1) / 2))
        alpha = (2 * l + 1) * (l * (l + 1) - 3 * var) / (6 * (var - (l + 1) ** 2))
        for axis in (1, 2):
            n = x.shape[axis]
            # Edges repeated once, out to what three passes reach: the blur of the edge-extended image.
            x = np.take(x, np.clip(np.arange(-3 * (l + 1), n + 3 * (l + 1)), 0, n - 1), axis=axis)
            for _ in range(3):
                x = _extended_box(x, axis, l, alpha)
    return _to_uint8(x)


def _extended_box(p: np.ndarray, axis: int, l: int, alpha: float) -> np.ndarray:
    """Sum over [i - l, i + l] plus ``alpha`` times the two next values, normalised ("valid": 2l + 2 shorter)."""
    n = p.shape[axis] - 2 * (l + 1)

    def part(start: int, arr: np.ndarray) -> np.ndarray:
        return arr[(slice(None),) * axis + (slice(start, start + n),)]

    if 2 * l + 1 <= 8:  # a few shifted sums beat a running sum (numpy's cumsum is slow)
        out = part(1, p).copy()
        for k in range(2, 2 * l + 2):
            out += part(k, p)
    else:
        shape = list(p.shape)
        shape[axis] += 1
        csum = np.zeros(shape, np.float32)
        np.cumsum(p, axis=axis, dtype=np.float32, out=csum[(slice(None),) * axis + (slice(1, None),)])
        out = part(2 * l + 2, csum) - part(1, csum)  # p[i + 1 .. i + 2l + 1]
    if alpha:
        edge = part(0, p) + part(2 * l + 2, p)
        edge *= np.float32(alpha)
        out += edge
    out *= np.float32(1 / (2 * l + 1 + 2 * alpha))
    return out


def _pixelate(batch: np.ndarray, c: float) -> np.ndarray:
    """ImageNet-C's pixelate: Pillow's BOX resize to ``c`` x the size, then BOX back up (numpy, no BLAS).

    BOX down-sampling averages the source pixels whose centres fall in each target pixel (a contiguous range:
    running sums); BOX up-sampling picks the one source pixel under each target pixel's centre.
    """
    x = batch
    for axis in (1, 2):
        n = x.shape[axis]
        small = max(1, int(n * c))
        lo, hi = _box_ranges(small, n)
        csum = np.cumsum(x, axis=axis, dtype=np.int32)
        csum = np.concatenate([np.zeros_like(np.take(csum, [0], axis=axis)), csum], axis=axis)
        down = (np.take(csum, hi, axis=axis) - np.take(csum, lo, axis=axis)).astype(np.float32)
        shape = [1] * x.ndim
        shape[axis] = small
        down /= (hi - lo).astype(np.float32).reshape(shape)
        up, _ = _box_ranges(n, small)  # one source pixel each
        x = np.take(_to_uint8(down), up, axis=axis)
    return x


def _box_ranges(n_out: int, n_in: int) -> tuple[np.ndarray, np.ndarray]:
    """[lo, hi) of the source pixels each target pixel of Pillow's BOX resampling averages, along one axis."""
    scale = n_in / n_out
    support = 0.5 * max(scale, 1.0)
    centers = (np.arange(n_out) + 0.5) * scale
    lo = np.maximum((centers - support + 0.5).astype(int), 0)  # Pillow's window, then its box test in it
    hi = np.minimum((centers + support + 0.5).astype(int), n_in)
    src = np.arange(n_in)[None]
    u = (src + 0.5 - centers[:, None]) / max(scale, 1.0)
    inside = (src >= lo[:, None]) & (src < hi[:, None]) & (u > -0.5) & (u <= 0.5)
    first = inside.argmax(axis=1)
    return first, first + np.maximum(inside.sum(axis=1), 1)


def _brightness(batch: np.ndarray, c: float) -> np.ndarray:
    """HSV value + c: V is the largest channel, so every channel scales by V'/V (black becomes grey c).

    The answer depends only on (V, x): one 256 x 256 table, one lookup per value."""
    v = np.arange(256, dtype=np.float64)[:, None] / 255.0
    x = np.arange(256, dtype=np.float64)[None] / 255.0
    v_new = np.minimum(v + c, 1.0)
    scaled = np.where(v > 0, x * v_new / np.maximum(v, 1e-12), v_new)
    table = np.clip(np.rint(scaled * 255.0), 0, 255).astype(np.uint8)  # table[V, x]
    v = batch[..., :1].copy()
    for k in range(1, batch.shape[-1]):
        np.maximum(v, batch[..., k:k + 1], out=v)
    index = np.left_shift(v, 8, dtype=np.uint16) | batch
    return table.ravel().take(index)


def _jpeg(batch: np.ndarray, quality: int) -> np.ndarray:
    try:
        from PIL import Image
    except ImportError:
        raise DependencyMissing(_NO_PILLOW) from None
    out = np.empty_like(batch)
    gray = batch.shape[-1] == 1
    for i, img in enumerate(batch):
        buf = io.BytesIO()
        Image.fromarray(img[..., 0] if gray else img).save(buf, format="JPEG", quality=quality)
        buf.seek(0)
        with Image.open(buf) as dec:
            arr = np.asarray(dec.convert("L" if gray else "RGB"))
        out[i] = arr[..., None] if gray else arr
    return out
