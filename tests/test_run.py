"""The run directory contract: one writer (the lock), provenance (stale results never pass as current),
--force that loses nothing until the new model trains, and damaged files that give one line."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from edgecls import fileio
from edgecls.errors import StageError
from edgecls.run import ExportRecord, MadeFrom, Run, RunLocked, TrainRecord, sha256_file
from tests.bench.exported import RECIPE
from tests.helpers import ROOT, run_cli

@pytest.fixture
def quick_recipe(tmp_path) -> Path:
    """The bench tests' digits recipe (3 epochs; float32 and int8 variants straight from the trained model)."""
    path = tmp_path / "quick.yaml"
    path.write_text(RECIPE)
    return path


def _status(run: Path) -> dict[str, dict]:
    res = run_cli("status", str(run), "--json")
    assert "Traceback" not in res.stderr, res.stderr
    return {f"{r['kind']}:{r['name']}": r for r in map(json.loads, res.stdout.splitlines())}, res.returncode


def test_names_are_file_names(tmp_path):
    run = Run(tmp_path)
    for bad in ("../x", "a/b", "..", "", "x\ny"):
        with pytest.raises(StageError, match="names may hold only"):
            run.variant(bad)
    assert run.variant("int8_v1.2-a") == tmp_path / "export" / "int8_v1.2-a.tflite"


def test_records_round_trip_and_damage_is_one_line(tmp_path):
    rec = TrainRecord(metrics={"accuracy": 0.5, "per_class": {}}, train_seconds=1.0, replicas=1,
                      output_sha256="ab", made_from=MadeFrom({"data": "1"}, {"split.json": "2"}))
    again = TrainRecord.from_json(json.loads(json.dumps(rec.to_json())))
    assert again == rec and again.to_json()["accuracy"] == 0.5  # flat, as metrics.json always was
    run = Run(tmp_path)
    run.export.mkdir()
    run.export_json.write_text('{"variants": [{"name": "x"}]')  # cut short
    with pytest.raises(StageError, match="not valid JSON.*--force"):
        run.exported()
    run.export_json.write_text('{"variants": [{"name": "x"}]}')  # parses, but not a variant record
    with pytest.raises(StageError, match="missing source, mode"):
        run.exported()
    with pytest.raises(StageError, match="no 'variants' list"):
        ExportRecord.from_json([1, 2])


