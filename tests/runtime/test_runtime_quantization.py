"""One quantization for everything that feeds a model: the Runner, the Classifier's pixel table, export's parity."""
from __future__ import annotations

import numpy as np
import pytest

from edgecls.runtime import Classifier
from edgecls.runtime.quantization import dequantize, pixel_table, prepare_pixels, quantize, round_half_away
from tests.runtime.conftest import INNER, NORM
from tests.runtime.fixtures import CLASSES, INPUT_HW


def test_exact_halves_round_away_from_zero():
    x = np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 3.5, 2.4, 2.6, 0.49999997, -0.49999997], np.float32)
    # TfLiteRound (std::round): halves away from zero; np.round would give -2, -2, 0, 0, 2, 2, 4 for the first seven.
    assert round_half_away(x).tolist() == [-3, -2, -1, 1, 2, 3, 4, 2, 3, 0, 0]
    assert quantize(x, np.int8, 1.0, 0).tolist() == [-3, -2, -1, 1, 2, 3, 4, 2, 3, 0, 0]


def test_quantize_rounds_before_the_zero_point_and_clips():
    # round(x / scale) + zero_point, as TFLite: -1.25 / 0.5 = -2.5 -> -3 -> 7 (rounding after adding 10 gives 8).
    assert quantize([-1.25, 0.25, 1.25, 1000.0, -1000.0], np.uint8, 0.5, 10).tolist() == [7, 11, 13, 255, 0]
    assert quantize([200.0, -200.0], np.int8, 1.0, 0).tolist() == [127, -128]
    floats = np.array([0.3, -7.25], np.float32)
    assert quantize(floats, np.float32, 0.0, 0).tolist() == floats.tolist()  # a float input is fed as it is
    assert dequantize(np.array([0, 10, 255], np.uint8), 0.5, 10).tolist() == [-5.0, 0.0, 122.5]
    assert dequantize(np.array([0.5], np.float32), 0.0, 0).tolist() == [0.5]


def test_pixel_table_is_the_formula_per_channel():
    table = pixel_table((0.0, 1.0, 2.0), (1.0, 2.0, 4.0), np.uint8, 0.5, 3)
    assert table.shape == (3, 256) and table.dtype == np.uint8
    v = np.arange(256, dtype=np.float32)
    for c, (m, s) in enumerate(((0.0, 1.0), (1.0, 2.0), (2.0, 4.0))):
        assert table[c].tolist() == quantize((v - m) / s, np.uint8, 0.5, 3).tolist()
    px = np.random.default_rng(0).integers(0, 256, (2, 5, 4, 3), dtype=np.uint8)
    out = prepare_pixels(table, px)
    assert out.shape == px.shape and out[1, 2, 3, 1] == table[1, px[1, 2, 3, 1]]
    with pytest.raises(TypeError, match="uint8"):
        prepare_pixels(table, px.astype(np.float32))


def test_the_runner_and_the_classifier_quantize_alike(rt):
    # The tests' normalization on the int8 model puts about half of all pixel values exactly on a .5 step
    # ((p - 127.5) / 127.5 / (2 / 255) = p - 127.5): where np.round and TFLite's rounding part.
    clf = Classifier.from_file(rt.int8, num_threads=1, **NORM)
    info = clf.runner.input
    v = np.arange(256, dtype=np.float32)
    steps = (v - 127.5) / np.float32(127.5) / np.float32(info.scale)
    assert np.sum(np.abs(steps - np.trunc(steps)) == 0.5) > 100
    h, w = INPUT_HW
    px = np.resize(np.arange(256, dtype=np.uint8), (h, w, 3))
    floats = (px.astype(np.float32) - np.float32(127.5)) / np.float32(127.5)
    table_path = clf.normalize(px)  # what classify() feeds
    runner_path = clf.runner.as_input(floats)  # normalized floats, quantized by the Runner
    np.testing.assert_array_equal(runner_path, table_path)
    np.testing.assert_array_equal(clf.predict(floats), clf.predict(table_path))


@pytest.mark.skipif(INNER, reason="export's parity check runs where models are exported (the main environment)")
def test_parity_gives_the_probabilities_a_user_gets(meta, tmp_path):
    """export.parity.tflite_probs equals a Classifier loaded from the exported file, image by image."""
    from edgecls.export.metadata import add_metadata
    from edgecls.export.parity import tflite_probs
    from edgecls.runtime.metadata import ModelMetadata

    # An export takes raw pixels (mean 0, std 1 in its metadata) and outputs probabilities.
    exported = add_metadata(meta.int8.read_bytes(), ModelMetadata(name="exported", labels=CLASSES))
    path = tmp_path / "int8.tflite"
    path.write_bytes(exported)
    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 256, (7, *INPUT_HW, 3), dtype=np.uint8)
    probs = tflite_probs(exported, pixels, batch=3)  # 3 + 3 + 1: the input is resized between batches
    user = Classifier.from_file(path, num_threads=2)
    assert (user.mean, user.std, user.output_kind) == ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0), "probabilities")
    want = np.concatenate([user.predict(user.preprocess(img)) for img in pixels])
    assert probs.shape == (7, len(CLASSES))
    np.testing.assert_array_equal(probs, want)
