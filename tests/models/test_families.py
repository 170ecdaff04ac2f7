"""Every registered family builds, trains a step, and is wrapped by tfmot pruning and QAT.

The big families are built at reduced width/depth: build and wrapping time grows
with the number of layers, and the point is the structure, not the size.
"""
from __future__ import annotations

import functools
from typing import Any

import numpy as np
import pytest

from edgecls.models import create, get_info, list_models

NUM_CLASSES = 5

# (model, options, input shape). Small families also run from 8x8x1 (sklearn digits).
CASES = [
    ("lenet5", {}, (32, 32, 3)),
    ("lenet5", {}, (8, 8, 1)),
    ("small_cnn", {}, (32, 32, 3)),
    ("small_cnn", {"depth": 5, "width": 0.5}, (8, 8, 1)),
    ("resnet8", {}, (32, 32, 3)),
    ("resnet8", {"width": 0.5, "dropout": 0.1}, (8, 8, 1)),
    ("mobilenet_v2", {"width": 0.35}, (32, 32, 3)),
    ("mobilenet_v3_small", {"width": 0.5}, (32, 32, 3)),
    ("mobilenet_v3_small", {"width": 0.5, "minimalistic": True}, (32, 32, 3)),
    ("efficientnet_b0", {"width": 0.25, "depth": 0.34}, (32, 32, 3)),
    ("efficientnet_b0", {"width": 0.25, "depth": 0.34, "lite": True}, (32, 32, 3)),
]
IDS = [f"{n}-{'x'.join(map(str, s))}-{'-'.join(f'{k}={v}' for k, v in o.items()) or 'default'}" for n, o, s in CASES]

# The variants each qat_note points to as the QAT-able alternative.
QAT_ALTERNATIVES = {"mobilenet_v3_small": {"minimalistic": True}, "efficientnet_b0": {"lite": True}}


@pytest.fixture(scope="module")
def keras() -> Any:
    from edgecls._tf import keras

    return keras


@pytest.fixture(scope="module")
def tfmot() -> Any:
    from edgecls._tf import tfmot

    return tfmot()


@functools.lru_cache(maxsize=None)
def _model(index: int) -> Any:
    """Each case is built once per session (seeded) and shared by the tests below."""
    from edgecls._tf import keras

    name, options, shape = CASES[index]
    keras.utils.set_random_seed(index)
    return create(name, NUM_CLASSES, shape, **options)


def _images(shape: tuple[int, int, int], n: int = 8, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, *shape)).astype("float32")


def _expects_qat(name: str, options: dict) -> bool:
    alternative = QAT_ALTERNATIVES.get(name, {})
    return get_info(name).qat or (bool(alternative) and alternative.items() <= options.items())


def test_cases_are_registered_models() -> None:
    # The first families, also pruned and quantized here; test_zoo covers every registered model.
    assert {name for name, _, _ in CASES} <= {info.name for info in list_models()}


@pytest.mark.parametrize("index", range(len(CASES)), ids=IDS)
def test_builds_and_outputs_probabilities(index: int) -> None:
    name, _, shape = CASES[index]
    model = _model(index)
    assert tuple(model.input_shape) == (None, *shape)
    assert model.layers[-1].name == "probs"
    probs = model(_images(shape), training=False).numpy()  # eager: tracing predict() costs seconds
    assert probs.shape == (8, NUM_CLASSES) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert np.all(probs >= 0)


@pytest.mark.parametrize("index", range(len(CASES)), ids=IDS)
def test_one_train_step(index: int) -> None:
    _, _, shape = CASES[index]
    model = _model(index)
    # Tracing a train function for a 100+-layer graph takes ~10 s on 2 cores; eager runs the
    # same layers in ~1 s. The graph path of those is exercised by the slow test below.
    eager = len(model.layers) > 40
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", run_eagerly=eager)
    history = model.fit(_images(shape), np.arange(8) % NUM_CLASSES, batch_size=4, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


@pytest.mark.parametrize("index", range(len(CASES)), ids=IDS)
def test_prune_low_magnitude_wraps(index: int, tfmot: Any) -> None:
    pruned = tfmot.sparsity.keras.prune_low_magnitude(_model(index))
    assert any(type(layer).__name__ == "PruneLowMagnitude" for layer in pruned.layers)


@pytest.mark.parametrize("index", range(len(CASES)), ids=IDS)
def test_quantize_model_matches_qat_flag(index: int, tfmot: Any) -> None:
    name, options, _ = CASES[index]
    model = _model(index)
    if _expects_qat(name, options):
        qat = tfmot.quantization.keras.quantize_model(model)
        assert any(type(layer).__name__ == "QuantizeWrapperV2" for layer in qat.layers)
    else:
        # The registry says so, with the reason; this keeps the claim honest. Asking tfmot's
        # default 8-bit registry directly avoids the ~8 s clone quantize_model does before failing.
        from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
            default_8bit_quantize_registry as default_8bit,
        )

        supports = default_8bit.Default8BitQuantizeRegistry().supports
        unsupported = {type(layer).__name__ for layer in model.layers[1:] if not supports(layer)}
        # BatchNormalization is absent from the registry too, but QAT folds it into the conv before it.
        assert unsupported == {"Multiply", "BatchNormalization"}


