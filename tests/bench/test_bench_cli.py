"""``edgecls bench`` through the real command line, in a fresh process."""
from __future__ import annotations

import json
import sys

from tests.bench.exported import copy_run, write_crashing_python
from tests.helpers import run_cli


def test_bench_help_lists_its_options():
    # A broken `edgecls bench --help` is a failure of its own, not a reason to skip the tests below.
    res = run_cli("bench", "--help")
    assert res.returncode == 0, res.stderr[-3000:]
    for option in ("--device", "--threads", "--runs", "--warmup", "--out", "--compare"):
        assert option in res.stdout, option


def test_bench_then_compare(run_dir, tmp_path):
    dev = tmp_path / "here.yaml"
    dev.write_text("name: here\nconnect: local\nthreads: [1, 2]\nruns: 20\nwarmup: 3\n")
    res = run_cli("bench", str(run_dir), "--device", str(dev), "--threads", "1", "--runs", "15",
                  "--out", str(tmp_path / "here"))
    assert res.returncode == 0, res.stderr[-3000:]
    lines = res.stdout.splitlines()
    # header, 2 rows, report:, then what int8 changed against float32 (a heading and one line)
    assert lines[0].split()[:3] == ["variant", "delegate", "thr"] and len(lines) == 6, lines
    assert lines[4].startswith("What compression changed besides top-1") and lines[5].startswith("  int8 vs float32:")
    assert "bench: [1/4] float32: accuracy" in res.stderr  # progress, then the table
    report = json.loads((tmp_path / "here" / "report.json").read_text())
    assert report["threads"] == [1] and report["runs"] == 15 and report["warmup"] == 3
    res = run_cli("bench", "--compare", str(tmp_path / "here"), str(tmp_path / "here"), "--out", str(tmp_path / "c"))
    assert res.returncode == 0 and res.stdout.startswith("device"), res.stderr
    assert (tmp_path / "c" / "pareto.png").exists()


def test_bench_exit_codes(run_dir, tmp_path):
    res = run_cli("bench", str(run_dir), "--device", "raspbery-pi-5")
    assert res.returncode == 2 and "did you mean 'raspberry-pi-5'" in res.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nconnect: local\ntreads: [1]\n")
    res = run_cli("bench", str(run_dir), "--device", str(bad))
    assert res.returncode == 2 and res.stderr.strip() == f"error: {bad}:3: treads: unknown key; did you mean 'threads'?"
    run = copy_run(run_dir, tmp_path / "run")
    crashing = write_crashing_python(tmp_path, sys.executable, when="--threads 1")
    dev = tmp_path / "crash.yaml"
    dev.write_text(f"name: crash\nconnect: local\npython: {crashing}\nthreads: [1]\nruns: 10\nwarmup: 1\n")
    res = run_cli("bench", str(run), "--device", str(dev))
    assert res.returncode == 1, res.stderr
    assert "crashed (SIGSEGV)" in res.stdout  # the table shows the failed rows
    assert res.stderr.strip().splitlines()[-1].startswith("error: 2 of 2 rows failed; the status column says why")
    assert json.loads((run / "bench" / "crash" / "report.json").read_text())["complete"] is False
