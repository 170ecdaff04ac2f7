"""Input quantization, output dequantization and pixel preparation: the one definition, as TFLite computes them.

Everything that feeds a .tflite model (the :class:`~edgecls.runtime.runner.Runner`,
the :class:`~edgecls.runtime.classifier.Classifier`, export's parity check,
``eval`` on a device) goes through these functions, so a number measured on the
host is the number the shipped runtime gives.

TFLite's reference QUANTIZE kernel (also TFLite Micro's) computes
``round(x / scale) + zero_point`` in float32, rounding half away from zero
(``TfLiteRound``, i.e. ``std::round``), then clamps to the type's range; that
is the rule here (``np.round`` would round half to even: 2 for 2.5, not 3).
Measured with ai-edge-litert 2.x on x86: XNNPACK and the vectorized part of
the builtin CPU kernel round exact ties to even instead, so a value exactly
halfway between two steps can differ by one step from a float-input model's
own QUANTIZE op there. Only exact ties differ; the rule here is the reference's.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np


def round_half_away(x: np.ndarray) -> np.ndarray:
    """Round to the nearest integer, halves away from zero (TFLite's rounding), keeping the dtype."""
    x = np.asarray(x)
    whole = np.trunc(x)
    # Exact: x - trunc(x) has no rounding error, where floor(|x| + 0.5) rounds 0.49999997 up to 1.
    return np.where(np.abs(x - whole) == 0.5, whole + np.sign(x), np.rint(x))


def quantize(x: np.ndarray, dtype: np.dtype | type, scale: float, zero_point: int) -> np.ndarray:
    """Real values to a tensor of ``dtype``: TFLite's affine quantization; a float dtype (or scale 0) just casts."""
    dtype = np.dtype(dtype)
    x = np.asarray(x, dtype=np.float32)
    if dtype.kind == "f" or scale == 0.0:
        return x.astype(dtype, copy=False)
    lim = np.iinfo(dtype)
    q = round_half_away(x / np.float32(scale)) + np.float32(zero_point)
    return np.clip(q, lim.min, lim.max).astype(dtype)


def dequantize(raw: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """A tensor's values as float32: ``(raw - zero_point) * scale`` when quantized (scale != 0), else a cast."""
    raw = np.asarray(raw)
    if scale == 0.0 or raw.dtype.kind == "f":
        return raw.astype(np.float32, copy=False)
    return (raw.astype(np.float32) - np.float32(zero_point)) * np.float32(scale)


def pixel_table(mean: Sequence[float], std: Sequence[float], dtype: np.dtype | type, scale: float,
                zero_point: int) -> np.ndarray:
    """(C, 256) table: uint8 pixel value -> what the input tensor takes, per channel.

    ``quantize((pixel - mean) / std)``, computed once in float32 as the formula
    would be, so a lookup gives exactly the formula's values (and costs one
    ``take`` per pixel instead of float arithmetic on every image).
    """
    v = np.arange(256, dtype=np.float32)
    m = np.asarray(mean, np.float32)[:, None]
    s = np.asarray(std, np.float32)[:, None]
    return np.ascontiguousarray(quantize((v[None, :] - m) / s, dtype, scale, zero_point))


def prepare_pixels(table: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """uint8 pixels (..., H, W, C) at the model's size to the input tensor's values, through a :func:`pixel_table`."""
    pixels = np.asarray(pixels)
    if pixels.dtype != np.uint8:
        raise TypeError(f"pixels must be uint8, got {pixels.dtype}")
    if table.shape[0] == 1 or (table == table[0]).all():
        return table[0].take(pixels)
    out = np.empty(pixels.shape, table.dtype)
    for c in range(table.shape[0]):
        table[c].take(pixels[..., c], out=out[..., c])
    return out
