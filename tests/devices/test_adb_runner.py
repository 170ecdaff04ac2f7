"""The adb runner, against a MOCK ``adb``: no phone is available to these tests.

The test puts a fake ``adb`` executable first on PATH. It records every argv
(JSON lines), answers ``get-state``/``getprop``/``mktemp``/``push`` as adb
would, and for ``shell .../benchmark_model --graph=... --num_threads=N ...``
prints a benchmark_model log from tests/devices/data/. Those logs follow the
format strings of TFLite's benchmark tool (``benchmark_model.cc``,
``benchmark_tflite_model.cc``: "Inference timings in us: Init: ..., First
inference: ..., Warmup (avg): ..., Inference (avg): ...", the ``count=``
lines, the memory lines, "Explicitly applied GPU delegate ..."); they are
written to that format, not captured from a phone. What is real: the runner's
adb argument lists, the benchmark_model flags, the parsing, the report, and
the accuracy, which is computed on this host with the runtime.
"""
from __future__ import annotations

import json
import os
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from edgecls.bench import run_bench
from edgecls.devices import DeviceError, DeviceRecipe
from edgecls.devices.adb import parse_benchmark_output

DATA = Path(__file__).parent / "data"
FOLDER = "/data/local/tmp/edgecls/edgecls.a1B2c3"

FAKE_ADB = r'''#!{python}
"""A mock adb for the tests (no phone here): records argv, answers like adb, prints benchmark_model logs."""
import json, os, shlex, sys
args = sys.argv[1:]
with open(os.environ["FAKE_ADB_LOG"], "a") as fh:
    fh.write(json.dumps(sys.argv) + "\n")
if args[:1] == ["-s"]:
    args = args[2:]
state = os.environ.get("FAKE_ADB_STATE", "device")
if args == ["get-state"]:
    if state != "device":
        print("error: no devices/emulators found", file=sys.stderr)
        sys.exit(1)
    print("device")
    sys.exit(0)
if args[0] == "push":
    src, dst = args[1], args[2]
    if not os.path.isfile(src):
        print(f"adb: error: cannot stat '{src}': No such file or directory", file=sys.stderr)
        sys.exit(1)
    print(f"{src}: 1 file pushed, 0 skipped. 41.2 MB/s ({os.path.getsize(src)} bytes in 0.001s)")
    sys.exit(0)
if args[0] == "shell":
    command = args[1]
    if "getprop" in command:
        print("Google\nPixel 7\narm64-v8a\n14\n8")
    elif "mktemp -d" in command:
        print("{folder}")
    elif "benchmark_model --graph=" in command:
        argv = shlex.split(command)
        flags = dict(a[2:].split("=", 1) for a in argv[1:])
        name = "gpu" if flags.get("use_gpu") == "true" else "nnapi_unavailable" if flags.get("use_nnapi") == "true" \
            else "xnnpack"
        text = open(os.path.join(os.environ["FAKE_ADB_DATA"], f"benchmark_model_{name}.txt")).read()
        print(text.format(graph=flags["graph"], threads=flags["num_threads"], runs=flags["num_runs"],
                          warmup=flags["warmup_runs"]))
    sys.exit(0)
print("adb: unknown command " + " ".join(args), file=sys.stderr)
sys.exit(1)
'''


@pytest.fixture
def fake_adb(tmp_path, monkeypatch):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    adb = bindir / "adb"
    adb.write_text(FAKE_ADB.replace("{python}", sys.executable).replace("{folder}", FOLDER))
    adb.chmod(0o755)
    log = tmp_path / "adb-calls.jsonl"
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_ADB_LOG", str(log))
    monkeypatch.setenv("FAKE_ADB_DATA", str(DATA))
    binary = tmp_path / "android_aarch64_benchmark_model"
    binary.write_bytes(b"\x7fELF not really")
    return log, binary


def calls(log: Path) -> list[list[str]]:
    return [json.loads(line)[1:] for line in log.read_text().splitlines()]


def phone(binary: Path, **changes) -> DeviceRecipe:
    base = DeviceRecipe(name="pixel", connect="adb", host="R58M123", benchmark_model=str(binary), threads=(1, 2),
                        delegates=("xnnpack", "gpu", "nnapi"), runs=50, warmup=5)
    return replace(base, **changes)


