"""Benchmarks: accuracy and latency of every exported variant on a device, as tables and a Pareto plot.

    from edgecls.bench import run_bench, compare_reports, format_table
    report = run_bench("runs/digits", "local", threads="1,2")
    print(format_table(report["rows"]))
"""
from __future__ import annotations

from edgecls.bench.compare import compare_reports
from edgecls.bench.report import format_table, pareto_front
from edgecls.bench.run import parse_threads, run_bench

__all__ = ["compare_reports", "format_table", "pareto_front", "parse_threads", "run_bench"]

from edgecls.api import callable_package as _callable_package

_callable_package(__name__, "bench")  # edgecls.bench(...) is the public API function (edgecls/api.py)
