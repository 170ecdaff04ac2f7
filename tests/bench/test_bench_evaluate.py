"""The device-side accuracy evaluation: ``edgecls-runtime.pyz eval`` with numpy and an interpreter only."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from edgecls.bench.accuracy import read_test_split
from edgecls.metrics import classification_report
from edgecls.run import Run
from edgecls.runtime.evaluate import evaluate
from edgecls.runtime.pack import build_zipapp, packed_files
from tests.bench.exported import RT_LITERT, RT_TFLITE


@pytest.fixture(scope="module")
def split(run_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("eval")
    return read_test_split(Run(run_dir)), build_zipapp(folder / "edgecls-runtime.pyz")


def test_the_zipapp_packs_evaluate():
    assert "edgecls/runtime/evaluate.py" in packed_files() and "edgecls/metrics.py" in packed_files()


def test_parallel_equals_serial_and_the_metrics(run_dir, split):
    data, _ = split
    model = run_dir / "export" / "int8.tflite"
    one = evaluate(model, data.path, threads=1)
    two = evaluate(model, data.path, threads=2)
    small = evaluate(model, data.path, threads=2, batch=7)  # uneven batches and shards
    assert one["workers"] == 1 and two["workers"] == 2 and small["batch"] == 7
    for key in ("accuracy", "top5_accuracy", "macro_f1", "ece", "confusion_matrix", "per_class"):
        assert one[key] == two[key] == small[key], key
    assert one["num_examples"] == data.size == 359 and one["backend"] == "ai-edge-litert"
    # Against the metrics on probabilities computed here, one image per invoke.
    from edgecls.runtime import Classifier

    clf = Classifier.from_file(model, num_threads=1, require_labels=False)
    pixels = np.load(data.path)["pixels"]
    probs = np.concatenate([clf.predict(clf.normalize(p)) for p in pixels])
    ref = classification_report(data.labels, probs, data.class_names)
    assert one["accuracy"] == ref["accuracy"] and one["confusion_matrix"] == ref["confusion_matrix"]
    assert one["ece"] == pytest.approx(ref["ece"], abs=1e-6)


@pytest.mark.parametrize("python", [RT_LITERT, RT_TFLITE], ids=["ai-edge-litert", "tflite-runtime"])
def test_eval_in_an_environment_without_tensorflow(run_dir, split, python):
    if not python.exists():
        pytest.skip(f"{python} is missing: `make side-envs` builds it")
    data, pyz = split
    proc = subprocess.run([str(python), str(pyz), "eval", str(run_dir / "export" / "float32.tflite"), "--data",
                           str(data.path), "--json"], capture_output=True, text=True, timeout=300, cwd="/")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    here = evaluate(run_dir / "export" / "float32.tflite", data.path)
    assert report["accuracy"] == pytest.approx(here["accuracy"], abs=1 / data.size)
    assert report["workers"] >= 1 and report["backend"] in ("ai-edge-litert", "tflite-runtime")
    assert "per_class" in report and len(report["confusion_matrix"]) == 10


def test_bad_data_is_one_line(run_dir, split, tmp_path):
    _, pyz = split
    model = str(run_dir / "export" / "float32.tflite")
    np.savez(tmp_path / "wrong.npz", pixels=np.zeros((3, 8, 8, 3), np.float32), labels=np.zeros(3, np.int64))
    (tmp_path / "junk.npz").write_text("not a zip")
    cases = {"wrong.npz": "pixels must be uint8", "junk.npz": "not a readable .npz", "none.npz": "no such file"}
    for name, words in cases.items():
        proc = subprocess.run([sys.executable, str(pyz), "eval", model, "--data", str(tmp_path / name)],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 1 and proc.stderr.startswith("error: ") and words in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1


def test_other_image_sizes_are_resized(run_dir, tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "big.npz", pixels=rng.integers(0, 256, (20, 16, 16, 3), dtype=np.uint8),
             labels=rng.integers(0, 10, 20), class_names=np.array([str(i) for i in range(10)]))
    report = evaluate(run_dir / "export" / "float32.tflite", tmp_path / "big.npz", threads=1)
    assert report["num_examples"] == 20
    np.savez(tmp_path / "names.npz", pixels=rng.integers(0, 256, (4, 8, 8, 3), dtype=np.uint8),
             labels=np.zeros(4, np.int64), class_names=np.array(["a", "b"]))
    with pytest.raises(Exception, match="10 outputs; the test data has 2 classes"):
        evaluate(run_dir / "export" / "float32.tflite", tmp_path / "names.npz")