def test_parse_benchmark_model_output():
    text = (DATA / "benchmark_model_xnnpack.txt").read_text().format(graph="/x/m.tflite", threads=4, runs=50,
                                                                     warmup=10)
    p = parse_benchmark_output(text)
    assert p["init_ms"] == pytest.approx(3.214) and p["mean_ms"] == pytest.approx(0.06124)
    assert p["first_inference_ms"] == pytest.approx(0.412) and p["warmup_avg_ms"] == pytest.approx(0.0963)
    assert p["runs"] == 50 and p["min_ms"] == pytest.approx(0.057) and p["max_ms"] == pytest.approx(0.088)
    assert p["peak_rss_mb"] == pytest.approx(7.26953) and p["p50_ms"] is None
    assert p["delegates_applied"] == {"xnnpack": "completely"}
    # Older tools: "Peak memory footprint (MB): init=.. overall=..", no INFO: prefix; LiteRT-style percentile lines.
    old = ("count=50 first=14843 curr=14412 min=14151 max=15600 avg=14575.2 std=290\n\n"
           "Inference timings in us: Init: 5685, First inference: 18535, Warmup (avg): 14462.3, Inference (avg): "
           "14575.2\nPeak memory footprint (MB): init=3.5 overall=18.25\nInference (median): 14.52 ms\n"
           "Inference (p95): 15.1 ms\n")
    p = parse_benchmark_output(old)
    assert p["mean_ms"] == pytest.approx(14.5752) and p["peak_rss_mb"] == 18.25 and p["p50_ms"] == 14.52
    assert p["p95_ms"] == 15.1 and p["std_ms"] == pytest.approx(0.29)
    with pytest.raises(ValueError):
        parse_benchmark_output("ERROR: Failed to allocate tensors!\nBenchmarking failed.")


def test_adb_bench_with_a_mock_adb(fake_adb, run_dir, tmp_path):
    log, binary = fake_adb
    report = run_bench(run_dir, phone(binary), out_dir=tmp_path / "out")
    argv = calls(log)
    assert argv[0] == ["-s", "R58M123", "get-state"]
    assert ["-s", "R58M123", "push", str(binary), f"{FOLDER}/benchmark_model"] in argv
    for v in ("float32", "int8"):
        assert ["-s", "R58M123", "push", str(run_dir / "export" / f"{v}.tflite"), f"{FOLDER}/models/{v}.tflite"] in argv
    runs = [a[3] for a in argv if a[2] == "shell" and "benchmark_model --graph" in a[3]]
    assert len(runs) == 2 * 3 * 2  # variants x delegates x threads
    assert (f"{FOLDER}/benchmark_model --graph={FOLDER}/models/int8.tflite --num_threads=2 --num_runs=50 "
            "--warmup_runs=5 --min_secs=0 --warmup_min_secs=0 --report_peak_memory_footprint=true "
            "--use_gpu=true") in runs
    assert any("--num_threads=1" in r and "--use_xnnpack=true" in r for r in runs)
    assert any("--use_nnapi=true" in r for r in runs)
    assert argv[-1] == ["-s", "R58M123", "shell", f"rm -rf {FOLDER}"]  # cleaned up

    rows = {(r["variant"], r["delegate"], r["threads"]): r for r in report["rows"]}
    x = rows[("int8", "xnnpack", 2)]
    assert x["status"] == "ok" and x["latency_ms"] == {"p50": None, "p90": None, "p99": None, "mean": 0.0612}
    assert x["init_ms"] == pytest.approx(3.214) and x["peak_rss_mb"] == pytest.approx(7.3)
    assert x["latency_source"] == "benchmark_model" and x["accuracy_on"] == "host"
    g = rows[("float32", "gpu", 1)]
    assert g["status"] == "ok" and g["latency_ms"]["mean"] == pytest.approx(0.2285) and g["init_ms"] > 400
    n = rows[("float32", "nnapi", 1)]["status"]
    assert n.startswith("failed: latency float32 threads=1: benchmark_model did not apply the NNAPI delegate"), n
    assert "unsupported on this platform" in n
    assert report["complete"] is False and report["rows_failed"] == 4 and report["accuracy_on"] == "host"
    assert report["device_info"]["model"] == "Google Pixel 7" and report["device_info"]["abi"] == "arm64-v8a"
    # Accuracy on this host, with the runtime: what the export stage measured with TensorFlow's interpreter.
    exported = {e["name"]: e for e in json.loads((run_dir / "export" / "export.json").read_text())["variants"]}
    for (variant, _, _), r in rows.items():
        assert abs(r["accuracy"] - exported[variant]["accuracy"]) <= 2 / report["test_images"]
    assert (tmp_path / "out" / "pareto.png").exists()  # the mean stands in for p50
    assert "benchmark_model reports no percentiles" in (tmp_path / "out" / "report.md").read_text()


def test_adb_errors_name_device_and_step(fake_adb, run_dir, tmp_path, monkeypatch):
    log, binary = fake_adb
    with pytest.raises(DeviceError) as err:
        run_bench(run_dir, phone(binary, benchmark_model=None), out_dir=tmp_path / "o")
    assert str(err.value).startswith("device 'pixel' (adb R58M123), step 'benchmark_model': no benchmark_model")
    with pytest.raises(DeviceError) as err:
        run_bench(run_dir, phone(tmp_path / "missing"), out_dir=tmp_path / "o")
    assert "step 'benchmark_model'" in str(err.value) and "no such file" in str(err.value)
    monkeypatch.setenv("FAKE_ADB_STATE", "none")
    with pytest.raises(DeviceError) as err:
        run_bench(run_dir, phone(binary), out_dir=tmp_path / "o")
    assert "step 'connect': error: no devices/emulators found (no phone attached" in str(err.value)
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    with pytest.raises(DeviceError) as err:
        run_bench(run_dir, phone(binary), out_dir=tmp_path / "o")
    assert "step 'connect': adb: command not found; install Android's platform-tools" in str(err.value)
    assert not (tmp_path / "o").exists()