@pytest.mark.parametrize("name", ["mobilenet_v2", "mobilenet_v3_small", "efficientnet_b0"])
def test_big_families_accept_one_channel(name: str) -> None:
    options = {"width": 0.25, "depth": 0.34} if name == "efficientnet_b0" else {"width": 0.35}
    model = create(name, 3, (32, 32, 1), **options)
    assert model(_images((32, 32, 1), n=2), training=False).shape == (2, 3)


def test_mobilenet_v2_stem_stride_keeps_resolution() -> None:
    def final_size(model: Any) -> int:
        return int(model.get_layer("Conv_1").output.shape[1])

    assert CASES[6][:2] == ("mobilenet_v2", {"width": 0.35})
    assert final_size(_model(6)) == 1
    assert final_size(create("mobilenet_v2", 10, (32, 32, 3), width=0.35, stem_stride=1)) == 2


def test_width_scales_parameters() -> None:
    from edgecls.models import count_params

    for name in ("lenet5", "small_cnn", "resnet8"):
        narrow = create(name, 10, (32, 32, 3), width=0.5).count_params()
        assert narrow < count_params(name), name


def test_deterministic_given_seed(keras: Any) -> None:
    def weights() -> list[np.ndarray]:
        keras.utils.set_random_seed(7)
        return create("small_cnn", 10, (8, 8, 1)).get_weights()

    for a, b in zip(weights(), weights()):
        np.testing.assert_array_equal(a, b)


def test_probs_stay_float32_under_mixed_precision(keras: Any) -> None:
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = create("resnet8", 10, (8, 8, 1), width=0.5)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert model.layers[-2].compute_dtype == "float16"
    assert model.output.dtype == "float32"


def test_hard_sigmoid_is_relu6_shifted(keras: Any) -> None:
    from edgecls.models import layers as L

    inputs = keras.Input((1, 1, 1))
    model = keras.Model(inputs, L.activation(inputs, "hard_swish", name="hs"))
    x = np.linspace(-5, 5, 41, dtype="float32").reshape(-1, 1, 1, 1)
    expected = x * np.clip(x + 3, 0, 6) / 6
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, atol=1e-6)


@pytest.mark.parametrize("index", [0, 7, 9], ids=[IDS[0], IDS[7], IDS[9]])
def test_save_and_load_without_custom_objects(index: int, keras: Any, tmp_path) -> None:
    name, _, shape = CASES[index]
    model = _model(index)
    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    x = _images(shape, n=2, seed=1)
    np.testing.assert_allclose(loaded(x, training=False), model(x, training=False), atol=1e-6)


def test_small_cnn_learns_digits(keras: Any) -> None:
    datasets = pytest.importorskip("sklearn.datasets")
    digits = datasets.load_digits()
    x = (digits.images[..., None] / 16.0).astype("float32")
    y = digits.target
    order = np.random.default_rng(0).permutation(len(y))
    train, test = order[:1400], order[1400:]
    keras.utils.set_random_seed(0)
    model = create("small_cnn", 10, (8, 8, 1), width=0.5)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x[train], y[train], batch_size=32, epochs=8, verbose=0)
    _, accuracy = model.evaluate(x[test], y[test], verbose=0)
    assert accuracy > 0.9


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(CASES)), ids=IDS)
def test_graph_mode_train_step(index: int, keras: Any) -> None:
    name, options, shape = CASES[index]
    keras.utils.set_random_seed(0)
    model = create(name, NUM_CLASSES, shape, **options)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", run_eagerly=False)
    history = model.fit(_images(shape), np.arange(8) % NUM_CLASSES, batch_size=4, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
