"""Occlusion sensitivity (Zeiler & Fergus, 2014) for any model the runtime runs: which regions, hidden, cost
the predicted class the most probability. Numpy only (Pillow only to decode and write image files).

A square patch filled with the image's mean colour slides over the image
(``patch`` pixels, ``stride`` apart; the last row and column of positions are
moved in to touch the far edges, so every pixel is covered). Each occluded copy
goes through ``predict`` in batches; the heatmap at a pixel is the mean, over
the patches covering it, of the target class's probability on the intact image
minus its probability with the patch hidden. Positive: the region supports the
prediction; negative: hiding it makes the class more likely.

Defaults: ``patch = max(2, round(min(H, W) / 6))``, ``stride = max(1, patch // 2)``:
121 copies of a 96-px image, 9 of an 8-px digit.

    python -m edgecls.runtime explain MODEL IMAGE... [--patch N] [--stride N] [--out DIR] [--json]
"""
from __future__ import annotations

import json
import os
import sys
from typing import Any, Callable, NamedTuple, Sequence, TextIO

import numpy as np

from edgecls.runtime.errors import DependencyMissing, EdgeclsError, ImageError, RuntimeModelError, UsageError
from edgecls.runtime.options import check_int


class Occlusion(NamedTuple):
    """An occlusion map: ``heatmap`` float32 (H, W), higher = hiding it lowers the target's probability more."""

    heatmap: np.ndarray
    target: int
    score: float  # the target's probability on the intact image
    patch: int
    stride: int


def default_patch(h: int, w: int) -> int:
    return max(2, round(min(h, w) / 6))


def _positions(n: int, patch: int, stride: int) -> list[int]:
    starts = list(range(0, n - patch + 1, stride))
    if starts[-1] != n - patch:
        starts.append(n - patch)  # the far edge is covered too
    return starts


