"""Image decoding and resizing for the runtime (numpy; Pillow for image files).

This module owns the decoding rules for the whole toolkit, so training,
evaluation and the device see the same pixels (``edgecls.data.images`` can
re-export it). Conversions, in order:

* EXIF orientation is applied (``ImageOps.exif_transpose``): phone photos
  come out upright.
* Only the first frame of an animated image is used.
* 16-bit and 32-bit integer images (modes ``I;16*``, ``I``) are scaled from
  0..65535 to 0..255; float images (``F``) are taken as 0..255 and clipped.
* Transparency (``RGBA``, ``LA``, ``PA``, palette images with a transparent
  colour) is composited **on black**: a transparent pixel becomes 0.
* Everything else (palette, CMYK, YCbCr, 1-bit, ...) is converted to RGB, then
  to ``L`` (ITU-R 601-2 luma) when one channel is asked for; grey images are
  repeated to three channels when three are asked for.

Numpy arrays (``.npy`` files, camera frames) are converted with numpy alone,
bit-exactly as Pillow would, and resized by Pillow when it is installed or by
a numpy port of Pillow's bilinear filter when it is not (same coefficients
and fixed-point rounding; Pillow 13 sometimes runs the vertical pass first,
so a pixel can differ by one level): a device with numpy and an interpreter,
but no Pillow, still classifies arrays.
"""
from __future__ import annotations

import io
import os
import re
from typing import Any, Union

import numpy as np

from edgecls.errors import first_line
from edgecls.runtime.errors import DependencyMissing, ImageError
from edgecls.runtime.options import RESIZE_POLICIES

ImageSource = Union[str, os.PathLike, bytes, bytearray, memoryview, np.ndarray, Any]  # Any: a PIL image

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".npy")

_pil: Any = None  # (Image, ImageOps) once imported; False when Pillow is not installed


def _pillow(required_for: str | None = None) -> Any:
    global _pil
    if _pil is None:
        try:
            from PIL import Image, ImageOps
        except ImportError:
            _pil = False
        else:
            _pil = (Image, ImageOps)
    if not _pil and required_for:
        raise DependencyMissing(f"{required_for}: decoding image files needs Pillow (pip install Pillow); "
                                ".npy arrays work without it")
    return _pil


def has_pillow() -> bool:
    return bool(_pillow())


def _name(src: object) -> str:
    if isinstance(src, (str, os.PathLike)):
        return os.fspath(src)
    if isinstance(src, (bytes, bytearray, memoryview)):
        return f"<{len(src)} bytes>"
    if isinstance(src, np.ndarray):
        return f"<array {src.shape} {src.dtype}>"
    return f"<{type(src).__name__}>"


def _reason(exc: BaseException) -> str:
    text = first_line(exc)
    # Pillow names in-memory inputs by repr ("<_io.BytesIO object at 0x...>"): noise for a person.
    return re.sub(r"\s*<_io\.BytesIO object at 0x[0-9a-f]+>", "", text) or type(exc).__name__


# ---------------------------------------------------------------------------------------------- arrays (numpy)

def _scale16(arr: np.ndarray) -> np.ndarray:
    # Round to nearest: 65535 -> 255, 257 * k -> k.
    return ((np.clip(arr.astype(np.int64), 0, 65535) * 255 + 32767) // 65535).astype(np.uint8)


def _array_to_uint8(arr: np.ndarray) -> np.ndarray:
    """An (H, W) or (H, W, 3|4) uint8 array from an image array (uint8, uint16, float 0..1 or 0..255)."""
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] not in (3, 4)) or 0 in arr.shape:
        raise ImageError(f"array of shape {arr.shape}: expected an image of shape (H, W), (H, W, 1), "
                         "(H, W, 3) or (H, W, 4)")
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.uint16:
        return _scale16(arr)
    if arr.dtype.kind == "f":
        scale = 255.0 if float(np.nanmax(arr)) <= 1.0 else 1.0
        return np.clip(np.nan_to_num(arr) * scale + 0.5, 0, 255).astype(np.uint8)
    if arr.dtype.kind in "iub":
        return np.clip(arr, 0, 255).astype(np.uint8)
    raise ImageError(f"array of dtype {arr.dtype}: expected integer or float pixels")


