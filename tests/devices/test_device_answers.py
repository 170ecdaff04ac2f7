"""A device's answer that is wrong (types, missing keys, no timings) fails its row with the reason, never `ok`.

The local runner is real: it runs the device's "python" from the device
recipe. Here that python is a small shell script that prints a wrong answer
where the runtime would print its JSON (``bench``, ``eval``, the probe) and
runs the real Python for everything else, so the answer is corrupted where it
truly comes from. The adb case uses the MOCK adb of test_adb_runner.py (no
phone here) with a benchmark_model log that reports impossible figures.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from edgecls.bench import run_bench
from edgecls.devices import DeviceError, DeviceRecipe, StepFailed
from edgecls.devices.adb import AdbRunner
from edgecls.devices.local import LocalRunner
from edgecls.errors import UsageError
from tests.devices.test_adb_runner import DATA, FAKE_ADB, FOLDER, phone
from tests.helpers import run_cli


def lying_python(folder: Path, *, bench: str | None = None, evaluation: str | None = None,
                 probe: str | None = None, when: str = "", real: str | os.PathLike = sys.executable) -> Path:
    """A device 'python' that prints ``bench``/``evaluation`` (one line each) for the runtime's ``bench``
    (with ``when`` among its arguments) and ``eval`` commands, ``EDGECLS-PROBE probe`` for the probe, and
    runs the ``real`` Python for everything else. Every command line goes to ``calls.log`` beside it."""
    folder.mkdir(parents=True, exist_ok=True)

    def answer(name: str, text: str | None) -> str:
        if text is None:
            return ":"
        (folder / name).write_text(text + "\n")
        return f"cat {folder / name}; exit 0"

    path = folder / "lying-python"
    path.write_text(f"""#!/bin/sh
echo "$@" >> {folder / 'calls.log'}
case " $* " in
  *EDGECLS-PROBE*) {answer('probe.txt', None if probe is None else 'EDGECLS-PROBE ' + probe)} ;;
  *" bench "*"{when}"*) {answer('bench.json', bench)} ;;
  *" eval "*) {answer('eval.json', evaluation)} ;;
