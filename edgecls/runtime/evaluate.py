"""Accuracy of a model on labelled pixels, on the device: what ``edgecls-runtime.pyz eval`` runs.

    python3 edgecls-runtime.pyz eval model.tflite --data test.npz [--threads N] [--json]

The data is an ``.npz`` the host writes (``edgecls.bench.accuracy.write_test_npz``):
``pixels`` (N, H, W, 3) uint8 images already at the model's size, ``labels``
(N,) class indices and ``class_names``. Nothing here needs Pillow or
TensorFlow: numpy and one interpreter package.

"All cores": the images are split into one contiguous shard per core and each
shard runs in its own process with its own single-threaded interpreter
(forked, so the data is shared copy-on-write). Processes, not threads: the
interpreters' ``invoke`` holds the GIL. Images run in batches (the input is
resized to the batch) so the Python cost per image is small. Delegates that
own one accelerator (GPU, Edge TPU, any external library) run in one process.
The metrics are :func:`edgecls.metrics.classification_report`.

Robustness (``--corruptions``, ``--severities``): every corrupted copy of the
split (:mod:`edgecls.runtime.corruptions`, made at the model's input size) runs
in the same worker processes and interpreters as the clean pass, each worker
corrupting its own shard, so data and model load once and the corruptions
parallelise too. Slices: an array ``slice_<attribute>`` in the .npz (one string
per image, "" for none) adds accuracy and macro-F1 per slice
(:func:`edgecls.metrics.slice_report`).
"""
from __future__ import annotations

import os
import sys
import time
from typing import Any, Optional, Sequence, Tuple

import numpy as np

from edgecls.runtime.corruptions import DEFAULT_SEVERITIES
from edgecls.runtime.errors import EdgeclsError, RuntimeModelError, UsageError
from edgecls.runtime.options import check_threads

_CORRUPT_ELEMENTS = 1 << 23  # pixels values corrupted at a time per worker (bounds the float copies' memory)
_ELEMENTS_PER_BATCH = 1 << 20  # input elements per batch: 256 digits (8x8x3), 85 at 64x64x3, 6 at 224x224x3
_MAX_BATCH = 256

# What forked workers read (set before the fork; never pickled).
_shared: dict[str, Any] = {}


class EvalDataError(EdgeclsError):
    """The .npz with the test split is missing or not what ``eval`` expects."""


def cpu_count() -> int:
    """Cores this process may run on (the affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def load_data(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, tuple[str, ...] | None]:
    """(pixels uint8 (N, H, W, C), labels int64 (N,), class names or None) from an .npz."""
    name = os.fspath(path)
    try:
        with np.load(name, allow_pickle=False) as npz:
            keys = set(npz.files)
            missing = {"pixels", "labels"} - keys
            if missing:
                raise EvalDataError(f"{name}: no {', '.join(sorted(missing))} array in it "
                                    "(expected pixels, labels and class_names)")
            pixels, labels = npz["pixels"], npz["labels"]
            names = tuple(str(n) for n in npz["class_names"]) if "class_names" in keys else None
    except FileNotFoundError:
        raise EvalDataError(f"{name}: no such file") from None
    except (OSError, ValueError) as exc:  # not a zip / not an npz / object arrays
        raise EvalDataError(f"{name}: not a readable .npz ({exc})") from None
    if pixels.dtype != np.uint8 or pixels.ndim != 4 or pixels.shape[-1] not in (1, 3):
        raise EvalDataError(f"{name}: pixels must be uint8 (N, H, W, 1 or 3), got {pixels.dtype} {pixels.shape}")
    if labels.ndim != 1 or len(labels) != len(pixels) or not len(labels):
        raise EvalDataError(f"{name}: labels must be (N,) with N = {len(pixels)} > 0, got shape {labels.shape}")
    return pixels, labels.astype(np.int64), names


SLICE_PREFIX = "slice_"


def load_slices(path: str | os.PathLike, n: int) -> dict[str, np.ndarray]:
    """attribute -> str (n,) array, from the .npz's ``slice_<attribute>`` arrays (none: {})."""
    name = os.fspath(path)
    out = {}
    try:
        with np.load(name, allow_pickle=False) as npz:
            for key in sorted(k for k in npz.files if k.startswith(SLICE_PREFIX)):
                values = npz[key]
                if values.dtype.kind not in "US" or values.shape != (n,):
                    raise EvalDataError(f"{name}: {key} must hold one string per image ({n}), got {values.dtype} "
                                        f"{values.shape}")
                out[key[len(SLICE_PREFIX):]] = values.astype(str)
    except (OSError, ValueError) as exc:
        raise EvalDataError(f"{name}: not a readable .npz ({exc})") from None
    return out