def rgb_to_gray(rgb: np.ndarray) -> np.ndarray:
    """ITU-R 601-2 luma of a uint8 (H, W, 3) array, bit-exact with Pillow's ``convert("L")``."""
    r, g, b = (rgb[..., i].astype(np.uint32) for i in range(3))
    return ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16).astype(np.uint8)


def _composite_on_black(rgba: np.ndarray) -> np.ndarray:
    """RGB of a uint8 (H, W, 4) array composited on opaque black, bit-exact with Pillow's alpha_composite."""
    a = rgba[..., 3:4].astype(np.uint32)
    tmp = rgba[..., :3].astype(np.uint32) * (a * 128) + (0x80 << 7)
    return ((((tmp >> 8) + tmp) >> 8) >> 7).astype(np.uint8)


def _array_to_channels(arr: np.ndarray, channels: int) -> np.ndarray:
    arr = _array_to_uint8(np.asarray(arr))
    if arr.ndim == 3 and arr.shape[-1] == 4:
        arr = _composite_on_black(arr)
    if channels == 1:
        gray = rgb_to_gray(arr) if arr.ndim == 3 else arr
        return np.ascontiguousarray(gray)[..., None]
    if arr.ndim == 2:
        return np.repeat(arr[..., None], 3, axis=2)
    return np.ascontiguousarray(arr)


# ---------------------------------------------------------------------------------------------- files (Pillow)

def _to_rgb_or_l(img: Any, Image: Any) -> Any:
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


def _open(src: Any, Image: Any) -> Any:
    if isinstance(src, (str, os.PathLike)):
        return Image.open(os.fspath(src))
    if isinstance(src, (bytes, bytearray, memoryview)):
        return Image.open(io.BytesIO(bytes(src)))
    raise TypeError(f"cannot decode {type(src).__name__}")


def load_image(src: ImageSource, *, channels: int, draft: tuple[int, int] | None = None) -> np.ndarray:
    """Decode ``src`` (path, encoded bytes, PIL image or array) to a uint8 (H, W, channels) array.

    ``draft=(height, width)``: a JPEG may be decoded at 1/2, 1/4 or 1/8 scale
    (DCT scaling, much faster for large photos) as long as both sides stay at
    least ``2 x max(height, width)``, so the resize to (height, width) that
    follows still averages two or more decoded pixels per output pixel (what
    Pillow's ``thumbnail`` does). Off by default: pixels then differ slightly
    from a full decode.

    Raises :class:`ImageError` naming the input when it cannot be decoded, and
    :class:`DependencyMissing` for an encoded image when Pillow is not installed.
    """
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    if isinstance(src, np.ndarray):
        return _array_to_channels(src, channels)
    if isinstance(src, (str, os.PathLike)) and os.fspath(src).lower().endswith(".npy"):
        return _array_to_channels(load_npy(src), channels)
    if not isinstance(src, (str, os.PathLike, bytes, bytearray, memoryview)) and not _is_pil(src):
        raise TypeError(f"an image is a path, bytes, a PIL image or a numpy array, not {type(src).__name__}")
    Image, ImageOps = _pillow(required_for=_name(src))
    try:
        img = src if isinstance(src, Image.Image) else _open(src, Image)
        if draft is not None and img.format == "JPEG":
            side = 2 * max(int(draft[0]), int(draft[1]))  # square: EXIF rotation may swap the sides
            img.draft(img.mode if img.mode in ("RGB", "L") else None, (side, side))
        img.load()  # decode fully now (first frame of animations), so truncation is reported here
        if img is src:  # the caller's image: transpose a copy
            img = ImageOps.exif_transpose(img) or img
        else:  # ours: in place, which costs nothing when there is no orientation tag
            ImageOps.exif_transpose(img, in_place=True)
        img = _to_rgb_or_l(img, Image)
        want = "L" if channels == 1 else "RGB"
        if img.mode != want:
            img = img.convert(want)
    except FileNotFoundError:
        raise ImageError(f"{_name(src)}: no such image file") from None
    except IsADirectoryError:
        raise ImageError(f"{_name(src)}: is a directory, not an image") from None
    except Exception as exc:  # Pillow raises many types (OSError, SyntaxError, ValueError, ...)
        raise ImageError(f"{_name(src)}: cannot decode image ({_reason(exc)})") from None
    arr = np.asarray(img, dtype=np.uint8)
    return arr[..., None] if arr.ndim == 2 else arr


