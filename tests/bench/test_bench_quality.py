"""bench's quality figures on this host: average precision, reliability, corruptions and the drift report.

The exported digits run (float32 and int8, tests/bench/exported.py) is benchmarked for real: the
runtime evaluates every corrupted copy of the test split, and the drift report compares int8 with the
float32 model it came from.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from edgecls.bench import run_bench
from edgecls.devices import DeviceRecipe
from edgecls.errors import UsageError
from tests.helpers import run_cli


def local() -> DeviceRecipe:
    return DeviceRecipe(name="quality", connect="local", threads=(1,), runs=5, warmup=1)


@pytest.fixture(scope="module")
def report(run_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("quality")
    return run_bench(run_dir, local(), out_dir=out, corruptions="gaussian_noise,contrast", severities="1,5",
                     explain_images=4), out


def test_rows_carry_map_and_corruption_accuracy(report):
    rep, out = report
    assert rep["complete"] and rep["corruptions"] == {"names": ["gaussian_noise", "contrast"], "severities": [1, 5]}
    for row, ev in zip(rep["rows"], rep["evaluations"]):
        assert row["variant"] == ev["variant"]
        acc = ev["corruptions"]["accuracy"]
        assert set(acc) == {"gaussian_noise", "contrast"} and all(set(v) == {"1", "5"} for v in acc.values())
        cells = [a for v in acc.values() for a in v.values()]
        assert row["mean_corruption_accuracy"] == pytest.approx(np.mean(cells), abs=1e-6)
        assert row["corruption_drop"] == pytest.approx(row["accuracy"] - np.mean(cells), abs=1e-6)
        assert acc["contrast"]["5"] < acc["contrast"]["1"] <= row["accuracy"] + 0.02  # severity hurts
        assert 0.5 < row["mean_average_precision"] <= 1
        assert sum(ev["reliability"]["count"]) == rep["test_images"]
    md = (out / "report.md").read_text()
    assert "| mAP |" in md and "| corr. acc |" in md and "[drift.png](drift.png)" in md
    assert {"corruptions.png", "pr_curves.png", "drift.png", "reliability-int8.png"} <= {p.name for p in out.iterdir()}


def test_average_precision_agrees_with_scikit_learn(report, run_dir):
    """The device's mAP against scikit-learn's on the float32 model's own probabilities (the runtime here)."""
    from edgecls.runtime.classifier import Classifier

    rep, _ = report
    with np.load(run_dir / "export" / "test.npz") as npz:
        pixels, labels = npz["pixels"], npz["labels"]
    probs = Classifier.from_file(run_dir / "export" / "float32.tflite").predict_pixels(pixels)
    expected = average_precision_score(np.eye(probs.shape[1])[labels], probs, average=None)
    ev = rep["evaluations"][0]
    got = [ev["average_precision"]["per_class"][n] for n in rep["class_names"]]
    assert np.allclose(got, expected, atol=1e-4)


def test_drift_compares_int8_with_float32(report):
    rep, out = report
    drift = json.loads((out / "drift.json").read_text())
    assert drift["references"] == ["float32"] and drift["made_from"] == rep["made_from"]
    (c,) = drift["comparisons"]
    assert c["variant"] == "int8" and c["reference"] == "float32"
    by = {e["variant"]: e for e in rep["evaluations"]}
    assert c["accuracy_change"] == pytest.approx(by["int8"]["accuracy"] - by["float32"]["accuracy"], abs=1e-6)
    assert c["ece_change"] == pytest.approx(by["int8"]["ece"] - by["float32"]["ece"], abs=1e-6)
    agreement = c["explanation_agreement"]
    assert agreement["images"] == 4 and 0.5 < agreement["rank_correlation"] <= 1  # int8 looks where float looks
    assert "| int8 | float32 |" in (out / "drift.md").read_text()


def test_a_later_bench_without_corruptions_drops_their_plot(run_dir, tmp_path):
    out = tmp_path / "b"
    run_bench(run_dir, local(), out_dir=out, corruptions="jpeg", severities="2", explain_images=0)
    assert (out / "corruptions.png").exists()
    rep = run_bench(run_dir, local(), out_dir=out, explain_images=0)
    assert not (out / "corruptions.png").exists() and rep["rows"][0]["mean_corruption_accuracy"] is None
    assert json.loads((out / "drift.json").read_text())["comparisons"][0]["explanation_agreement"] is None


@pytest.mark.parametrize("kw, message", [
    ({"corruptions": "fog"}, "fog"),
    ({"corruptions": "jpeg", "severities": "0,3"}, "0"),
    ({"corruptions": "jpeg", "severities": "6"}, "6"),
    ({"severities": "3"}, "--severities needs --corruptions"),
])
def test_bad_corruption_options_are_one_line_before_any_work(run_dir, tmp_path, kw, message):
    with pytest.raises(UsageError) as err:
        run_bench(run_dir, local(), out_dir=tmp_path / "x", **kw)
    assert message in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "x").exists()


def test_the_cli_refuses_a_bad_severity_in_one_line_and_keeps_the_report(report, run_dir):
    """`edgecls bench --corruptions ... --severities 7`: exit 2, one line, and the earlier report untouched."""
    _, out = report
    before = (out / "report.json").read_bytes()
    res = run_cli("bench", str(run_dir), "--out", str(out), "--corruptions", "jpeg", "--severities", "1,7")
    assert res.returncode == 2 and res.stderr.strip().count("\n") == 0, res.stderr
    assert "--severities" in res.stderr and "7" in res.stderr
    assert (out / "report.json").read_bytes() == before
