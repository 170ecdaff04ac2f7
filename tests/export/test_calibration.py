"""calibrate: temperature at export: T fitted on validation, baked into the graph, ECE before -> after.

One overconfident digits LeNet, trained in-process through the API: 10 images a
class for 30 epochs at a high rate, no dropout or label smoothing, so it fits the
training set (confidence ~1) while missing ~13 % of the test split. Validation
and test are large (45 % each) so that ECE is not just bin noise.
"""
from __future__ import annotations

import json
import logging
import shutil

import numpy as np
import pytest

from edgecls import metrics

RECIPE = """\
name: digits
description: overconfident digits LeNet (calibration tests)
seed: 0
data:
  source: digits
  image_size: 8
  channels: 1
  normalize: {{mean: [0.5], std: [0.5]}}
  splits: {{validation: {validation}, test: 0.45, train_per_class: 10}}
model:
  name: lenet5
train:
  epochs: {epochs}
  batch_size: 32
  optimizer: {{name: adam, learning_rate: 0.01}}
export:
  - {{name: float32, source: train, mode: float32}}
  - {{name: float32_cal, source: train, mode: float32, calibrate: temperature}}
  - {{name: int8_cal, source: train, mode: int8, input_type: uint8, output_type: uint8, calibrate: temperature}}
"""


class _Lines(logging.Handler):
    def __init__(self):
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(record.getMessage())


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from edgecls import api

    tmp = tmp_path_factory.mktemp("calibration")
    (tmp / "digits.yaml").write_text(RECIPE.format(validation=0.45, epochs=30))
    run = tmp / "run"
    api.train(tmp / "digits.yaml", run)
    logger, handler = logging.getLogger("edgecls.export"), _Lines()
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        api.export(run)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    report = json.loads((run / "export" / "export.json").read_text())
    return run, {v["name"]: v for v in report["variants"]}, handler.lines


def _probs(path):
    from edgecls.runtime.classifier import Classifier

    test = np.load(path.parent / "test.npz")
    with Classifier.from_file(path, num_threads=2) as clf:
        return clf.predict_pixels(test["pixels"]), test["labels"]


def test_record_and_ece(exported):
    run, variants, lines = exported
    assert variants["float32"]["calibration"] is None
    cal = variants["float32_cal"]["calibration"]
    assert set(cal) == {"method", "temperature", "fitted_on", "fitted_to", "images", "ece_before", "ece_before_of",
                        "ece_after"}
    assert cal["method"] == "temperature" and cal["fitted_on"] == "validation" and cal["fitted_to"] == "source"
    assert cal["ece_before_of"] == "source"
    assert cal["images"] == json.loads((run / "split.json").read_text())["counts"]["validation"]
    assert cal["temperature"] > 1.0 and float(f"{cal['temperature']:.4g}") == cal["temperature"]  # overconfident
    # ece_before is the uncalibrated float32 variant's own test ECE (the source's, up to float error)...
    assert cal["ece_before"] == pytest.approx(variants["float32"]["metrics"]["ece"], abs=1e-4)
    # ...and ece_after is the calibrated file's, as its record's own metrics say.
    assert cal["ece_after"] == pytest.approx(variants["float32_cal"]["metrics"]["ece"], abs=1e-9)
    assert cal["ece_after"] < 0.75 * cal["ece_before"], cal
    # int8: the same T (fitted to the source), ECE before measured on the int8 variant converted without T.
    cal8 = variants["int8_cal"]["calibration"]
    assert cal8["ece_before_of"] == "variant" and cal8["temperature"] == cal["temperature"]
    assert cal8["ece_before"] != cal["ece_before"]
    assert cal8["ece_after"] < 0.75 * cal8["ece_before"], cal8
    assert variants["int8_cal"]["fully_integer"]
    from edgecls.run import Run

    assert Run(run).exported().variant("float32_cal").calibration == cal  # export.json round-trips
    assert Run(run).exported().variant("float32").calibration is None
    line = next(x for x in lines if "float32_cal" in x)
    assert f"ECE {cal['ece_before']:.4f} -> {cal['ece_after']:.4f}" in line
    assert "ECE" not in next(x for x in lines if "float32 " in x)