def _is_pil(obj: Any) -> bool:
    pil = _pillow()
    return bool(pil) and isinstance(obj, pil[0].Image)


def load_npy(path: str | os.PathLike) -> np.ndarray:
    """An image array saved with ``numpy.save``; ImageError when it is not one."""
    name = os.fspath(path)
    fmt = np.lib.format
    try:
        with open(name, "rb") as fh:
            if fh.read(2) == b"PK":
                raise ImageError(f"{name}: holds several arrays (.npz); save one image array with numpy.save")
            fh.seek(0)
            version = fmt.read_magic(fh)
            read_header = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
            shape, _, dtype = read_header(fh)
            # The header is a claim: check it against the file before numpy allocates what it says
            # (a few hundred crafted bytes can claim 28 GiB).
            need = int(np.prod(shape, dtype=object)) * dtype.itemsize
            have = os.fstat(fh.fileno()).st_size - fh.tell()
            if dtype.hasobject:
                raise ImageError(f"{name}: holds Python objects, not pixels; save a numeric image array")
            if need > have:
                raise ImageError(f"{name}: its header claims a {'x'.join(map(str, shape))} {dtype} array "
                                 f"({need:,} bytes) but the file holds {have:,}; it is truncated or damaged")
            fh.seek(0)
            arr = fmt.read_array(fh, allow_pickle=False)
    except ImageError:
        raise
    except FileNotFoundError:
        raise ImageError(f"{name}: no such file") from None
    except (ValueError, OSError, EOFError, SyntaxError) as exc:
        raise ImageError(f"{name}: not a readable .npy array ({_reason(exc)})") from None
    return arr


