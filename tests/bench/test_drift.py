"""Drift across compression: references, the changes against them, the explanation agreement, drift.md."""
from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from PIL import Image

from edgecls.bench.drift import (drift_markdown, drift_plot, drift_report, drift_summary, explanation_agreement,
                                 reference_for)
from edgecls.errors import UsageError
from tests.bench.test_quality import NAMES, corruptions_of, evaluation, slices_of

VARIANTS = [{"name": "float32", "source": "train", "mode": "float32"},
            {"name": "int8", "source": "train", "mode": "int8"},
            {"name": "pruned_f32", "source": "pruned", "mode": "float32"},
            {"name": "pruned_int8", "source": "pruned", "mode": "int8"},
            {"name": "qat_int8", "source": "qat", "mode": "int8"},  # no float32 of qat: falls back to train's
            {"name": "f16", "source": "train", "mode": "float16"}]


def test_reference_for():
    ref = {v["name"]: reference_for(v, VARIANTS) for v in VARIANTS}
    assert ref == {"float32": None, "int8": "float32", "pruned_f32": None, "pruned_int8": "pruned_f32",
                   "qat_int8": "float32", "f16": "float32"}
    no_train_float = [v for v in VARIANTS if v["name"] != "float32"]
    assert reference_for(VARIANTS[4], no_train_float) is None  # qat: no float32 of qat nor of train
    assert reference_for(VARIANTS[1], VARIANTS[1:2]) is None


@pytest.fixture(scope="module")
def evaluations() -> dict[str, dict]:
    f = evaluation("float32", 0, 0.8)
    f["slices"] = slices_of(f["accuracy"], {"red": f["accuracy"] - 0.02, "blue": f["accuracy"] - 0.05})
    f["corruptions"] = corruptions_of(f["accuracy"])
    q = evaluation("int8", 0, 1.2)
    q["slices"] = slices_of(q["accuracy"], {"red": q["accuracy"] - 0.12, "blue": q["accuracy"] + 0.01})
    q["corruptions"] = corruptions_of(q["accuracy"] - 0.1)
    old = {"variant": "f16", "accuracy": 0.8, "ece": 0.05}  # an older device runtime: none of the new keys
    return {"float32": f, "int8": q, "f16": old, "pruned_int8": evaluation("pruned_int8", 1, 1.0)}


def test_drift_report(evaluations):
    f, q = evaluations["float32"], evaluations["int8"]
    agreement = {"int8": {"rank_correlation": 0.8125, "top20_iou": 0.625, "images": 8}}
    drift = drift_report(list(evaluations.values()), VARIANTS, agreement=agreement)
    json.dumps(drift)  # JSON-able
    assert drift["references"] == ["float32"]
    assert drift["unmatched"] == {"pruned_int8": "its reference pruned_f32 has no evaluation"}
    by = {c["variant"]: c for c in drift["comparisons"]}
    assert list(by) == ["int8", "f16"]  # export order
    c = by["int8"]
    assert c["reference"] == "float32"
    assert c["accuracy_change"] == pytest.approx(q["accuracy"] - f["accuracy"], abs=1e-6)
    assert c["accuracy_change"] < 0  # the noisier "variant" is worse
    assert c["map_change"] == pytest.approx(q["mean_average_precision"] - f["mean_average_precision"], abs=1e-6)
    assert c["ece_change"] == pytest.approx(q["ece"] - f["ece"], abs=1e-6)
    assert c["worst_slice_gap_change"] == pytest.approx(0.12 - 0.05, abs=1e-6)
    assert c["corruption_accuracy_change"] == pytest.approx(
        q["corruptions"]["mean_accuracy"] - f["corruptions"]["mean_accuracy"], abs=1e-6)
    per_class = {n: q["per_class"][n]["recall"] - f["per_class"][n]["recall"] for n in NAMES}
    assert c["per_class_accuracy_change"] == pytest.approx(per_class, abs=1e-6)
    worst = min(per_class, key=per_class.get)
    assert c["largest_class_drop"]["class"] == worst
    assert c["largest_class_drop"]["change"] == pytest.approx(per_class[worst], abs=1e-6)
    assert c["explanation_agreement"] == agreement["int8"]
    assert c["values"]["accuracy"] == {"variant": q["accuracy"], "reference": f["accuracy"]}
    # The older runtime's answer: what both have is compared, the rest is None.
    old = by["f16"]
    assert old["accuracy_change"] == pytest.approx(0.8 - f["accuracy"], abs=1e-6)
    assert [old[k] for k in ("map_change", "worst_slice_gap_change", "corruption_accuracy_change",
                             "per_class_accuracy_change", "largest_class_drop", "explanation_agreement")] == [None] * 6
    # No float32 evaluated: nothing to compare, nothing raised.
    assert drift_report([q], VARIANTS) == {"comparisons": [], "references": [],
                                           "unmatched": {"int8": "its reference float32 has no evaluation"}}
    assert drift_report([], [])["comparisons"] == []