def test_calibrated_graph_is_softmax_of_logits_over_t(exported):
    run, variants, _ = exported
    plain, labels = _probs(run / "export" / "float32.tflite")
    calibrated, _ = _probs(run / "export" / "float32_cal.tflite")
    t = variants["float32_cal"]["calibration"]["temperature"]
    np.testing.assert_allclose(calibrated.sum(axis=1), 1.0, atol=1e-5)
    assert (calibrated.argmax(1) == plain.argmax(1)).all()
    np.testing.assert_allclose(calibrated, metrics.apply_temperature(plain, t), atol=1e-5)
    assert calibrated.max(1).mean() < plain.max(1).mean()  # softer: T > 1
    assert metrics.expected_calibration_error(labels, calibrated) == pytest.approx(
        variants["float32_cal"]["calibration"]["ece_after"], abs=1e-6)
    # Parity is against the source at the same T, so the float variant still matches its source.
    assert variants["float32_cal"]["max_abs_diff"] < 1e-4 and variants["float32_cal"]["top1_agreement"] == 1.0

    from edgecls.runtime.metadata import read_metadata

    assert read_metadata(run / "export" / "float32_cal.tflite").extra["temperature"] == t
    assert "temperature" not in read_metadata(run / "export" / "float32.tflite").extra


def test_int8_calibrated_runs_in_runtime(exported):
    run, variants, _ = exported
    probs, labels = _probs(run / "export" / "int8_cal.tflite")
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=0.05)  # uint8 output: 1/256 steps
    assert metrics.accuracy(labels, probs.argmax(1)) == pytest.approx(variants["int8_cal"]["accuracy"])


def _copy(run, dest):
    shutil.copytree(run, dest, ignore=shutil.ignore_patterns("checkpoints"))
    return dest


def test_changing_calibrate_makes_the_variant_stale(exported, tmp_path):
    from edgecls import api

    run = _copy(exported[0], tmp_path / "run")
    recipe = run / "recipe.yaml"
    text = recipe.read_text()
    assert text.count("calibrate: none") == 1  # the run's copy spells out every field; only float32 has none
    recipe.write_text(text.replace("calibrate: none", "calibrate: temperature"))
    rows = {(r.kind, r.name): r for r in api.status(run)}
    assert rows[("variant", "float32")].state == "stale", rows[("variant", "float32")]
    assert rows[("variant", "float32_cal")].state == "done"


def test_empty_validation_is_one_clear_error(tmp_path):
    from edgecls import api
    from edgecls.errors import StageError

    (tmp_path / "digits.yaml").write_text(RECIPE.format(validation=0.0, epochs=1))
    run = tmp_path / "run"
    api.train(tmp_path / "digits.yaml", run)
    with pytest.raises(StageError, match=r"'float32_cal': calibrate: temperature fits on the validation split.*"
                                         r"no validation images") as err:
        api.export(run)
    assert "\n" not in str(err.value)
    assert not (run / "export" / "float32_cal.tflite").exists()


def _tiny(activation: str | None, softmax_layer: bool):
    from edgecls._tf import keras

    inputs = keras.Input((4,))
    x = keras.layers.Dense(3, activation=activation, name="logits")(inputs)
    if softmax_layer:
        x = keras.layers.Softmax(name="probs")(x)
    return keras.Model(inputs, x, name="tiny")


@pytest.mark.parametrize("activation, softmax_layer", [("softmax", False), (None, True)])
def test_with_temperature_on_other_softmax_endings(activation, softmax_layer):
    from edgecls.export.convert import with_temperature

    model = _tiny(activation, softmax_layer)
    x = np.random.default_rng(0).normal(size=(16, 4)).astype(np.float32) * 3
    plain = model.predict(x, verbose=0)
    calibrated = with_temperature(model, 2.5).predict(x, verbose=0)
    np.testing.assert_allclose(calibrated, metrics.apply_temperature(plain, 2.5), atol=1e-6)
    np.testing.assert_allclose(model.predict(x, verbose=0), plain)  # the source model is left as it was


def test_with_temperature_needs_a_softmax():
    from edgecls.export.convert import ExportError, with_temperature

    with pytest.raises(ExportError, match="needs a model that ends in a softmax; 'tiny' ends in Dense 'logits'"):
        with_temperature(_tiny(None, False), 2.0)
    with pytest.raises(ExportError, match="temperature must be a finite number > 0"):
        with_temperature(_tiny("softmax", False), 0.0)
