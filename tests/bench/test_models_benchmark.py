"""benchmarks/models.py, the zoo table through the public API: a run directory per model, rows on disk after
every model, a failing net recorded, --resume, and a re-run that reuses the training it can."""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

import edgecls

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_models", ROOT / "benchmarks" / "models.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def args(tmp_path: Path, *more: str) -> list[str]:
    return ["--only", "lenet5,resnet8", "--epochs", "1", "--count", "120", "--runs", "3", "--out",
            str(tmp_path / "out"), "--json", str(tmp_path / "m.json"), "--png", str(tmp_path / "m.png"), *more]


def rows(tmp_path: Path) -> list[dict]:
    return json.loads((tmp_path / "m.json").read_text())["rows"]


def test_table_json_plot_and_a_failing_net(bench, tmp_path, capsys):
    out = tmp_path / "out"
    # Another process is writing resnet8's run directory: its row fails, lenet5's is measured.
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, edgecls\nwith edgecls.Run(sys.argv[1]).lock('train'):\n"
         "    print('held', flush=True); sys.stdin.read()", str(out / "resnet8")],
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        assert bench.main(args(tmp_path)) == 1  # a failed row makes the run fail, after the others are written
    finally:
        holder.communicate("")
    lenet, resnet = rows(tmp_path)
    assert lenet["model"] == "lenet5" and lenet["params"] > 10_000 and lenet["macs"] > lenet["params"]
    assert 0.0 <= lenet["int8_acc"] <= 1.0 and lenet["int8_ms"] > 0 and lenet["int8_kb"] > 10
    assert 0.0 <= lenet["float_acc"] <= 1.0 and lenet["train_s"] > 0
    assert resnet["error"].startswith("RunLocked: ") and "is being written by process" in resnet["error"]
    # The figures are the run directory's own records: what `edgecls train/export/bench` wrote.
    lenet_run = edgecls.Run(out / "lenet5")
    assert lenet["float_acc"] == lenet_run.training().accuracy
    int8 = lenet_run.exported().variant("int8")
    assert int8.input_dtype == "int8" and int8.output_dtype == "int8" and int8.fully_integer
    report = json.loads(lenet_run.bench_report("local").read_text())
    assert report["runs"] == 3 and report["threads"] == [1]
    assert lenet["int8_acc"] == next(r["accuracy"] for r in report["rows"] if r["variant"] == "int8")
    printed = capsys.readouterr()
    assert "| lenet5 | " in printed.out and "| resnet8 | failed: RunLocked: " in printed.out
    assert "[2/2] resnet8: FAILED RunLocked" in printed.err  # progress goes to stderr
    assert (tmp_path / "m.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # --resume keeps lenet5's row (same schedule) and measures only resnet8, which fails no more.
    model, bench_report = lenet_run.model.stat().st_mtime_ns, lenet_run.bench_report("local").stat().st_mtime_ns
    assert bench.main(args(tmp_path, "--resume")) == 0
    lenet2, resnet2 = rows(tmp_path)
    assert lenet2 == lenet and "error" not in resnet2 and resnet2["params"] > 10_000
    assert lenet_run.model.stat().st_mtime_ns == model
    assert lenet_run.bench_report("local").stat().st_mtime_ns == bench_report
    assert edgecls.Run(out / "resnet8").training() is not None

    # Another schedule is not the same measurement: no row is kept. Training depends only on the recipe,
    # so more timed runs re-bench on the models already trained ...
    assert bench.main(args(tmp_path, "--resume", "--runs", "4")) == 0
    assert [r["schedule"]["runs"] for r in rows(tmp_path)] == [4, 4]
    assert json.loads(lenet_run.bench_report("local").read_text())["runs"] == 4
    assert lenet_run.model.stat().st_mtime_ns == model and rows(tmp_path)[0]["train_s"] == lenet["train_s"]

    # ... while another number of epochs is another recipe: trained again.
    assert bench.main(args(tmp_path, "--resume", "--runs", "4", "--epochs", "2", "--only", "lenet5")) == 0
    assert lenet_run.model.stat().st_mtime_ns != model
    assert edgecls.Recipe.load(lenet_run.recipe).train.epochs == 2
    assert rows(tmp_path)[0]["float_acc"] == lenet_run.training().accuracy
