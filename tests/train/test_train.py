"""Training through the real CLI in fresh processes: accuracy, the run directory, determinism,
resume after SIGKILL, MirroredStrategy over two logical CPU devices, and the run-directory guards."""
from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from tests.helpers import RECIPES, run_cli

DIGITS = str(RECIPES / "digits.yaml")


def read_history(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The digits recipe as shipped, trained once for the tests that inspect its run directory."""
    run = tmp_path_factory.mktemp("digits") / "run"
    res = run_cli("train", DIGITS, "--run-dir", str(run))
    assert res.returncode == 0, res.stderr[-3000:]
    return run, res


def test_digits_reaches_accuracy_and_fills_run_dir(trained):
    run, res = trained
    m = json.loads((run / "train" / "metrics.json").read_text())
    assert m["accuracy"] >= 0.95, m["accuracy"]
    for key in ("top5_accuracy", "macro_precision", "macro_recall", "macro_f1", "per_class", "confusion_matrix", "ece"):
        assert key in m
    assert set(m["per_class"]) == {str(i) for i in range(10)}
    split = json.loads((run / "split.json").read_text())
    assert sum(map(sum, m["confusion_matrix"])) == m["num_examples"] == len(split["test"])
    assert (run / "recipe.yaml").exists() and (run / "split.json").exists()
    rows = read_history(run / "train" / "history.csv")
    assert [int(r["epoch"]) for r in rows] == list(range(1, 41))
    assert {"loss", "accuracy", "val_loss", "val_accuracy", "lr"} <= set(rows[0])
    ckpts = sorted((run / "train" / "checkpoints").glob("epoch-*.weights.h5"))
    assert [c.name for c in ckpts] == ["epoch-038.weights.h5", "epoch-039.weights.h5", "epoch-040.weights.h5"]
    assert any((run / "train" / "tensorboard").rglob("events.out.tfevents.*"))
    assert not (run / "train" / "checkpoints" / "backup").exists()  # a finished run leaves no backup
    assert "accuracy" in res.stdout and "strategy default: 1 replica(s); global batch 32" in res.stderr


def test_saved_model_reloads_and_agrees(trained):
    """model.keras is a complete model: reloaded, it gives the recorded test accuracy."""
    run, _ = trained
    code = f"""
import json, numpy as np
from edgecls.run import Run
from edgecls.recipe import load_recipe
from edgecls.data.run_data import load_run_data
run = Run.open({str(run)!r})
r = load_recipe(run.recipe)
x, y = load_run_data(r, run).arrays('test')
acc = float((run.load_model(r, 'train').predict(x, verbose=0).argmax(1) == y).mean())
print(acc, json.load(open(run.train_metrics))['accuracy'])
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    got, recorded = map(float, out.stdout.split()[-2:])
    assert abs(got - recorded) < 1e-6


def test_trained_run_is_not_overwritten(trained):
    run, _ = trained
    before = (run / "train" / "metrics.json").read_text()
    res = run_cli("train", DIGITS, "--run-dir", str(run))
    assert res.returncode == 1 and "exists: this run is trained" in res.stderr and "Traceback" not in res.stderr
    res = run_cli("train", DIGITS, "--run-dir", str(run), "--resume", "--set", "train.epochs=3")
    assert res.returncode == 1 and "different recipe (changed: train.epochs)" in res.stderr
    res = run_cli("train", DIGITS, "--run-dir", str(run), "--resume")  # complete: prints metrics, trains nothing
    assert res.returncode == 0 and "already trained" in res.stderr
    assert (run / "train" / "metrics.json").read_text() == before


def test_same_seed_same_metrics(tmp_path):
    runs = []
    for name in ("a", "b"):
        res = run_cli("train", DIGITS, "--run-dir", str(tmp_path / name), "--set", "train.epochs=3")
        assert res.returncode == 0, res.stderr[-2000:]
        m = json.loads((tmp_path / name / "train" / "metrics.json").read_text())
        m.pop("train_seconds")
        m.pop("output_sha256")  # the .keras zip holds a save time; the weights and figures are what must agree
        runs.append(m)
    assert runs[0] == runs[1]
    assert (tmp_path / "a" / "split.json").read_text() == (tmp_path / "b" / "split.json").read_text()


def test_resume_after_sigkill_continues_from_backup(tmp_path):
    run = tmp_path / "run"
    # A slower run (more epochs, small batches) so that the kill lands mid-training.
    args = ["train", DIGITS, "--run-dir", str(run), "--set", "train.epochs=14", "--set", "train.batch_size=16"]
    proc = subprocess.Popen([sys.executable, "-m", "edgecls", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    history = run / "train" / "history.csv"
    deadline = time.time() + 300
    while time.time() < deadline:
        if history.exists() and len(read_history(history)) >= 2 and (run / "train" / "checkpoints" / "backup").exists():
            break
        assert proc.poll() is None, "training ended before it could be killed"
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = len(read_history(history))
    assert not (run / "train" / "model.keras").exists()

    res = run_cli(*args)  # no --resume: refuses, names the way out
    assert res.returncode == 1 and "--resume" in res.stderr

    res = run_cli(*args, "--resume")
    assert res.returncode == 0, res.stderr[-3000:]
    first = int(re.search(r"epoch (\d+)/14", res.stderr).group(1))
    assert first > 1 and first >= done_before - 1, (first, done_before)  # from the backup, not from scratch
    assert [int(r["epoch"]) for r in read_history(history)] == list(range(1, 15))
    assert json.loads((run / "train" / "metrics.json").read_text())["accuracy"] >= 0.9


def test_mirrored_over_two_logical_cpus(tmp_path):
    res = run_cli("train", DIGITS, "--run-dir", str(tmp_path / "run"), "--set", "train.strategy=mirrored",
                  "--set", "train.cpu_replicas=2", "--set", "train.epochs=10")
    assert res.returncode == 0, res.stderr[-3000:]
    assert "strategy MirroredStrategy: 2 replica(s); global batch 32, 16 per replica" in res.stderr
    m = json.loads((tmp_path / "run" / "train" / "metrics.json").read_text())
    assert m["replicas"] == 2 and m["accuracy"] >= 0.9


def test_unknown_device_and_class_weight_errors(tmp_path):
    res = run_cli("train", DIGITS, "--run-dir", str(tmp_path / "a"), "--set", "train.strategy=one_device",
                  "--set", "train.devices=['/gpu:7']")
    assert res.returncode == 1 and "train.devices: no device '/gpu:7'" in res.stderr
    res = run_cli("train", DIGITS, "--run-dir", str(tmp_path / "b"), "--set", "train.class_weights={eleven: 2.0}")
    assert res.returncode == 1 and "no class named 'eleven'" in res.stderr and "Traceback" not in res.stderr
