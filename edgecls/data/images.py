"""Robust image decoding with Pillow (numpy + Pillow only, no TensorFlow).

Training, evaluation and the on-device runtime all decode through
:func:`load_image` and :func:`resize_image`, so a model sees the same pixels
everywhere. Conversions, in order:

* EXIF orientation is applied (``ImageOps.exif_transpose``): phone photos
  come out upright.
* Only the first frame of an animated image is used.
* 16-bit and 32-bit integer images (modes ``I;16*``, ``I``) are scaled from
  0..65535 to 0..255; float images (``F``) are taken as 0..255 and clipped.
* Transparency (``RGBA``, ``LA``, ``PA``, palette images with a transparent
  colour) is composited **on black**: a transparent pixel becomes 0, the
  same as premultiplied alpha, and the result does not depend on whatever
  colour an editor left under transparent pixels.
* Everything else (palette, CMYK, YCbCr, 1-bit, ...) is converted to RGB, then
  to ``L`` (ITU-R 601-2 luma) when one channel is asked for; grey images are
  repeated to three channels when three are asked for.
"""
from __future__ import annotations

import io
import os
import re
from typing import Union

import numpy as np
from PIL import Image, ImageOps

ImageSource = Union[str, os.PathLike, bytes, Image.Image, np.ndarray]

RESIZE_POLICIES = ("stretch", "crop")


class ImageError(ValueError):
    """An input that is not a decodable image; the message names it and says why."""


def _name(src: object) -> str:
    if isinstance(src, (str, os.PathLike)):
        return os.fspath(src)
    if isinstance(src, bytes):
        return f"<{len(src)} bytes>"
    return f"<{type(src).__name__}>"


def _open(src: ImageSource) -> Image.Image:
    if isinstance(src, (str, os.PathLike)):
        return Image.open(os.fspath(src))
    if isinstance(src, (bytes, bytearray, memoryview)):
        return Image.open(io.BytesIO(bytes(src)))
    raise TypeError(f"cannot decode {type(src).__name__}")


def _from_array(arr: np.ndarray) -> Image.Image:
    """A PIL image from an HW / HWC array (uint8, uint16 or float in 0..1 or 0..255)."""
    arr = np.asarray(arr)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] not in (3, 4)):
        raise ImageError(f"array of shape {arr.shape}: expected (H, W), (H, W, 1), (H, W, 3) or (H, W, 4)")
    if arr.dtype == np.uint16:
        arr = _scale16(arr)
    elif arr.dtype.kind == "f":
        scale = 255.0 if arr.size and float(np.nanmax(arr)) <= 1.0 else 1.0
        arr = np.clip(np.nan_to_num(arr) * scale + 0.5, 0, 255).astype(np.uint8)
    elif arr.dtype != np.uint8:
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    return Image.fromarray(np.ascontiguousarray(arr))


def _scale16(arr: np.ndarray) -> np.ndarray:
    # Round to nearest: 65535 -> 255, 257 * k -> k.
    return ((np.clip(arr.astype(np.int64), 0, 65535) * 255 + 32767) // 65535).astype(np.uint8)


def _to_rgb_or_l(img: Image.Image) -> Image.Image:
    """Reduce any Pillow mode to "RGB" or "L" (see the module docstring for the rules)."""
    mode = img.mode
    if mode in ("RGB", "L"):
        return img
    if mode.startswith("I;16") or mode == "I":
        return Image.fromarray(_scale16(np.asarray(img)))
    if mode == "F":
        return Image.fromarray(np.clip(np.nan_to_num(np.asarray(img)) + 0.5, 0, 255).astype(np.uint8))
    if mode == "1":
        return img.convert("L")
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
        mode = img.mode
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        base = "L" if mode in ("LA", "La") else "RGB"
        rgba = img.convert("RGBA")
        black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        return Image.alpha_composite(black, rgba).convert(base)
    return img.convert("RGB")  # CMYK, YCbCr, LAB, HSV, RGBX, ...


def load_image(src: ImageSource, *, channels: int) -> np.ndarray:
    """Decode ``src`` (path, encoded bytes, PIL image or array) to a uint8 (H, W, channels) array.

    Raises :class:`ImageError` naming the input when it cannot be decoded.
    """
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    opened = None
    try:
        if isinstance(src, np.ndarray):
            img = _from_array(src)
        elif isinstance(src, Image.Image):
            img = src
        else:
            img = opened = _open(src)
        img.load()  # decode fully now (first frame of animations), so truncation is reported here
        img = ImageOps.exif_transpose(img) or img
        img = _to_rgb_or_l(img)
        arr = np.array(img.convert("L" if channels == 1 else "RGB"), dtype=np.uint8)  # a copy
    except ImageError:
        raise
    except Exception as exc:  # Pillow raises many types (OSError, SyntaxError, ValueError, ...)
        raise ImageError(f"{_name(src)}: cannot decode image ({_reason(exc)})") from exc
    finally:
        if opened is not None:
            opened.close()  # multi-frame files would otherwise stay open until garbage collection
    return arr[..., None] if arr.ndim == 2 else arr


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    # Pillow names in-memory inputs by repr ("<_io.BytesIO object at 0x...>"): noise for a person.
    return re.sub(r"\s*<_io\.BytesIO object at 0x[0-9a-f]+>", "", text) or type(exc).__name__


def check_image(src: str | os.PathLike | bytes) -> str | None:
    """``None`` if ``src`` decodes cleanly, else a one-line reason.

    ``verify()`` checks the container (PNG CRCs, headers); a second open then
    decodes the pixels, in JPEG draft mode (reduced-scale DCT) when possible:
    every byte of the stream is still read, so truncation is found, at a
    fraction of the cost of a full decode.
    """
    try:
        with _open(src) as img:
            img.verify()
        with _open(src) as img:
            if img.format == "JPEG":
                img.draft("RGB", (max(1, img.width // 8), max(1, img.height // 8)))
            img.load()
    except Exception as exc:  # noqa: BLE001 - every decoder failure is a bad file
        return _reason(exc)
    return None


def resize_image(img: np.ndarray, size: tuple[int, int], policy: str = "stretch") -> np.ndarray:
    """Resize a uint8 (H, W, C) array to ``size`` = (height, width), bilinear.

    ``stretch`` scales each axis independently; ``crop`` first cuts the
    largest central region with the target aspect ratio, so nothing is
    distorted. Pillow's bilinear filter widens its support when shrinking,
    which avoids the aliasing of point-sampled bilinear resizing.
    """
    if policy not in RESIZE_POLICIES:
        raise ValueError(f"resize policy must be one of {RESIZE_POLICIES}, got {policy!r}")
    height, width = int(size[0]), int(size[1])
    h, w = img.shape[:2]
    box = None
    if policy == "crop" and h * width != w * height:
        if w * height > h * width:  # too wide: trim the sides
            cw = h * width / height
            box = ((w - cw) / 2, 0.0, (w + cw) / 2, float(h))
        else:  # too tall: trim top and bottom
            ch = w * height / width
            box = (0.0, (h - ch) / 2, float(w), (h + ch) / 2)
    if (h, w) == (height, width) and box is None:
        return img
    squeeze = img.ndim == 3 and img.shape[-1] == 1
    pil = Image.fromarray(img[..., 0] if squeeze else img)
    out = np.asarray(pil.resize((width, height), Image.Resampling.BILINEAR, box=box))
    return out[..., None] if squeeze or out.ndim == 2 else out
