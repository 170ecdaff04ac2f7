"""edgecls bench on this host: the report files, their rows, and rows that fail without hiding it."""
from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest

from edgecls.bench import format_table, parse_threads, run_bench
from edgecls.devices import DeviceRecipe
from edgecls.errors import StageError, UsageError
from tests.bench.exported import copy_run, write_crashing_python
from tests.helpers import ROOT

ROW_KEYS = {"variant", "threads", "accuracy", "macro_f1", "ece", "latency_ms", "init_ms", "size_bytes", "peak_rss_mb",
            "device", "status", "top5_accuracy", "delegate", "pareto"}


def local(**kw) -> DeviceRecipe:
    return DeviceRecipe(**{"name": "local-test", "connect": "local", "threads": (1, 2), "runs": 30, "warmup": 5, **kw})


def test_local_bench_writes_every_report(run_dir, tmp_path):
    out = tmp_path / "bench"
    report = run_bench(run_dir, local(), out_dir=out)
    assert report["complete"] and report["rows_failed"] == 0 and report["accuracy_on"] == "device"
    assert {p.name for p in out.iterdir()} == {"report.json", "report.csv", "report.md", "pareto.png",
                                              "confusion-float32.png", "confusion-int8.png", "pr_curves.png",
                                              "reliability-float32.png", "reliability-int8.png", "drift.json",
                                              "drift.md", "drift.png"}
    saved = json.loads((out / "report.json").read_text())
    assert [r["variant"] for r in saved["rows"]] == ["float32", "float32", "int8", "int8"]
    assert [r["threads"] for r in saved["rows"]] == [1, 2, 1, 2]
    exported = {e["name"]: e for e in json.loads((run_dir / "export" / "export.json").read_text())["variants"]}
    for r in saved["rows"]:
        assert ROW_KEYS <= set(r), ROW_KEYS - set(r)
        lat = r["latency_ms"]
        assert set(lat) == {"p50", "p90", "p99", "mean"} and 0 < lat["p50"] <= lat["p90"] <= lat["p99"]
        assert r["status"] == "ok" and r["device"] == "local-test" and r["init_ms"] > 0 and r["peak_rss_mb"] > 10
        assert r["size_bytes"] == (run_dir / "export" / f"{r['variant']}.tflite").stat().st_size
        # The runtime's accuracy against the export stage's (TensorFlow's interpreter): the same model.
        assert abs(r["accuracy"] - exported[r["variant"]]["accuracy"]) <= 2 / saved["test_images"]
        assert 0 <= r["ece"] < 0.2 and 0.8 < r["macro_f1"] <= 1 and r["top5_accuracy"] >= r["accuracy"]
    assert any(r["pareto"] for r in saved["rows"])
    ev = saved["evaluations"][0]
    assert ev["workers"] == min(2, __import__("os").cpu_count()) and len(ev["confusion_matrix"]) == 10
    rows = list(csv.DictReader((out / "report.csv").open()))
    assert len(rows) == 4 and rows[0]["p50_ms"] and rows[0]["status"] == "ok"
    md = (out / "report.md").read_text()
    assert md.startswith("# Benchmark of digits on local-test") and "All 4 rows measured." in md
    assert "![accuracy against p50 latency](pareto.png)" in md and "| float32 | xnnpack |" in md
    table = format_table(saved["rows"]).splitlines()
    assert table[0].split()[:4] == ["variant", "delegate", "thr", "accuracy"] and len(table) == 5
    png = (out / "pareto.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_a_crash_and_a_missing_model_fail_their_rows(run_dir, tmp_path):
    run = copy_run(run_dir, tmp_path / "run")
    crashing = write_crashing_python(tmp_path, sys.executable, when="--threads 1")
    dev = local(python=str(crashing), threads=(1, 2), variants=("*",), model_suffix="_edgetpu")
    (run / "export" / "float32_edgetpu.tflite").write_bytes((run / "export" / "float32.tflite").read_bytes())
    report = run_bench(run, dev, out_dir=tmp_path / "out")
    rows = {(r["variant"], r["threads"]): r["status"] for r in report["rows"]}
    assert rows[("float32", 2)] == "ok"
    assert rows[("float32", 1)].startswith("failed: latency float32 threads=1: crashed (SIGSEGV)")
    for t in (1, 2):
        assert rows[("int8", t)].startswith("failed: model: export/int8_edgetpu.tflite not found: compile it with "
                                            "the Edge TPU compiler, edgetpu_compiler -o ")
    assert not report["complete"] and report["rows_failed"] == 3
    assert "**INCOMPLETE: 3 of 4 rows failed**" in (tmp_path / "out" / "report.md").read_text()


def test_bad_requests(run_dir, tmp_path):
    with pytest.raises(StageError, match="is .* a run directory"):
        run_bench(tmp_path, local(), out_dir=tmp_path / "o")
    (tmp_path / "recipe.yaml").write_text((run_dir / "recipe.yaml").read_text())
    with pytest.raises(StageError, match="run `edgecls export"):
        run_bench(tmp_path, local(), out_dir=tmp_path / "o")
    for bad in ("0", "257", "100000"):  # an interpreter asked for 100000 threads segfaults
        with pytest.raises(UsageError, match="from 1 to 256"):
            parse_threads(bad)
    with pytest.raises(StageError, match="no exported variant .* matches"):
        run_bench(run_dir, local(variants=("resnet*",)), out_dir=tmp_path / "o")
    assert parse_threads("1, 2,4") == (1, 2, 4) and parse_threads(None) is None
    for bad in ("0", "a,b", "", "2,-1"):
        with pytest.raises(UsageError):
            parse_threads(bad)
    with pytest.raises(UsageError):
        run_bench(run_dir, local(), runs=0, out_dir=tmp_path / "o")
    assert not (tmp_path / "o").exists()


def test_bench_and_devices_import_no_tensorflow_or_matplotlib():
    code = ("import sys, edgecls.bench, edgecls.devices, edgecls.devices.ssh, edgecls.devices.adb; "
            "bad = [m for m in ('tensorflow', 'matplotlib', 'keras', 'tf_keras') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
