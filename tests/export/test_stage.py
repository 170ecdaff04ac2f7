"""The whole compress -> export path on the digits recipe, through the real CLI."""
from __future__ import annotations

import json

import pytest

from tests.helpers import RECIPES, run_cli

KEYS = {"name", "source", "mode", "path", "size_bytes", "gzip_bytes", "accuracy", "top1_agreement", "max_abs_diff",
        "fully_integer", "input_dtype", "output_dtype"}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("digits")
    # The shipped recipe with shorter schedules: this checks the mechanics; benchmarks/ checks the goals.
    text = (RECIPES / "digits.yaml").read_text()
    for old, new in (("epochs: 40", "epochs: 6"), ("epochs: 6\n    options", "epochs: 2\n    options"),
                     ("epochs: 3\n    options", "epochs: 1\n    options")):
        assert old in text
        text = text.replace(old, new)
    (tmp / "digits.yaml").write_text(text)
    run = tmp / "run"
    res = run_cli("train", str(tmp / "digits.yaml"), "--run-dir", str(run))
    assert res.returncode == 0, res.stderr[-3000:]
    res = run_cli("compress", str(run))
    assert res.returncode == 0, res.stderr[-3000:]
    res = run_cli("export", str(run))
    assert res.returncode == 0, res.stderr[-3000:]
    return run, res


def test_compress_metrics(exported):
    run, _ = exported
    m = json.loads((run / "compress" / "metrics.json").read_text())
    assert list(m) == ["pruned", "pruned_qat"]
    assert m["pruned"]["sparsity"] == pytest.approx(0.5, abs=0.02)
    assert m["pruned_qat"]["sparsity"] == pytest.approx(0.5, abs=0.02)  # PQAT kept the zeros
    for entry in m.values():
        assert {"accuracy", "macro_f1", "confusion_matrix", "ece", "sparsity_per_layer"} <= set(entry)
        assert entry["accuracy"] > 0.85
    assert (run / "compress" / "pruned.keras").exists() and (run / "compress" / "pruned_qat.h5").exists()


def test_export_json_and_parity(exported):
    run, res = exported
    report = json.loads((run / "export" / "export.json").read_text())
    variants = {v["name"]: v for v in report["variants"]}
    assert list(variants) == ["float32", "float16", "dynamic", "int8", "pruned_qat_int8"]
    for v in variants.values():
        assert KEYS <= set(v), KEYS - set(v)
        assert (run / v["path"]).stat().st_size == v["size_bytes"]
    f32 = variants["float32"]
    assert f32["top1_agreement"] == 1.0 and f32["max_abs_diff"] < 1e-4 and not f32["fully_integer"]
    assert variants["float16"]["top1_agreement"] >= 0.99 and variants["float16"]["max_abs_diff"] < 0.01
    for name in ("int8", "pruned_qat_int8"):
        v = variants[name]
        assert v["fully_integer"] and v["input_dtype"] == "uint8" and v["output_dtype"] == "uint8"
        assert v["top1_agreement"] >= 0.95 and abs(v["accuracy"] - v["source_accuracy"]) <= 0.03
        assert v["size_bytes"] <= 0.35 * f32["size_bytes"]
    assert variants["pruned_qat_int8"]["gzip_bytes"] < variants["int8"]["gzip_bytes"]  # the zeros compress
    assert (run / "export" / "labels.txt").read_text().split() == [str(i) for i in range(10)]
    assert "pruned_qat_int8" in res.stdout


def test_metadata_in_every_variant(exported):
    run, _ = exported
    from edgecls.runtime.metadata import read_metadata

    for path in sorted((run / "export").glob("*.tflite")):
        meta = read_metadata(path)
        assert meta.labels == tuple(str(i) for i in range(10))
        assert meta.color_space == "RGB" and meta.output_kind == "probabilities"
        assert meta.extra["recipe"] == "digits" and meta.extra["trained_channels"] == 1


def test_export_resumes_and_errors(exported, tmp_path):
    run, _ = exported
    before = (run / "export" / "int8.tflite").stat().st_mtime_ns
    res = run_cli("export", str(run))
    assert res.returncode == 0 and "is done" in res.stderr
    assert (run / "export" / "int8.tflite").stat().st_mtime_ns == before
    res = run_cli("export", str(run), "--variant", "nope")
    assert res.returncode == 1 and "no export variant named 'nope'" in res.stderr

    # A run that was never trained: one line naming the command to run.
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "recipe.yaml").write_text((run / "recipe.yaml").read_text())
    for cmd in ("compress", "export"):
        res = run_cli(cmd, str(empty))
        assert res.returncode == 1 and "run `edgecls train` first" in res.stderr and "Traceback" not in res.stderr


def test_truncated_stage_model_is_a_clear_error(exported, tmp_path):
    import shutil

    run, _ = exported
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    blob = (copy / "compress" / "pruned_qat.h5").read_bytes()
    (copy / "compress" / "pruned_qat.h5").write_bytes(blob[: len(blob) // 3])
    # Its record's hash no longer matches: export refuses before loading it, and says what to run.
    res = run_cli("export", str(copy), "--variant", "pruned_qat_int8", "--force")
    assert res.returncode == 1 and "compress/pruned_qat.h5 was replaced since" in res.stderr
    assert "run `edgecls compress" in res.stderr and "Traceback" not in res.stderr
    # (A damaged file read without a record: tests/models/test_model_loading.py, one line each.)
    assert (copy / "export" / "int8.tflite").read_bytes() == (run / "export" / "int8.tflite").read_bytes()


def test_mediapipe_classifies_exported_variants(exported, tmp_path):
    """The real MediaPipe Tasks ImageClassifier loads the exported files as they are and names the digits."""
    import numpy as np

    from edgecls.data.run_data import load_run_data
    from edgecls.export.parity import tflite_probs
    from edgecls.recipe import load_recipe
    from edgecls.run import Run
    from tests.helpers import MEDIAPIPE_VENV_HINT, mediapipe_classify, mediapipe_python

    python = mediapipe_python()
    if python is None:
        pytest.skip(MEDIAPIPE_VENV_HINT)
    run, _ = exported
    rd = Run(run)
    data = load_run_data(load_recipe(rd.recipe), rd)
    pixels, labels = data.pixels("test", limit=12, channels=3), data.labels("test")[:12]
    cases, ours = {}, {}
    for variant in ("float32", "int8"):  # float32 input, and uint8 input/output
        model = run / "export" / f"{variant}.tflite"
        ours[variant] = tflite_probs(model.read_bytes(), pixels).argmax(1)
        for i, img in enumerate(pixels):
            np.save(tmp_path / f"{i}.npy", img)
            cases[f"{variant}:{i}"] = (str(model), str(tmp_path / f"{i}.npy"))
    results = mediapipe_classify(python, cases)
    for variant in ("float32", "int8"):
        got = [results[f"{variant}:{i}"] for i in range(len(pixels))]
        assert all("error" not in r for r in got), got
        assert [r["label"] for r in got] == [str(k) for k in ours[variant]]  # the same answer as our runtime
        assert np.mean([r["label"] == str(y) for r, y in zip(got, labels)]) >= 0.8