def check_image(src: str | os.PathLike | bytes) -> str | None:
    """``None`` if ``src`` decodes cleanly, else a one-line reason.

    ``verify()`` checks the container (PNG CRCs, headers); a second open then
    decodes the pixels, in JPEG draft mode (reduced-scale DCT) when possible:
    every byte of the stream is still read, so truncation is found, at a
    fraction of the cost of a full decode.
    """
    Image, _ = _pillow(required_for=_name(src))
    try:
        with _open(src, Image) as img:
            img.verify()
        with _open(src, Image) as img:
            if img.format == "JPEG":
                img.draft("RGB", (max(1, img.width // 8), max(1, img.height // 8)))
            img.load()
    except Exception as exc:  # noqa: BLE001 - every decoder failure is a bad file
        return _reason(exc)
    return None


# ---------------------------------------------------------------------------------------------- resizing

def crop_box(h: int, w: int, height: int, width: int) -> tuple[float, float, float, float] | None:
    """The largest central (left, top, right, bottom) box of ``w`` x ``h`` with the aspect of ``width`` x ``height``."""
    if h * width == w * height:
        return None
    if w * height > h * width:  # too wide: trim the sides
        cw = h * width / height
        return ((w - cw) / 2, 0.0, (w + cw) / 2, float(h))
    ch = w * height / width  # too tall: trim top and bottom
    return (0.0, (h - ch) / 2, float(w), (h + ch) / 2)


def resize_image(img: np.ndarray, size: tuple[int, int], policy: str = "stretch") -> np.ndarray:
    """Resize a uint8 (H, W, C) array to ``size`` = (height, width), bilinear.

    ``stretch`` scales each axis independently; ``crop`` first cuts the
    largest central region with the target aspect ratio, so nothing is
    distorted. Pillow's bilinear filter widens its support when shrinking,
    which avoids the aliasing of point-sampled bilinear resizing. Without
    Pillow, :func:`resize_numpy` computes the same pixels to within one level.
    """
    if policy not in RESIZE_POLICIES:
        raise ValueError(f"resize policy must be one of {RESIZE_POLICIES}, got {policy!r}")
    height, width = int(size[0]), int(size[1])
    h, w = img.shape[:2]
    box = crop_box(h, w, height, width) if policy == "crop" else None
    if (h, w) == (height, width) and box is None:
        return img
    pil = _pillow()
    if not pil:
        return resize_numpy(img, (height, width), box)
    Image = pil[0]
    squeeze = img.ndim == 3 and img.shape[-1] == 1
    src = Image.fromarray(img[..., 0] if squeeze else img)
    out = np.asarray(src.resize((width, height), Image.Resampling.BILINEAR, box=box))
    return out[..., None] if squeeze or out.ndim == 2 else out


_PRECISION_BITS = 32 - 8 - 2  # Pillow's fixed-point precision for 8-bit resampling (libImaging/Resample.c)


def _resample_matrix(in_size: int, out_size: int, lo: float, hi: float) -> np.ndarray:
    """Pillow's bilinear coefficients, as fixed-point integers in a dense (out, in) float64 matrix."""
    scale = (hi - lo) / out_size
    filterscale = max(scale, 1.0)
    support = 1.0 * filterscale
    mat = np.zeros((out_size, in_size), np.float64)
    for xx in range(out_size):
        center = lo + (xx + 0.5) * scale
        xmin = max(int(center - support + 0.5), 0)
        xmax = min(int(center + support + 0.5), in_size) - xmin
        x = np.arange(xmax, dtype=np.float64)
        k = np.maximum(1.0 - np.abs((x + xmin - center + 0.5) / filterscale), 0.0)
        total = k.sum()
        if total != 0.0:
            k = k / total
        mat[xx, xmin:xmin + xmax] = np.where(k < 0, np.trunc(-0.5 + k * (1 << _PRECISION_BITS)),
                                             np.trunc(0.5 + k * (1 << _PRECISION_BITS)))
    return mat


def _apply(mat: np.ndarray, arr: np.ndarray) -> np.ndarray:
    # Integer sums below 2**53 are exact in float64, so BLAS gives Pillow's fixed-point result bit for bit.
    acc = arr.astype(np.float64) @ mat.T + float(1 << (_PRECISION_BITS - 1))
    return np.clip(np.floor(acc / float(1 << _PRECISION_BITS)), 0, 255).astype(np.uint8)


def resize_numpy(img: np.ndarray, size: tuple[int, int], box: tuple[float, float, float, float] | None = None) -> np.ndarray:
    """Pillow's ``resize(BILINEAR, box=box)`` on a uint8 (H, W, C) array, in numpy alone (within one level)."""
    height, width = int(size[0]), int(size[1])
    h, w, c = img.shape
    left, top, right, bottom = box if box is not None else (0.0, 0.0, float(w), float(h))
    out = img
    if (width, left, right) != (w, 0.0, float(w)):  # horizontal pass first, as Pillow does
        hmat = _resample_matrix(w, width, left, right)
        out = _apply(hmat, out.transpose(0, 2, 1)).transpose(0, 2, 1)  # (H, C, W) @ (W, width)
    if (height, top, bottom) != (h, 0.0, float(h)):
        vmat = _resample_matrix(h, height, top, bottom)
        out = _apply(vmat, out.transpose(1, 2, 0)).transpose(2, 0, 1)  # (W, C, H) @ (H, height)
    return np.ascontiguousarray(out)


__all__ = ["IMAGE_SUFFIXES", "ImageError", "ImageSource", "RESIZE_POLICIES", "check_image", "crop_box",
           "has_pillow", "load_image", "load_npy", "resize_image", "resize_numpy", "rgb_to_gray"]