def test_lock_refuses_a_second_writer_and_survives_a_crash(tmp_path):
    run = Run(tmp_path / "r")
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from edgecls.run import Run
        with Run({str(run.root)!r}).lock("holder"):
            print("held", flush=True)
            time.sleep(60)
        """)], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunLocked, match=f"being written by process {holder.pid} \\(holder"):
            with run.lock("second"):
                pass
    finally:
        holder.send_signal(signal.SIGKILL)  # a crash: no cleanup runs
        holder.wait()
    with run.lock("after the crash") as lock:  # the kernel released the flock with the process
        with run.lock("nested, same process"):  # run_all's stages take it again: no self-deadlock
            pass
    assert lock is not None


def test_fileio_keeps_umask_and_names_a_full_disk(tmp_path):
    old = os.umask(0o022)
    try:
        path = fileio.write_text(tmp_path / "a.txt", "x")
        assert (path.stat().st_mode & 0o777) == 0o644  # not mkstemp's 0600
    finally:
        os.umask(old)
    if os.geteuid() != 0:
        pytest.skip("a full disk is made with a 64 KiB tmpfs, which needs root (CI runs as root)")
    mnt = tmp_path / "small"
    mnt.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)], capture_output=True)
    if res.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {res.stderr.decode().strip()}")
    try:
        target = mnt / "model.tflite"
        fileio.write_bytes(target, b"old")
        with pytest.raises(fileio.DiskFull, match=f"{target}: no space left"):
            fileio.write_bytes(target, b"x" * 200_000)
        assert target.read_bytes() == b"old"  # the earlier file is intact
        assert [p.name for p in mnt.iterdir()] == ["model.tflite"]  # no temp file left behind
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


def test_second_train_fails_at_once_and_first_finishes(tmp_path, quick_recipe):
    run = tmp_path / "run"
    first = subprocess.Popen([sys.executable, "-m", "edgecls", "train", str(quick_recipe), "--run-dir", str(run),
                              "--set", "train.epochs=6"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not ((run / ".lock").is_file() and (run / ".lock").read_text()):  # the first holds the run
        assert first.poll() is None, first.communicate()
        assert time.time() < deadline, "the first train never took the lock"
        time.sleep(0.1)
    t0 = time.monotonic()
    second = run_cli("train", str(quick_recipe), "--run-dir", str(run), "--set", "train.epochs=2")
    took = time.monotonic() - t0
    assert second.returncode == 1, second.stderr
    errors = [ln for ln in second.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and f"being written by process {first.pid}" in errors[0], second.stderr
    assert took < 2.0, f"the second writer took {took:.1f} s to be told"
    out, err = first.communicate(timeout=600)
    assert first.returncode == 0, err[-2000:]
    history = (run / "train" / "history.csv").read_text().strip().splitlines()
    assert len(history) == 1 + 6  # header + the first run's epochs only
    assert "epochs: 6" in (run / "recipe.yaml").read_text()


def test_force_retrain_makes_exports_stale_and_export_redoes_them(tmp_path, quick_recipe):
    run = tmp_path / "run"
    res = run_cli("run", str(quick_recipe), "--run-dir", str(run), "--device", "local")  # train, export, bench
    assert res.returncode == 0, res.stderr
    assert "pareto.png" in res.stdout and res.stdout.count(" ok") >= 4  # 2 variants x threads 1, 2
    rows, code = _status(run)
    assert code == 0 and {r["state"] for r in rows.values()} == {"done"} and "bench:local" in rows, rows
    res = run_cli("run", str(quick_recipe), "--run-dir", str(run), "--device", "none")  # all current: no work
    assert res.returncode == 0 and "already trained" in res.stderr and res.stderr.count("is done") == 2
    old_model = sha256_file(run / "train" / "model.keras")

    # A bad new recipe with --force: nothing is deleted.
    res = run_cli("train", str(quick_recipe), "--run-dir", str(run), "--force", "--set", "train.epochs=-1")
    assert res.returncode == 2 and sha256_file(run / "train" / "model.keras") == old_model

    res = run_cli("train", str(quick_recipe), "--run-dir", str(run), "--force", "--set", "train.epochs=1",
                  "--set", "train.optimizer.learning_rate=0.0003")
    assert res.returncode == 0, res.stderr
    new_metrics = json.loads((run / "train" / "metrics.json").read_text())
    rows, code = _status(run)
    assert code == 3 and rows["train:train"]["state"] == "done"
    for v in ("float32", "int8"):
        assert rows[f"variant:{v}"]["state"] == "stale", rows
        assert "train/model.keras changed since" in rows[f"variant:{v}"]["why"]
    assert rows["bench:local"]["state"] == "stale", rows  # its variants' records no longer hold
    res = run_cli("bench", str(run))  # timing stale files would report numbers for another model
    assert res.returncode == 1 and "is stale" in res.stderr and "edgecls export" in res.stderr

    res = run_cli("export", str(run))
    assert res.returncode == 0, res.stderr
    assert res.stderr.count("is stale (train/model.keras changed since)") == 2
    exported = json.loads((run / "export" / "export.json").read_text())
    for v in exported["variants"]:
        assert v["source_accuracy"] == pytest.approx(new_metrics["accuracy"], abs=1e-6)
    f32 = next(v for v in exported["variants"] if v["name"] == "float32")
    assert f32["accuracy"] == pytest.approx(new_metrics["accuracy"], abs=0.01)
    rows, code = _status(run)
    assert rows["variant:int8"]["state"] == "done" and rows["bench:local"]["state"] == "stale", rows
    assert "export/" in rows["bench:local"]["why"] and "changed since" in rows["bench:local"]["why"]
    assert run_cli("bench", str(run), "--threads", "1", "--runs", "5").returncode == 0
    rows, code = _status(run)
    assert code == 0, rows

    # A new export list keeps the trained model: only what training reads must match.
    res = run_cli("run", str(quick_recipe), "--run-dir", str(run), "--device", "none", "--set", "train.epochs=1",
                  "--set", "train.optimizer.learning_rate=0.0003",
                  "--set", "export=[{name: f16, source: train, mode: float16}]")
    assert res.returncode == 0 and "already trained" in res.stderr, res.stderr
    assert (run / "export" / "f16.tflite").is_file() and "f16" in (run / "recipe.yaml").read_text()

    # A damaged export.json: one line for each command that reads it, exit 1.
    (run / "export" / "export.json").write_text("{not json")
    for cmd in (["export", str(run)], ["bench", str(run)], ["status", str(run)]):
        res = run_cli(*cmd)
        assert res.returncode == 1 and len(res.stderr.strip().splitlines()) == 1, (cmd, res.stderr)
        assert "export.json: not valid JSON" in res.stderr and "Traceback" not in res.stderr


def test_damaged_bench_reports_are_one_line(tmp_path):
    bench = tmp_path / "bench" / "local"
    bench.mkdir(parents=True)
    for text in ('{"rows": [', '[1, 2]', '{"rows": "x"}', '\xff\xfe'):
        (bench / "report.json").write_bytes(text.encode("latin-1"))
        res = run_cli("bench", "--compare", str(bench))
        assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
        assert len(res.stderr.strip().splitlines()) == 1 and "report.json: not a" in res.stderr
    assert Run(tmp_path)._bench_status("local", None, {}).state == "failed"  # status goes on with the others


def test_staleness_follows_the_chain_of_models(tmp_path):
    """train -> compress stage -> variant: a new trained model makes the stage stale, and the variant
    made from that stage stale too (its own file hashes still match); export refuses to ship it."""
    recipe = tmp_path / "chain.yaml"
    recipe.write_text(RECIPE.replace("export:\n", "compress:\n  - {name: c16, kind: cluster, epochs: 0, "
                                     "options: {clusters: 16}}\nexport:\n  - {name: c16_f32, source: c16, "
                                     "mode: float32}\n"))
    run = tmp_path / "run"
    res = run_cli("run", str(recipe), "--run-dir", str(run), "--device", "none")
    assert res.returncode == 0, res.stderr
    rows, code = _status(run)
    assert code == 0, rows
    res = run_cli("train", str(recipe), "--run-dir", str(run), "--force", "--set", "train.epochs=1")
    assert res.returncode == 0, res.stderr
    rows, _ = _status(run)
    assert rows["stage:c16"]["state"] == "stale" and "train/model.keras changed" in rows["stage:c16"]["why"]
    assert rows["variant:c16_f32"] == {**rows["variant:c16_f32"], "state": "stale",
                                       "why": "its source 'c16' is stale"}
    res = run_cli("export", str(run), "--variant", "c16_f32", "--force")
    assert res.returncode == 1 and "reads compress stage 'c16', which is stale" in res.stderr, res.stderr
    res = run_cli("compress", str(run))
    assert res.returncode == 0 and "c16 is stale (train/model.keras changed since)" in res.stderr, res.stderr
    res = run_cli("export", str(run))
    assert res.returncode == 0 and "c16_f32 is stale (compress/c16.keras changed since)" in res.stderr
    rows, code = _status(run)
    assert code == 0, rows