def occlusion_map(predict: Callable[[np.ndarray], np.ndarray], image: np.ndarray, *, target: int | None = None,
                  patch: int | None = None, stride: int | None = None, batch: int = 64) -> Occlusion:
    """The occlusion map of ``image`` (uint8 (H, W, C)) under ``predict`` (uint8 (N, H, W, C) -> probs (N, K)).

    ``target``: the class whose probability is watched (default: the top-1 on the intact image).
    ``patch``: 1..min(H, W); ``stride``: 1..patch (a larger stride would leave pixels never hidden).
    """
    img = np.asarray(image)
    if img.dtype != np.uint8 or img.ndim != 3:
        raise ImageError(f"occlusion_map() takes a uint8 (H, W, C) image, got {img.dtype} {img.shape}")
    h, w = img.shape[:2]
    patch = default_patch(h, w) if patch is None else patch
    patch = check_int(patch, "--patch", 1, min(h, w))
    stride = max(1, patch // 2) if stride is None else stride
    stride = check_int(stride, "--stride", 1, patch)
    batch = check_int(batch, "batch")
    intact = np.asarray(predict(img[None]))
    if intact.ndim != 2 or len(intact) != 1:
        raise UsageError(f"predict must return probabilities (N, K); it returned shape {intact.shape}")
    target = int(intact[0].argmax()) if target is None else check_int(target, "target", 0, intact.shape[1] - 1)
    score = float(intact[0, target])
    fill = np.rint(img.reshape(-1, img.shape[2]).mean(axis=0)).astype(np.uint8)
    boxes = [(y, x) for y in _positions(h, patch, stride) for x in _positions(w, patch, stride)]
    total = np.zeros((h, w), np.float64)
    count = np.zeros((h, w), np.float64)
    start = 0
    while start < len(boxes):
        chunk = boxes[start:start + batch]
        start += len(chunk)
        copies = np.repeat(img[None], len(chunk), axis=0)
        for i, (y, x) in enumerate(chunk):
            copies[i, y:y + patch, x:x + patch] = fill
        try:
            probs = np.asarray(predict(copies))
        except RuntimeModelError:
            if len(copies) == 1:
                raise
            batch = 1  # a model whose batch cannot grow (a fixed Reshape): one copy per invoke, as eval does
            probs = np.concatenate([np.asarray(predict(c[None])) for c in copies])
        drops = score - probs[:, target]
        for (y, x), drop in zip(chunk, drops):
            total[y:y + patch, x:x + patch] += drop
            count[y:y + patch, x:x + patch] += 1
    heatmap = (total / np.maximum(count, 1)).astype(np.float32)
    return Occlusion(heatmap, target, score, patch, stride)


# A perceptual colour ramp (dark blue -> teal -> yellow, like viridis), as anchors for linear interpolation.
_RAMP = np.array([[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]], np.float32)


def colorize(heatmap: np.ndarray) -> np.ndarray:
    """uint8 RGB (H, W, 3) of ``heatmap``: 0 and below darkest, its maximum brightest."""
    h = np.asarray(heatmap, np.float32)
    top = float(h.max()) if h.size else 0.0
    t = np.clip(h / top, 0, 1) if top > 0 else np.zeros_like(h)
    pos = t * (len(_RAMP) - 1)
    lo = np.minimum(pos.astype(int), len(_RAMP) - 2)
    frac = (pos - lo)[..., None]
    return np.rint(_RAMP[lo] * (1 - frac) + _RAMP[lo + 1] * frac).astype(np.uint8)


def overlay(image: np.ndarray, heatmap: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """uint8 RGB (H, W, 3): the heatmap's colours blended over the image (grey images become RGB)."""
    img = np.asarray(image)
    if img.ndim == 2:
        img = img[..., None]
    if img.shape[:2] != np.shape(heatmap):
        raise ImageError(f"the heatmap is {np.shape(heatmap)}; the image is {img.shape[:2]}")
    if img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    blend = img[..., :3].astype(np.float32) * (1 - alpha) + colorize(heatmap).astype(np.float32) * alpha
    return np.rint(blend).astype(np.uint8)


def panel(image: np.ndarray, heatmap: np.ndarray, min_height: int = 192) -> np.ndarray:
    """The image and its overlay side by side, enlarged (whole pixels, nearest) to at least ``min_height``."""
    img = np.asarray(image)
    rgb = np.repeat(img, 3, axis=2) if img.shape[2] == 1 else img[..., :3]
    gap = np.full((img.shape[0], max(1, img.shape[1] // 16), 3), 255, np.uint8)
    both = np.concatenate([rgb, gap, overlay(img, heatmap)], axis=1)
    k = max(1, -(-min_height // img.shape[0]))
    return np.repeat(np.repeat(both, k, axis=0), k, axis=1)


# ---------------------------------------------------------------------------------------------- command

def _write_atomic(path: str, write: Callable[[Any], None]) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "wb") as fh:
            write(fh)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def unique_stem(path: str, used: set[str]) -> str:
    base = os.path.splitext(os.path.basename(path))[0] or "image"
    stem, n = base, 1
    while stem in used:  # a/cat.jpg and b/cat.png: cat, cat-2
        n += 1
        stem = f"{base}-{n}"
    used.add(stem)
    return stem


def explain_paths(model: str, inputs: Sequence[str], *, patch: int | None = None, stride: int | None = None,
                  out_dir: str = ".", as_json: bool = False, labels: str | None = None, threads: int | None = None,
                  backend: str | None = None, delegate: str | None = None, out: TextIO | None = None,
                  err: TextIO | None = None, quiet: bool = True, **preprocessing: Any) -> int:
    """Occlusion maps of image files with ``model``: ``<stem>-occlusion.png`` and ``.npy`` in ``out_dir``.

    Prints one line (or JSON object) per image; an image that cannot be read is
    ``error: ...`` on ``err`` and the others go on (exit code 1).
    """
    from edgecls.runtime.cli import expand_inputs, load_classifier
    from edgecls.runtime.image import _pillow

    out = out or sys.stdout
    err = err or sys.stderr
    if not inputs:
        raise UsageError("give at least one image, .npy file or folder")
    for value, flag in ((patch, "--patch"), (stride, "--stride")):
        if value is not None:
            check_int(value, flag)
    paths = expand_inputs(inputs)
    clf = load_classifier(model, threads=threads, labels=labels, backend=backend, delegate=delegate,
                          require_labels=False, quiet=quiet, **preprocessing)
    h, w = clf.input_size
    if patch is not None:
        check_int(patch, "--patch", 1, min(h, w))  # before any image: the model's size bounds it
    if stride is not None:
        check_int(stride, "--stride", 1, patch if patch is not None else default_patch(h, w))
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as exc:
        raise EdgeclsError(f"{out_dir}: cannot create the output folder ({exc.strerror or exc})") from None
    pil = _pillow()
    if not pil:
        print("note: Pillow is not installed: writing the .npy heatmaps, no PNG panels (pip install Pillow)",
              file=err)
    failures, used = 0, set()
    for path in paths:
        try:
            if not os.path.exists(path):
                raise ImageError(f"{path}: no such file")
            pixels = clf.load_pixels(path)
        except (ImageError, DependencyMissing) as exc:
            failures += 1
            print(f"error: {exc}", file=err)
            continue
        occ = occlusion_map(lambda x: clf.predict_pixels(x, 64), pixels, patch=patch, stride=stride)
        stem = os.path.join(out_dir, unique_stem(path, used) + "-occlusion")
        _write_atomic(stem + ".npy", lambda fh: np.save(fh, occ.heatmap))
        png = None
        if pil:
            png = stem + ".png"
            image = pil[0].fromarray(panel(pixels, occ.heatmap))
            _write_atomic(png, lambda fh: image.save(fh, format="PNG"))
        row = {"image": path, "label": clf.labels[occ.target], "index": occ.target, "score": round(occ.score, 6),
               "patch": occ.patch, "stride": occ.stride, "png": png, "npy": stem + ".npy"}
        if as_json:
            print(json.dumps(row), file=out)
        else:
            print(f"{path}  {row['label']}  {occ.score:.4f}  -> {png or '(no PNG)'}  {row['npy']}", file=out)
        out.flush()
    return 1 if failures else 0