def test_drift_text_and_plot(tmp_path, evaluations):
    agreement = {"int8": {"rank_correlation": 0.8125, "top20_iou": 0.625, "images": 8}}
    drift = drift_report(list(evaluations.values()), VARIANTS, agreement=agreement)
    c = drift["comparisons"][0]
    md = drift_markdown(drift, NAMES)
    assert ("| variant | reference | Δaccuracy | ΔmAP | ΔECE | Δworst-slice gap | Δcorruption acc | "
            "explanation agreement (ρ, IoU) | largest per-class drop (class, Δ) |") in md
    drop = c["largest_class_drop"]
    assert (f"| int8 | float32 | {c['accuracy_change']:+.4f} | {c['map_change']:+.4f} | {c['ece_change']:+.4f} | "
            f"+0.0700 | {c['corruption_accuracy_change']:+.4f} | ρ 0.81, IoU 0.62 (8 images) | "
            f"{drop['class']} ({drop['change']:+.4f}) |") in md
    assert f"| f16 | float32 | {0.8 - evaluations['float32']['accuracy']:+.4f} | - | " in md
    assert f"| {drop['class']} | {drop['change']:+.4f} |" in md  # the per-class table (f16 has no per_class)
    assert "- pruned_int8: not compared: its reference pruned_f32 has no evaluation" in md

    lines = drift_summary(drift)
    assert lines[0].startswith(f"int8 vs float32: accuracy {c['accuracy_change']:+.4f}, mAP ")
    assert "worst-slice gap +0.0700" in lines[0] and "explanations ρ 0.81" in lines[0]
    assert lines[1] == f"f16 vs float32: accuracy {0.8 - evaluations['float32']['accuracy']:+.4f}, ECE " \
                       f"{0.05 - evaluations['float32']['ece']:+.4f}"
    assert lines[2].startswith("pruned_int8: not compared")

    out = drift_plot(drift, tmp_path / "drift.png", title="drift on host")
    with Image.open(out) as img:
        assert img.format == "PNG" and 500 <= img.size[0] <= 1600 and 300 <= img.size[1] <= 900
    assert drift_plot({"comparisons": []}, tmp_path / "none.png", title="t") is None
    assert "No variant to compare" in drift_markdown({"comparisons": [], "unmatched": {}}, NAMES)


# --- explanation agreement on real .tflite models --------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    """Two tiny random-weight CNNs (16x16 RGB, 3 classes) as float .tflite, and test images."""
    from edgecls._tf import keras, tf

    folder = tmp_path_factory.mktemp("drift-models")
    paths = {}
    for name, seed in (("a", 1), ("b", 2)):
        keras.utils.set_random_seed(seed)
        inputs = keras.Input((16, 16, 3))
        z = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
        z = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(z)
        z = keras.layers.GlobalAveragePooling2D()(z)
        model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(z))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            blob = tf.lite.TFLiteConverter.from_keras_model(model).convert()
        paths[name] = folder / f"{name}.tflite"
        paths[name].write_bytes(blob)
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (5, 16, 16, 3), dtype=np.uint8)
    return paths, pixels


NORM = {"mean": (127.5,), "std": (127.5,)}


def test_explanation_agreement(tiny_models, monkeypatch):
    import edgecls.runtime.explain as explain

    paths, pixels = tiny_models
    calls = []
    real = explain.occlusion_map

    def counting(predict, image, **kw):
        calls.append(kw.get("target"))
        return real(predict, image, **kw)

    monkeypatch.setattr(explain, "occlusion_map", counting)
    models = {"float32": paths["a"], "same": paths["a"], "other": paths["b"]}
    out = explanation_agreement(models, {"same": "float32", "other": "float32"}, pixels, images=3,
                                classifier_options=NORM)
    # A model against itself agrees fully; an unrelated model does not.
    assert out["same"] == {"reference": "float32", "rank_correlation": 1.0, "top20_iou": 1.0, "images": 3}
    assert out["other"]["images"] == 3 and out["other"]["rank_correlation"] < 0.99
    assert 0.0 <= out["other"]["top20_iou"] < 1.0
    assert len(calls) == 9  # 3 images x 3 models: float32's maps computed once for both pairs
    json.dumps(out)


def test_explanation_agreement_bad_input(tiny_models):
    paths, pixels = tiny_models
    with pytest.raises(UsageError, match="no model file for 'float32'"):
        explanation_agreement({"int8": paths["a"]}, {"int8": "float32"}, pixels)
    with pytest.raises(ValueError, match=r"uint8 \(N, H, W, C\).*float32 \(16, 16, 3\)"):
        explanation_agreement({"x": paths["a"], "y": paths["b"]}, {"x": "y"}, pixels[0].astype(np.float32))