esac
exec {real} "$@"
""")
    path.chmod(0o755)
    return path


def runner_for(python: Path, tmp_path: Path) -> LocalRunner:
    runner = LocalRunner(DeviceRecipe(name="liar", connect="local", python=str(python), timeout=120))
    runner.stage({"m": tmp_path / "m.tflite"}, tmp_path / "test.npz", tmp_path / "edgecls-runtime.pyz")
    return runner


@pytest.mark.parametrize("answer, reason", [
    ('{"threads": 1, "runs": 5, "backend": "ai-edge-litert"}',
     "the device's answer has no timings (keys: backend, runs, threads)"),
    ('{"p50_ms": null, "mean_ms": null, "threads": 1}', "the device's answer has no timings (keys: mean_ms, p50_ms, "
                                                        "threads)"),
    ('{"p50_ms": "fast", "mean_ms": 1.0, "threads": 1}', 'the device\'s answer has p50_ms="fast" (expected a number)'),
    ('{"p50_ms": NaN, "mean_ms": 1.0}', "the device's answer has p50_ms=NaN (expected a finite number)"),
    ('{"p50_ms": 1e999}', "the device's answer has p50_ms=Infinity (expected a finite number)"),
    ('{"mean_ms": -2.5}', "the device's answer has mean_ms=-2.5 (expected a number >= 0)"),
    ('{"mean_ms": 1' + '0' * 400 + '}',
     "the device's answer has mean_ms=1000000000000000000000000000000000000... (expected a finite number)"),
    ('{"mean_ms": true}', "the device's answer has mean_ms=true (expected a number)"),
    ('{"p50_ms": 1.0, "runs": 0}', "the device's answer has runs=0 (expected an integer >= 1)"),
    ('{"p50_ms": 1.0, "threads": 1.5}', "the device's answer has threads=1.5 (expected an integer)"),
    ('{"p50_ms": 1.0, "threads": 0}', "the device's answer has threads=0 (expected an integer in 1..256)"),
    ('{"p50_ms": 1.0, "init_ms": "3 ms"}', 'the device\'s answer has init_ms="3 ms" (expected a number)'),
    ('{"p50_ms": 1.0, "threads": 8}', "the device's answer is for threads=8, not the 1 asked for"),
    ('[1.0, 2.0]', "the runtime printed no JSON result"),
])
def test_a_wrong_latency_answer_fails_with_the_reason(tmp_path, answer, reason):
    runner = runner_for(lying_python(tmp_path / "dev", bench=answer), tmp_path)
    with pytest.raises(StepFailed) as err:
        runner.latency("m", threads=1, runs=5, warmup=1)
    assert err.value.step == "latency m threads=1" and err.value.reason == reason
    assert str(err.value) == f"device 'liar' (local), step 'latency m threads=1': {reason}"


_OK = '{"accuracy": 0.9, "macro_f1": 0.9, "ece": 0.1, "num_examples": 10'  # a valid answer, to add a key to


@pytest.mark.parametrize("answer, reason", [
    ('{"accuracy": 0.9}', "the device's answer has no macro_f1, ece, num_examples (keys: accuracy)"),
    ('{"accuracy": 1.5, "macro_f1": 0.9, "ece": 0.1, "num_examples": 10}',
     "the device's answer has accuracy=1.5 (expected a number in 0..1)"),
    ('{"accuracy": "0.9", "macro_f1": 0.9, "ece": 0.1, "num_examples": 10}',
     'the device\'s answer has accuracy="0.9" (expected a number)'),
    ('{"accuracy": 0.9, "macro_f1": 0.9, "ece": 0.1, "num_examples": 0}',
     "the device's answer has num_examples=0 (expected an integer >= 1)"),
    ('{"accuracy": 0.9, "macro_f1": 0.9, "ece": 0.1, "num_examples": 3, "confusion_matrix": [[1, 2]]}',
     "the device's answer has confusion_matrix=[[1, 2]] (expected a square matrix of counts)"),
    ('{"accuracy": 0.9, "macro_f1": 0.9, "ece": 0.1, "num_examples": 10, "confusion_matrix": [[1, 0], [0, 2]]}',
     "the device's answer counts 3 images in confusion_matrix but num_examples=10"),
    ('{"accuracy": 0.9, "macro_f1": 0.9, "ece": 0.1, "num_examples": 10, "seconds": -1}',
     "the device's answer has seconds=-1 (expected a number >= 0)"),
    # The nested figures the plots and tables read are checked to the leaf, with the path to it.
    (_OK + ', "average_precision": {"macro": 0.5, "per_class": {"0": "high"}}}',
     "the device's answer has average_precision.per_class.0=\"high\" (expected a number)"),
    (_OK + ', "reliability": {"bins": 2, "count": [1, 2], "accuracy": [null, 0.5], "confidence": [0.2, 1.5]}}',
     "the device's answer has reliability.confidence[1]=1.5 (expected a number in 0..1)"),
    (_OK + ', "reliability": {"bins": 3, "count": [1, 2], "accuracy": [null, 0.5], "confidence": [0.2, 0.5]}}',
     "the device's answer's reliability has arrays whose length is not bins=3"),
    (_OK + ', "pr_curve": {"recall": [0, 1], "macro": [1, 0.5], "precision": {"a": [1]}}}',
     "the device's answer's pr_curve has precision arrays whose length is not that of recall (2)"),
    (_OK + ', "slices": {"attributes": {"colour": {"red": {"n": 0, "accuracy": 1, "macro_f1": 1}}}}}',
     "the device's answer has slices.attributes.colour.red.n=0 (expected an integer >= 1)"),
    (_OK + ', "corruptions": {"severities": [1, 9], "accuracy": {}}}',
     "the device's answer has corruptions.severities[1]=9 (expected an integer in 1..5)"),
    (_OK + ', "corruptions": {"accuracy": {"jpeg": {"1": 0.5}}, "rm -rf": 1}}',
     "the device's answer has corruptions.rm -rf (not a key it may have: severities, accuracy, mean_accuracy, drop)"),
    (_OK + ', "worst_slice_gap": 3}', "the device's answer has worst_slice_gap=3 (expected a number in -1..1)"),
])
def test_a_wrong_evaluation_answer_fails_with_the_reason(tmp_path, answer, reason):
    runner = runner_for(lying_python(tmp_path / "dev", evaluation=answer), tmp_path)
    with pytest.raises(StepFailed) as err:
        runner.evaluate("m")
    assert err.value.step == "accuracy m" and err.value.reason == reason


@pytest.mark.parametrize("answer, reason", [
    ('{"python": 3.11, "backends": {}}', "the device's answer has python=3.11 (expected a string)"),
    ('{"python": "3.11.2", "numpy": "1.26.4"}', "the device's answer has no backends (keys: numpy, python)"),
    ('{"python": "3.11.2", "numpy": "1.26.4", "backends": ["ai_edge_litert"]}',
     "the device's answer has backends=[\"ai_edge_litert\"] (expected a JSON object)"),
    ('{"python": "3.11.2", "numpy": "1.26.4", "backends": {"ai_edge_litert": "yes"}}',
     "the device's answer has backends.ai_edge_litert=\"yes\" (expected a JSON object with ok: true or false)"),
    ('{"python": "3.11.2", "numpy": "1.26.4", "cpu_count": -4, "backends": {}}',
     "the device's answer has cpu_count=-4 (expected an integer >= 1)"),
])
def test_a_wrong_probe_answer_stops_the_device(tmp_path, answer, reason):
    runner = LocalRunner(DeviceRecipe(name="liar", connect="local", python=str(lying_python(tmp_path, probe=answer))))
    with pytest.raises(DeviceError) as err:
        runner.open()
    assert type(err.value) is DeviceError  # not one row: the device cannot be used at all
    assert str(err.value) == f"device 'liar' (local), step 'python': {reason}"


def test_the_real_answers_pass(tmp_path):
    """The probe goes through the lying python to the real one: its answer is accepted as before."""
    info = LocalRunner(DeviceRecipe(name="honest", python=str(lying_python(tmp_path)))).open()
    assert info["python"] == ".".join(map(str, sys.version_info[:3])) and info["cpu_count"] == os.cpu_count()


@pytest.mark.parametrize("threads", [0, 257, 100000, -1, True, 2.0])
def test_no_device_is_sent_threads_outside_1_to_256(tmp_path, threads):
    python = lying_python(tmp_path / "dev", bench='{"p50_ms": 1.0}')
    with pytest.raises(UsageError, match=r"threads: expected an integer from 1 to 256, got "):
        runner_for(python, tmp_path).latency("m", threads=threads, runs=5, warmup=1)
    assert not (tmp_path / "dev" / "calls.log").exists()  # refused before anything ran on the device
    answer = runner_for(python, tmp_path).latency("m", threads=1, runs=5, warmup=1)
    assert answer["p50_ms"] == 1.0 and answer["source"] == "edgecls-runtime bench"


def test_bench_rows_say_what_was_wrong(run_dir, tmp_path):
    """run_bench end to end: the lying answers fail their rows with the reason; true answers stay ok."""
    python = lying_python(tmp_path / "dev", bench='{"threads": 1, "runs": 5}', when="--threads 1 ")
    dev = DeviceRecipe(name="liar", connect="local", python=str(python), threads=(1, 2), runs=10, warmup=2)
    report = run_bench(run_dir, dev, out_dir=tmp_path / "out", plots=False)
    rows = {(r["variant"], r["threads"]): r for r in report["rows"]}
    for variant in ("float32", "int8"):
        bad, good = rows[(variant, 1)], rows[(variant, 2)]
        assert bad["status"] == (f"failed: latency {variant} threads=1: the device's answer has no timings "
                                 "(keys: runs, threads)")
        assert bad["latency_ms"] == {"p50": None, "p90": None, "p99": None, "mean": None}
        assert bad["accuracy"] == good["accuracy"] > 0.5  # the evaluation was true
        assert good["status"] == "ok" and good["latency_ms"]["p50"] > 0
    assert report["complete"] is False and report["rows_failed"] == 2

    python = lying_python(tmp_path / "dev2", evaluation='{"accuracy": "high", "macro_f1": 0.9, "ece": 0.1, '
                                                        '"num_examples": 360}')
    report = run_bench(run_dir, DeviceRecipe(name="liar", python=str(python), runs=10, warmup=2),
                       out_dir=tmp_path / "out2", plots=False)
    statuses = [r["status"] for r in report["rows"]]
    assert statuses == [f"failed: accuracy {v}: the device's answer has accuracy=\"high\" (expected a number)"
                        for v in ("float32", "int8")]
    assert all(r["accuracy"] is None for r in report["rows"]) and report["evaluations"] == []


def test_the_cli_exits_1_and_shows_the_reason(run_dir, tmp_path):
    python = lying_python(tmp_path / "dev", bench='{"p50_ms": "NaN", "threads": 1}')
    dev = tmp_path / "liar.yaml"
    dev.write_text(f"name: liar\nconnect: local\npython: {python}\nthreads: [1]\nruns: 5\nwarmup: 1\n")
    res = run_cli("bench", str(run_dir), "--device", str(dev), "--out", str(tmp_path / "out"))
    assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr[-3000:]
    assert "p50_ms=\"NaN\" (expected a number)" in res.stdout  # the table's status column
    assert res.stderr.strip().splitlines()[-1].startswith("error: 2 of 2 rows failed; the status column says why")
    saved = json.loads((tmp_path / "out" / "report.json").read_text())
    assert [r["status"].startswith("failed: latency ") for r in saved["rows"]] == [True, True]


@pytest.fixture
def bad_adb(tmp_path, monkeypatch):
    """The mock adb (no phone here) whose benchmark_model reports a negative mean time."""
    data = tmp_path / "data"
    data.mkdir()
    log = (DATA / "benchmark_model_xnnpack.txt").read_text()
    assert "Inference (avg): 61.24" in log
    (data / "benchmark_model_xnnpack.txt").write_text(log.replace("Inference (avg): 61.24", "Inference (avg): -61.24"))
    bindir = tmp_path / "bin"
    bindir.mkdir()
    adb = bindir / "adb"
    adb.write_text(FAKE_ADB.replace("{python}", sys.executable).replace("{folder}", FOLDER))
    adb.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_ADB_LOG", str(tmp_path / "adb-calls.jsonl"))
    monkeypatch.setenv("FAKE_ADB_DATA", str(data))
    binary = tmp_path / "android_aarch64_benchmark_model"
    binary.write_bytes(b"\x7fELF not really")
    return binary


def test_a_wrong_benchmark_model_answer_fails_with_the_reason(bad_adb, tmp_path):
    model = tmp_path / "int8.tflite"
    model.write_bytes(b"not read by the mock")
    with AdbRunner(phone(bad_adb, delegates=("xnnpack",))) as runner:
        runner.open()
        runner.stage({"int8": model}, None, None)
        with pytest.raises(StepFailed) as err:
            runner.latency("int8", threads=2, runs=50, warmup=5)
    assert str(err.value) == ("device 'pixel' (adb R58M123), step 'latency int8 threads=2': the device's answer has "
                              "mean_ms=-0.06124 (expected a number >= 0)")
