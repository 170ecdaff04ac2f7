"""Latency of a model on this machine: warm-up, N timed runs, percentiles, init time, peak memory.

:func:`measure` is what ``edgecls-runtime.pyz bench`` prints and what the
device benchmark runs on a device: it loads the model (init time), then times
:meth:`Classifier.predict` on a preprocessed tensor (set input, invoke, read
and dequantize the output), the path an application calls per frame.
:func:`time_calls` times any callable the same way.
"""
from __future__ import annotations

import math
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np


@dataclass(frozen=True)
class Timing:
    """Latency statistics in milliseconds; ``to_dict()`` is the JSON the bench command prints."""

    runs: int
    warmup: int
    mean_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    min_ms: float
    max_ms: float
    std_ms: float
    init_ms: float | None = None
    peak_rss_mb: float | None = None
    context: dict = field(default_factory=dict)  # model, backend, threads, delegate, input, host

    @property
    def fps(self) -> float:
        return 1000.0 / self.mean_ms if self.mean_ms > 0 else math.inf

    def to_dict(self) -> dict:
        out = asdict(self)
        context = out.pop("context")
        out = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in out.items()}
        out["fps"] = round(self.fps, 2)
        return {**context, **out}


def percentile(sorted_ms: list[float], p: float) -> float:
    """Linear interpolation between closest ranks (numpy's default method)."""
    if not sorted_ms:
        return math.nan
    k = (len(sorted_ms) - 1) * p / 100.0
    lo = int(math.floor(k))
    hi = min(lo + 1, len(sorted_ms) - 1)
    return sorted_ms[lo] + (k - lo) * (sorted_ms[hi] - sorted_ms[lo])


def summarize(samples_ms: list[float], *, warmup: int, init_ms: float | None = None,
              context: dict | None = None) -> Timing:
    if not samples_ms:
        raise ValueError("no timed runs")
    s = sorted(samples_ms)
    n = len(s)
    mean = sum(s) / n
    std = math.sqrt(sum((x - mean) ** 2 for x in s) / (n - 1)) if n > 1 else 0.0
    return Timing(runs=n, warmup=warmup, mean_ms=mean, p50_ms=percentile(s, 50), p90_ms=percentile(s, 90),
                  p99_ms=percentile(s, 99), min_ms=s[0], max_ms=s[-1], std_ms=std, init_ms=init_ms,
                  peak_rss_mb=peak_rss_mb(), context=dict(context or {}))


def time_calls(fn: Callable[[], Any], *, runs: int = 50, warmup: int = 5, init_ms: float | None = None,
               context: dict | None = None) -> Timing:
    """Call ``fn`` ``warmup`` times untimed, then ``runs`` times, each timed on its own."""
    if runs < 1 or warmup < 0:
        raise ValueError(f"runs must be >= 1 and warmup >= 0, got runs={runs}, warmup={warmup}")
    for _ in range(warmup):
        fn()
    clock = time.perf_counter_ns
    samples = []
    for _ in range(runs):
        t0 = clock()
        fn()
        samples.append((clock() - t0) / 1e6)
    return summarize(samples, warmup=warmup, init_ms=init_ms, context=context)


def peak_rss_mb() -> float | None:
    """Peak resident memory of this process so far, in MiB (None where the OS does not say).

    On Linux this is ``VmHWM`` of /proc/self/status, the high-water mark of
    this program's own memory. ``ru_maxrss`` is not: exec keeps the larger of
    the old and new image's peak, so a runtime started from a 1 GB TensorFlow
    parent would report the parent's 1 GB.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except (OSError, ValueError, IndexError):
        pass
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux


def measure(model: str | os.PathLike, *, num_threads: int | None = None, runs: int = 50, warmup: int = 5,
            delegate: str | None = None, backend: str | None = None, batch: int = 1, seed: int = 0) -> Timing:
    """Load ``model`` and time :meth:`Classifier.predict` on a random preprocessed input.

    ``init_ms`` covers reading the file, building the interpreter and
    allocating tensors (where XNNPACK and other delegates prepare); labels are
    not needed.
    """
    from edgecls.runtime.classifier import Classifier

    t0 = time.perf_counter()
    clf = Classifier.from_file(model, num_threads=num_threads, delegate=delegate, backend=backend,
                               require_labels=False)
    init_ms = (time.perf_counter() - t0) * 1000.0
    h, w = clf.input_size
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (batch, h, w, clf.channels), dtype=np.uint8)
    tensor = np.concatenate([clf.normalize(p) for p in pixels])
    clf.predict(tensor)  # the first call may resize the input for the batch; not part of warm-up statistics
    r = clf.runner
    context = {
        "model": os.fspath(model), "model_size_mb": round(os.path.getsize(model) / 2**20, 3),
        "backend": r.backend, "backend_version": r.backend_version, "threads": r.num_threads,
        "delegate": r.delegate, "batch": batch, "input": list(r.input.shape[1:]), "input_dtype": str(r.input.dtype),
        "host": platform.node(), "machine": platform.machine(), "python": platform.python_version(),
        "numpy": np.__version__,
    }
    predict = clf.predict
    return time_calls(lambda: predict(tensor), runs=runs, warmup=warmup, init_ms=init_ms, context=context)
