"""The timing helper the device benchmark reuses."""
from __future__ import annotations

import numpy as np
import pytest

from edgecls.runtime.timing import measure, peak_rss_mb, percentile, summarize, time_calls


def test_percentiles_match_numpy():
    rng = np.random.default_rng(0)
    for n in (1, 2, 7, 50, 101):
        xs = sorted(rng.exponential(3.0, n).tolist())
        for p in (0, 50, 90, 99, 100):
            assert percentile(xs, p) == pytest.approx(float(np.percentile(xs, p)))


def test_summarize_and_to_dict():
    t = summarize([4.0, 1.0, 3.0, 2.0], warmup=1, init_ms=9.5, context={"model": "m"})
    assert (t.runs, t.min_ms, t.max_ms, t.mean_ms, t.p50_ms) == (4, 1.0, 4.0, 2.5, 2.5)
    d = t.to_dict()
    assert d["model"] == "m" and d["fps"] == 400.0 and d["init_ms"] == 9.5 and "context" not in d
    with pytest.raises(ValueError):
        summarize([], warmup=0)


def test_time_calls_counts_warmup_and_runs():
    calls = []
    t = time_calls(lambda: calls.append(1), runs=7, warmup=3)
    assert len(calls) == 10 and t.runs == 7 and t.warmup == 3 and t.min_ms >= 0
    with pytest.raises(ValueError):
        time_calls(lambda: None, runs=0)


def test_measure_a_model(rt):
    t = measure(rt.int8, num_threads=1, runs=10, warmup=2)
    d = t.to_dict()
    assert d["threads"] == 1 and d["input_dtype"] == "uint8" and d["runs"] == 10
    assert d["init_ms"] > 0 and 0 < d["p50_ms"] <= d["p99_ms"]
    assert measure(rt.float, runs=3, warmup=0, batch=4).to_dict()["batch"] == 4


def test_peak_rss():
    rss = peak_rss_mb()
    assert rss is None or 5 < rss < 100_000


@pytest.mark.skipif(not __import__("sys").platform.startswith("linux"), reason="exec keeps ru_maxrss on Linux")
def test_peak_rss_is_the_process_own_not_its_parents():
    # A benchmark started from a big parent (the TensorFlow side of `edgecls run`) must report its own
    # peak: ru_maxrss carries the parent's over fork+exec, which once showed 1013 MiB for a 129 MiB run.
    import subprocess
    import sys

    ballast = bytearray(400 * 1024 * 1024)
    ballast[::4096] = b"\x01" * len(ballast[::4096])  # touch every page: resident, not just reserved
    code = "from edgecls.runtime.timing import peak_rss_mb; print(peak_rss_mb())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    del ballast
    assert 5 < float(out) < 200, out