def _batch_size(h: int, w: int, c: int) -> int:
    return int(max(1, min(_MAX_BATCH, _ELEMENTS_PER_BATCH // max(1, h * w * c))))


def _fit(pixels: np.ndarray, clf: Any) -> np.ndarray:
    """Pixels at the model's input size and channels (a no-op for data the host wrote for this model)."""
    from edgecls.runtime.image import _array_to_channels, resize_image

    h, w = clf.input_size
    if pixels.shape[1:] == (h, w, clf.channels):
        return pixels
    out = np.empty((len(pixels), h, w, clf.channels), np.uint8)
    for i, img in enumerate(pixels):
        out[i] = _array_to_channels(resize_image(img, (h, w), clf.resize), clf.channels)
    return out


def _classifier(model: str, *, threads: int, backend: str | None, delegate: str | None) -> Any:
    from edgecls.runtime.cli import quiet_native_stderr
    from edgecls.runtime.classifier import Classifier

    with quiet_native_stderr(os.environ.get("EDGECLS_TF_LOGS") != "1"):
        return Classifier.from_file(model, num_threads=threads, backend=backend, delegate=delegate,
                                    require_labels=False)


Pass = Optional[Tuple[str, int]]  # None: the clean images; else (corruption, severity)


def _predict_passes(clf: Any, pixels: np.ndarray, size: int, passes: Sequence[Pass], index: int, seed: int,
                    first: np.ndarray | None = None) -> list[np.ndarray]:
    """Probabilities of ``pixels`` (images ``index``.. of the split) for each pass; ``first``: the clean first batch."""
    from edgecls.runtime.corruptions import corrupt

    chunk = max(size, _CORRUPT_ELEMENTS // max(1, int(np.prod(pixels.shape[1:]))))
    out = []
    for p in passes:
        if p is None:
            if first is None:
                out.append(clf.predict_pixels(pixels, size))
            else:
                out.append(np.concatenate([first, clf.predict_pixels(pixels[len(first):], size)]))
            continue
        parts = [clf.predict_pixels(corrupt(pixels[lo:lo + chunk], p[0], p[1], seed=seed, index=index + lo), size)
                 for lo in range(0, len(pixels), chunk)]
        out.append(np.concatenate(parts))
    return out


def _shard(bounds: tuple[int, int]) -> tuple[int, list[np.ndarray]]:
    """A forked worker: its own single-threaded interpreter over pixels[lo:hi], every pass."""
    lo, hi = bounds
    s = _shared
    clf = _classifier(s["model"], threads=1, backend=s["backend"], delegate=s["delegate"])
    return lo, _predict_passes(clf, s["pixels"][lo:hi], s["batch"], s["passes"], lo, s["seed"])


def _parallel(pixels: np.ndarray, workers: int, batch: int, passes: Sequence[Pass], seed: int,
              **options: Any) -> list[np.ndarray]:
    import multiprocessing

    n = len(pixels)
    edges = np.linspace(0, n, workers + 1).round().astype(int)
    shards = [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:]) if b > a]
    _shared.update(pixels=pixels, batch=batch, passes=list(passes), seed=seed, **options)
    try:
        with multiprocessing.get_context("fork").Pool(len(shards)) as pool:
            parts = pool.map(_shard, shards, chunksize=1)
    finally:
        _shared.clear()
    parts.sort(key=lambda item: item[0])
    return [np.concatenate([probs[i] for _, probs in parts]) for i in range(len(passes))]


def evaluate(model: str | os.PathLike, data: str | os.PathLike, *, threads: int | None = None,
             batch: int | None = None, backend: str | None = None, delegate: str | None = None,
             corruptions: str | Sequence[str] = (), severities: str | Sequence[int] = DEFAULT_SEVERITIES,
             seed: int = 0) -> dict:
    """The classification report of ``model`` on the .npz ``data``, plus how it was computed.

    ``threads``: cores to use (worker processes with one interpreter thread
    each); None means all cores. Delegates other than XNNPACK/none use one process.
    ``corruptions`` (names, or a comma list) at ``severities`` add the accuracy
    under each (``seed`` fixes the noise); slices in the data add per-slice metrics.
    """
    from edgecls.metrics import accuracy, classification_report, slice_report
    from edgecls.runtime.backends import delegate_kind
    from edgecls.runtime.corruptions import check_available, parse_corruptions, parse_severities

    if threads is not None:
        check_threads(threads)
    if batch is not None and batch < 1:
        raise UsageError(f"--batch must be at least 1, got {batch}")
    names_c = parse_corruptions(corruptions) if corruptions else ()
    levels = parse_severities(severities) if names_c else ()
    check_available(names_c)
    passes: list[Pass] = [None, *((c, s) for c in names_c for s in levels)]
    model = os.fspath(model)
    t_load = time.perf_counter()
    pixels, labels, names = load_data(data)
    slices = load_slices(data, len(labels))
    clf = _classifier(model, threads=1, backend=backend, delegate=delegate)  # imports the backend, checks the model
    pixels = _fit(pixels, clf)
    t0 = time.perf_counter()  # from here on: the evaluation proper (what more cores speed up)
    h, w = clf.input_size
    size = batch or _batch_size(h, w, clf.channels)
    k = clf.num_classes
    if names is None:
        names = tuple(str(i) for i in range(k))
    if len(names) != k:
        raise RuntimeModelError(f"{model}: the model has {k} outputs; the test data has {len(names)} classes")
    if labels.min() < 0 or labels.max() >= k:
        raise EvalDataError(f"{data}: labels outside [0, {k})")
    info = {"backend": clf.backend, "backend_version": clf.runner.backend_version, "delegate": clf.runner.delegate}
    kind = delegate_kind(delegate)
    workers = threads or cpu_count()
    if kind not in ("xnnpack", "none"):
        workers = 1  # one accelerator: one interpreter at a time
    workers = max(1, min(workers, -(-len(pixels) // size)))
    try:
        first = clf.predict_pixels(pixels[:size])
    except RuntimeModelError:
        if size == 1:
            raise
        size = 1  # a model whose batch cannot grow: one image per invoke
        clf = _classifier(model, threads=1, backend=backend, delegate=delegate)
        first = None
    if workers == 1:
        results = _predict_passes(clf, pixels, size, passes, 0, seed, first)
    else:
        clf.close()
        del clf
        results = _parallel(pixels, workers, size, passes, seed, model=model, backend=backend, delegate=delegate)
    seconds = time.perf_counter() - t0
    report = classification_report(labels, results[0], names)
    if names_c:
        table = {c: {} for c in names_c}
        for p, probs in zip(passes[1:], results[1:]):
            table[p[0]][str(p[1])] = accuracy(labels, probs.argmax(axis=1))
        mean = float(np.mean([a for row in table.values() for a in row.values()]))
        drop = report["accuracy"] - mean
        report["corruptions"] = {"severities": list(levels), "accuracy": table, "mean_accuracy": mean, "drop": drop}
        report.update(mean_corruption_accuracy=mean, corruption_drop=drop)
    if slices:
        report["slices"] = slice_report(labels, results[0].argmax(axis=1), slices, k)
        worst = report["slices"]["worst"]
        if worst is not None:
            report["worst_slice_gap"] = worst["gap"]
    images = len(labels) * len(passes)
    report.update(model=model, workers=workers, batch=size, seconds=round(seconds, 4),
                  setup_seconds=round(t0 - t_load, 4),
                  images_per_second=round(images / seconds, 1) if seconds > 0 else None,
                  cpu_count=cpu_count(), python=sys.version.split()[0], **info)
    return report


def print_summary(report: dict, out: Any) -> None:
    print(f"{report['model']}  ({report['backend']} {report['backend_version']}, {report['workers']} process(es), "
          f"batch {report['batch']}, {report['seconds']:.2f} s)", file=out)
    for key in ("accuracy", "top5_accuracy", "macro_f1", "ece"):
        if key in report:
            print(f"  {key:<14} {report[key]:.4f}", file=out)
    print(f"  {'images':<14} {report['num_examples']}", file=out)
    corr = report.get("corruptions")
    if corr:
        levels = [str(s) for s in corr["severities"]]
        print(f"  {'corruption':<16}" + "".join(f"{'sev ' + s:>8}" for s in levels), file=out)
        for name, row in corr["accuracy"].items():
            print(f"  {name:<16}" + "".join(f"{row[s]:>8.4f}" for s in levels), file=out)
        print(f"  {'mean_corruption_accuracy':<26} {corr['mean_accuracy']:.4f}  (drop from clean "
              f"{corr['drop']:+.4f})", file=out)
    worst = (report.get("slices") or {}).get("worst")
    if worst:
        print(f"  {'worst slice':<26} {worst['attribute']}={worst['value']}  accuracy {worst['accuracy']:.4f} "
              f"(n={worst['n']}, gap {worst['gap']:+.4f})", file=out)
