"""The Pareto front, the tables and the comparison of reports (synthetic rows: no device needed)."""
from __future__ import annotations

import json

import pytest

from edgecls.bench import compare_reports, format_table, pareto_front
from edgecls.bench.report import mark_front, summarize, to_csv, to_markdown, write_report
from edgecls.errors import UsageError


def row(variant, acc, p50, threads=1, size=1000, status="ok", device="d", mean=None):
    return {"variant": variant, "delegate": "xnnpack", "threads": threads, "accuracy": acc, "top5_accuracy": None,
            "macro_f1": acc, "ece": 0.01, "latency_ms": {"p50": p50, "p90": p50, "p99": p50, "mean": mean or p50},
            "init_ms": 1.0, "size_bytes": size, "peak_rss_mb": 50.0, "device": device, "status": status}


def test_pareto_front():
    rows = [row("a", 0.90, 1.0), row("b", 0.95, 2.0), row("c", 0.93, 3.0),  # c: b is better and faster
            row("d", 0.95, 2.0, threads=2),  # ties b: neither dominates the other
            row("e", 0.99, 9.0), row("f", 0.99, 5.0, status="failed: latency f: crashed"),
            row("g", 0.80, 1.0)]  # g: a is as fast and better
    assert [(r["variant"], r["threads"]) for r in pareto_front(rows)] == [("a", 1), ("b", 1), ("d", 2), ("e", 1)]
    adb = [row("x", 0.9, None, mean=2.0), row("y", 0.8, None, mean=3.0)]  # no p50: the mean counts
    assert [r["variant"] for r in pareto_front(adb)] == ["x"]


def test_tables_and_incomplete_reports(tmp_path):
    rows = [row("float32", 0.95, 0.1234, size=400_000), row("int8", 0.94, None, status="failed: latency int8: x")]
    mark_front(rows)
    report = {"device": "pi", "connect": "ssh", "rows": rows, "test_images": 359, "runs": 10, "warmup": 2,
              **summarize(rows)}
    assert report["complete"] is False and report["rows_failed"] == 1
    table = format_table(rows)
    assert "0.1234" in table and "390.6" in table and "failed: latency int8: x" in table
    md = to_markdown(report)
    assert "**INCOMPLETE: 1 of 2 rows failed**" in md and "- int8 (delegate xnnpack, 1 threads): failed" in md
    # mAP, corruption and slice figures are absent (empty cells), then the latencies
    assert to_csv(rows).splitlines()[1].startswith("d,float32,,xnnpack,1,0.95,,0.95,0.01,,,,,0.1234,")
    paths = write_report(tmp_path, report)
    assert json.loads(paths["json"].read_text())["complete"] is False


def test_compare_merges_devices(tmp_path):
    for device, scale in (("pi4", 10.0), ("pi5", 4.0)):
        rows = [row("float32", 0.95, 2 * scale, device=device, size=400_000),
                row("int8", 0.94, scale, device=device, size=110_000)]
        write_report(tmp_path / device, {"device": device, "rows": rows, **summarize(rows)})
    merged = compare_reports([tmp_path / "pi4", tmp_path / "pi5" / "report.json"], tmp_path / "cmp")
    assert merged["devices"] == ["pi4", "pi5"] and len(merged["rows"]) == 4
    front = [(r["device"], r["variant"]) for r in merged["rows"] if r["pareto"]]
    assert front == [("pi5", "float32"), ("pi5", "int8")]
    assert {p.name for p in (tmp_path / "cmp").iterdir()} == {"compare.json", "compare.csv", "compare.md",
                                                               "pareto.png"}
    assert format_table(merged["rows"], with_device=True).splitlines()[0].startswith("device")
    with pytest.raises(UsageError, match="no report.json"):
        compare_reports([tmp_path / "nothing"])
