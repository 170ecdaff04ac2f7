"""ONNX export (tf2onnx) and its parity in onnxruntime, the optional ``target: onnx``.

One tiny MobileNet-like CNN (Conv2D, DepthwiseConv2D, BatchNormalization, ReLU6, global
pooling, Dense softmax) trained in-process for a few epochs on a task it learns (which colour
channel is brightest), so its probabilities are confident and its accuracy means something;
wrapped into the raw-pixel model every edgecls export is made from.
"""
from __future__ import annotations

import sys

import numpy as np
import pytest

pytest.importorskip("tf2onnx", reason="tf2onnx is not installed (pip install 'edgecls[onnx]')")
pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install 'edgecls[onnx]')")

from edgecls._tf import keras, tf  # noqa: E402
from edgecls.export.convert import with_pixel_input  # noqa: E402
from edgecls.export.onnx import OnnxError, onnx_probs, onnx_record, to_onnx  # noqa: E402

SIZE, CLASSES = 16, 3
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def brightest_channel(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """uint8 RGB images whose class is the channel with the largest mean."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, CLASSES, n)
    images = rng.integers(0, 150, (n, SIZE, SIZE, 3))
    images[np.arange(n), :, :, labels] += 100
    return images.astype(np.uint8), labels


def mobilenet_like():
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", use_bias=False)(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU(6.0)(x)
    x = keras.layers.DepthwiseConv2D(3, padding="same", use_bias=False)(x)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU(6.0)(x)
    x = keras.layers.Conv2D(12, 1, use_bias=False)(x)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU(6.0)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(CLASSES, activation="softmax", name="probs")(x), name="tiny")


@pytest.fixture(scope="module")
def trained():
    """(pixel-input model, test pixels, test labels, Keras reference probabilities)."""
    keras.utils.set_random_seed(0)
    model = mobilenet_like()
    train_x, train_y = brightest_channel(384, 0)
    norm = (train_x / 255.0 - np.array(MEAN)) / np.array(STD)
    model.compile(optimizer=keras.optimizers.Adam(0.02), loss="sparse_categorical_crossentropy")
    model.fit(norm.astype(np.float32), train_y, epochs=8, batch_size=32, verbose=0)
    pixels_model = with_pixel_input(model, channels=3, mean=MEAN, std=STD)
    test_x, test_y = brightest_channel(48, 1)
    reference = pixels_model.predict(test_x.astype(np.float32), verbose=0)
    return pixels_model, test_x, test_y, reference


@pytest.fixture(scope="module")
def exported(trained):
    model, pixels, labels, reference = trained
    return onnx_record(model, pixels, reference, labels)


def test_onnxruntime_agrees_with_keras(trained, exported):
    _, _, labels, reference = trained
    model_bytes, record = exported
    assert record["max_abs_diff"] < 1e-4 and record["top1_agreement"] == 1.0
    assert record["images"] == len(labels) and record["opset"] == 15  # tf2onnx 1.17's default
    assert record["tf2onnx"] and record["onnxruntime"] and record["convert_seconds"] > 0
    keras_accuracy = float((reference.argmax(1) == labels).mean())
    assert keras_accuracy > 0.8, "the fixture model did not learn; parity on near-uniform outputs proves little"
    assert record["accuracy"] == pytest.approx(keras_accuracy)
    import onnx

    graph = onnx.load_from_string(model_bytes).graph
    assert [i.name for i in graph.input] == ["pixels"] and {"Conv", "Softmax"} <= {n.op_type for n in graph.node}


def test_probs_batch_independent(trained, exported):
    _, pixels, _, reference = trained
    model_bytes, _ = exported
    ones = onnx_probs(model_bytes, pixels, batch=5)  # the batch dimension is dynamic
    full = onnx_probs(model_bytes, pixels.astype(np.float32))  # uint8 or float pixels alike
    np.testing.assert_allclose(ones, full, atol=1e-6)
    np.testing.assert_allclose(full.sum(1), 1.0, atol=1e-5)
    assert np.abs(full - reference).max() < 1e-4


def test_exact_gelu_converts():
    """tf.nn.gelu(approximate=False) is written with Erfc, which tf2onnx 1.17 does not map (vit_tiny's MLP)."""
    inputs = keras.Input((4, 4, 3))
    x = keras.layers.Flatten()(inputs)
    x = keras.layers.Dense(16, activation=lambda t: tf.nn.gelu(t, approximate=False))(x)
    model = keras.Model(inputs, keras.layers.Dense(CLASSES, activation="softmax")(x))
    pixels = np.random.default_rng(2).uniform(-3, 3, (6, 4, 4, 3)).astype(np.float32)
    probs = onnx_probs(to_onnx(model), pixels)
    assert np.abs(probs - model.predict(pixels, verbose=0)).max() < 1e-5


@pytest.mark.parametrize("name,size,options", [("small_cnn", 32, {"width": 0.25}),
                                               ("mobilenet_v2", 32, {"width": 0.35, "depth": 0.3})])
def test_registry_families(name, size, options):
    from edgecls.models import registry

    model = with_pixel_input(registry.create(name, 4, (size, size, 3), **options), channels=3, mean=MEAN, std=STD)
    pixels = np.random.default_rng(3).integers(0, 256, (4, size, size, 3)).astype(np.uint8)
    reference = model.predict(pixels.astype(np.float32), verbose=0)
    _, record = onnx_record(model, pixels, reference, None)
    assert record["max_abs_diff"] < 1e-4 and record["accuracy"] is None


# --- bad input: one line each ---------------------------------------------------------------------------------

def one_line(err: pytest.ExceptionInfo) -> str:
    text = str(err.value)
    assert "\n" not in text and text
    return text


def test_truncated_model(exported, trained):
    model_bytes, _ = exported
    with pytest.raises(OnnxError) as err:
        onnx_probs(model_bytes[: len(model_bytes) // 2], trained[1], what="export/onnx.onnx")
    text = one_line(err)
    assert text.startswith("export/onnx.onnx: onnxruntime") and "cannot load" in text


def test_not_onnx():
    with pytest.raises(OnnxError) as err:
        onnx_probs(b"TFL3 this is not a protobuf at all", np.zeros((1, SIZE, SIZE, 3), np.uint8), what="m.onnx")
    assert "m.onnx" in one_line(err)


@pytest.mark.parametrize("shape,says", [((2, SIZE, SIZE, 1), "(N, H, W, 3)"), ((2, SIZE + 1, SIZE, 3), "shaped"),
                                        ((0, SIZE, SIZE, 3), "no images")])
def test_bad_pixels(exported, shape, says):
    with pytest.raises(OnnxError) as err:
        onnx_probs(exported[0], np.zeros(shape, np.uint8), what="m.onnx")
    assert says in one_line(err)


@pytest.mark.parametrize("op,says", [
    (lambda t: tf.math.digamma(t + 1.0), "Digamma"),  # no ONNX op and no tf2onnx handler
    # a handler that refuses (tf2onnx maps only 8-bit, full-range fake quantization): its reason is in the line
    (lambda t: tf.quantization.fake_quant_with_min_max_args(t, min=0.0, max=6.0, narrow_range=True), "narrow_range"),
], ids=["unmapped", "refused"])
def test_op_tf2onnx_cannot_convert(op, says):
    inputs = keras.Input((4, 4, 3))
    x = keras.layers.Lambda(op, name="odd_op")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(CLASSES, activation="softmax")(keras.layers.Flatten()(x)))
    with pytest.raises(OnnxError) as err:
        to_onnx(model)
    assert says in one_line(err) and "export this model to TFLite instead" in str(err.value)


@pytest.mark.parametrize("opset", [0, 99, "15", True])
def test_bad_opset(trained, opset):
    with pytest.raises(OnnxError) as err:
        to_onnx(trained[0], opset=opset)
    assert "opset" in one_line(err)


@pytest.mark.parametrize("module", ["tf2onnx", "onnxruntime"])
def test_missing_package(monkeypatch, trained, exported, module):
    monkeypatch.setitem(sys.modules, module, None)  # makes its import fail as if not installed
    with pytest.raises(OnnxError) as err:
        if module == "tf2onnx":
            to_onnx(trained[0])
        else:
            onnx_probs(exported[0], trained[1])
    assert f"{module} is not installed" in one_line(err) and "pip install 'edgecls[onnx]'" in str(err.value)
