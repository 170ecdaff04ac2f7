"""Latency figures of a row, and the reference they are checked against (LiteRT's ``litert-benchmark``).

On local and ssh devices a latency is the runtime's ``bench`` in a fresh
process (:func:`edgecls.runtime.timing.measure`: set input, invoke, read and
dequantize the output; warm-up, then timed runs); on adb devices it is
TFLite's ``benchmark_model``, which reports the mean but no percentiles.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


def _r(value, digits: int = 4):
    return None if value is None else round(float(value), digits)


def row_fields(result: dict | None) -> dict:
    """latency_ms {p50, p90, p99, mean}, init_ms, peak_rss_mb and where they came from.

    ``result`` is a runner's answer, already checked (``DeviceRunner.latency``): finite numbers or None."""
    result = result or {}
    return {
        "latency_ms": {"p50": _r(result.get("p50_ms")), "p90": _r(result.get("p90_ms")),
                       "p99": _r(result.get("p99_ms")), "mean": _r(result.get("mean_ms"))},
        "init_ms": _r(result.get("init_ms"), 3),
        "peak_rss_mb": _r(result.get("peak_rss_mb"), 1),
        "latency_source": result.get("source"),
        "backend": " ".join(str(v) for v in (result.get("backend"), result.get("backend_version")) if v) or None,
    }


def plot_latency(row: dict) -> float | None:
    """The latency a plot and the Pareto front use: p50, else the mean (benchmark_model has no median)."""
    lat = row.get("latency_ms") or {}
    return lat.get("p50") if lat.get("p50") is not None else lat.get("mean")


def litert_benchmark(model: str | os.PathLike, *, threads: int, runs: int, warmup: int,
                     executable: str | None = None) -> dict:
    """LiteRT's own ``litert-benchmark`` (ai-edge-litert's CLI) on this host: its latency section, in ms.

    Its printed figures are rounded to 0.01 ms; ``--result_json`` has the same
    rounding, so for sub-millisecond models compare with care.
    """
    exe = executable or shutil.which("litert-benchmark") or str(Path(sys.executable).parent / "litert-benchmark")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        proc = subprocess.run([exe, "--model", os.fspath(model), "--num_threads", str(threads), "--num_runs",
                               str(runs), "--warmup_runs", str(warmup), "--result_json", str(out)],
                              capture_output=True, text=True)
        if proc.returncode != 0 or not out.exists():
            tail = (proc.stderr or proc.stdout).strip().splitlines()
            raise RuntimeError(f"litert-benchmark failed: {tail[-1] if tail else proc.returncode}")
        data = json.loads(out.read_text())
    lat = data["latency"]
    found = re.search(r"Inference \(median\):\s+([\d.]+) ms", proc.stdout)
    return {"median_ms": float(found.group(1)) if found else lat["median_ms"], "mean_ms": lat["avg_ms"],
            "p5_ms": lat.get("p5_ms"), "p95_ms": lat.get("p95_ms"), "init_ms": lat.get("init_ms"),
            "runs": lat.get("num_runs")}
