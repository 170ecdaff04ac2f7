"""Transfer learning, the model side: ImageNet and local weights, flat graphs for tfmot, freezing, new heads.

Nothing is downloaded: the ImageNet path is tested offline (its error), with
a weights file the test puts where keras looks for it, and against
keras.applications models with random weights (same layers, same outputs).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgecls.models import ModelError, create
from edgecls.models.transfer import (
    IMAGENET_NORMALIZE,
    copy_reference,
    flatten_nested,
    freeze_backbone,
    head_only,
    imagenet_normalization,
    load_weights,
)

SHAPE = (32, 32, 3)
V1_FILE = "mobilenet_2_5_224_tf_no_top.h5"  # keras' MobileNet, alpha 0.25, no top (inputs < 128 px use 224's)


@pytest.fixture(scope="module")
def keras() -> Any:
    from edgecls._tf import keras

    return keras


@pytest.fixture
def offline_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty ~/.keras, and any download sent to a closed port: the test never fetches anything."""
    monkeypatch.setenv("HOME", str(tmp_path))
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    return tmp_path


def _images(shape: tuple = SHAPE, n: int = 4, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, *shape)).astype("float32")


def _randomize_bn(model: Any, keras: Any) -> None:
    """Random BatchNorm statistics, so equal outputs mean equal layers (fresh BN is nearly the identity)."""
    rng = np.random.default_rng(0)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([rng.uniform(0.5, 1.5, gamma.shape), rng.normal(0, 0.1, beta.shape),
                               rng.normal(0, 0.1, mean.shape), rng.uniform(0.5, 1.5, var.shape)])


def _features(model: Any, keras: Any) -> Any:
    return keras.Model(model.input, model.get_layer("avg_pool").input)


# --- ImageNet ------------------------------------------------------------------------------------


def test_imagenet_offline_says_where_to_put_the_file(offline_home: Path) -> None:
    model = create("mobilenet_v1", 3, SHAPE, width=0.25)
    with pytest.raises(ModelError) as err:
        load_weights(model, "imagenet", options={"width": 0.25})
    message = str(err.value)
    assert message.startswith("model.weights: imagenet weights for MobileNet cannot be downloaded (offline?): ")
    assert f"put the file at ~/.keras/models/{V1_FILE} or give model.weights a local .h5/.keras path" in message


def test_imagenet_from_the_keras_cache(offline_home: Path, keras: Any) -> None:
    """The real keras.applications path, with the weights file where keras looks first (it has no hash to check)."""
    keras.utils.set_random_seed(1)
    reference = keras.applications.MobileNet(include_top=False, weights=None, alpha=0.25, input_shape=SHAPE)
    _randomize_bn(reference, keras)
    (offline_home / ".keras" / "models").mkdir(parents=True)
    reference.save_weights(offline_home / ".keras" / "models" / V1_FILE)

    model = create("mobilenet_v1", 3, SHAPE, width=0.25)
    report = load_weights(model, "imagenet", options={"width": 0.25})
    assert (report.loaded, report.total) == (54, 55) and report.skipped == ("logits (not in the file)",)
    assert report.normalize == {"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}
    np.testing.assert_array_equal(model.get_layer("conv_pw_3").get_weights()[0],
                                  reference.get_layer("conv_pw_3").get_weights()[0])
    pixels = np.random.default_rng(2).uniform(0, 255, (2, *SHAPE)).astype("float32")
    ours = _features(model, keras)((pixels / 255 - 0.5) / 0.5, training=False)
    theirs = reference(pixels / 127.5 - 1, training=False)  # keras' "tf" mode preprocessing
    np.testing.assert_allclose(ours, theirs, rtol=1e-3, atol=1e-4)


def test_imagenet_needs_a_model_that_has_them() -> None:
    with pytest.raises(ModelError, match=r"^model.weights: imagenet: resnet18 \(family resnet\) has no ImageNet weights"
                                         r" in keras.applications; models that have them: densenet121, "):
        load_weights(create("resnet18", 3, SHAPE, width=0.125), "imagenet")


# The registered architectures are keras.applications' ones: same layer names, and with the same weights
# the same features (at even input sizes). Caffe-mode backbones take RGB: the first conv is flipped from BGR.
REFERENCES = [
    ("mobilenet_v2", {}),
    ("resnet50", {}),
    pytest.param("mobilenet_v3_small", {"include_preprocessing": False}, marks=pytest.mark.slow),
    pytest.param("mobilenet_v3_large", {"include_preprocessing": False}, marks=pytest.mark.slow),
    pytest.param("efficientnet_b0", {}, marks=pytest.mark.slow),
    pytest.param("efficientnet_b3", {}, marks=pytest.mark.slow),
    pytest.param("resnet50_v2", {}, marks=pytest.mark.slow),
    pytest.param("densenet121", {}, marks=pytest.mark.slow),
    pytest.param("vgg16", {}, marks=pytest.mark.slow),
]


def _keras_preprocess(backbone: str, pixels: np.ndarray) -> np.ndarray:
    """What keras.applications' preprocess_input does (weights=None: EfficientNet's own layers only divide by 255)."""
    if backbone in ("ResNet50", "VGG16"):
        return pixels[..., ::-1] - np.array([103.939, 116.779, 123.68], np.float32)
    if backbone.startswith("EfficientNet"):
        return pixels
    mean, std = IMAGENET_NORMALIZE[backbone]
    return (pixels / 255 - np.array(mean, np.float32)) / np.array(std, np.float32)


@pytest.mark.parametrize("name, kwargs", REFERENCES)
def test_same_layers_and_features_as_keras_applications(name: str, kwargs: dict, keras: Any) -> None:
    from edgecls.models import get_info

    backbone = get_info(name).imagenet
    keras.utils.set_random_seed(0)
    reference = getattr(keras.applications, backbone)(include_top=False, weights=None, input_shape=SHAPE, **kwargs)
    _randomize_bn(reference, keras)
    model = create(name, 5, SHAPE)
    report = copy_reference(reference, model, backbone)
    assert report.skipped in ((), ("logits (not in the file)",), ("Conv_2 (not in the file)", "logits (not in the file)"))

    pixels = np.random.default_rng(1).uniform(0, 255, (2, *SHAPE)).astype("float32")
    if backbone.startswith("EfficientNet"):
        ours_in = pixels / 255  # with weights=None keras' normalization layer is the identity
    else:
        ours_in = (pixels / 255 - np.array(report.normalize["mean"], np.float32)) / np.array(report.normalize["std"],
                                                                                              np.float32)
    theirs = reference(_keras_preprocess(backbone, pixels), training=False).numpy()
    ours = _features(model, keras)(ours_in, training=False).numpy()
    # float32 sums in another order: relative to the features' scale (caffe-mode inputs are large)
    np.testing.assert_allclose(ours, theirs, rtol=1e-3, atol=1e-4 * max(1.0, np.abs(theirs).max()))


def test_one_channel_models_get_summed_rgb_filters(keras: Any) -> None:
    reference = keras.applications.MobileNet(include_top=False, weights=None, alpha=0.25, input_shape=SHAPE)
    gray = create("mobilenet_v1", 3, (32, 32, 1), width=0.25)
    report = copy_reference(reference, gray, "MobileNet")
    assert report.normalize == {"mean": [0.5], "std": [0.5]}
    x = _images((32, 32, 1))
    theirs = reference(np.repeat(x, 3, axis=-1), training=False)
    np.testing.assert_allclose(_features(gray, keras)(x, training=False), theirs, atol=1e-4)


def test_imagenet_weights_that_do_not_fit_the_options(keras: Any) -> None:
    reference = keras.applications.MobileNet(include_top=False, weights=None, alpha=0.5, input_shape=SHAPE)
    with pytest.raises(ModelError, match=r"MobileNet weights do not fit mobilenet_v1 with these options \(\d+ layers: "
                                         r"conv1 \(shape"):
        copy_reference(reference, create("mobilenet_v1", 3, SHAPE, width=0.25), "MobileNet")


def test_imagenet_normalization_per_model() -> None:
    assert imagenet_normalization("mobilenet_v3_small") == {"mean": [0.5] * 3, "std": [0.5] * 3}
    caffe = imagenet_normalization("resnet50")
    assert caffe["std"] == [round(1 / 255, 9)] * 3 and caffe["mean"][0] == round(123.68 / 255, 9)
    assert imagenet_normalization("densenet121")["std"] == [0.229, 0.224, 0.225]
    assert imagenet_normalization("lenet5") is None


# --- local files ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(keras: Any) -> Any:
    keras.utils.set_random_seed(3)
    return create("small_cnn", 10, SHAPE, width=0.25)


@pytest.mark.parametrize("how", ["weights.h5", "model.h5", "model.keras"])
def test_local_file_loads_by_name_and_skips_the_other_head(how: str, trained: Any, tmp_path: Path) -> None:
    path = tmp_path / how.replace("weights", "w")
    trained.save_weights(path) if how.startswith("weights") else trained.save(path)
    model = create("small_cnn", 4, SHAPE, width=0.25)  # 4 classes: the head does not fit
    report = load_weights(model, str(path))
    assert (report.loaded, report.total) == (6, 7)
    assert report.skipped == ("logits (shape [(32, 10), (10,)] in the file, [(32, 4), (4,)] in the model)",)
    assert str(report).startswith(f"loaded weights for 6 of 7 layers from {path}; skipped logits (shape")
    for name in ("block1_conv", "block3_bn"):
        for a, b in zip(model.get_layer(name).get_weights(), trained.get_layer(name).get_weights()):
            np.testing.assert_array_equal(a, b)


def test_local_file_errors_name_the_path(tmp_path: Path) -> None:
    model = create("lenet5", 3, SHAPE)
    with pytest.raises(ModelError, match=rf"^model.weights: {tmp_path}/missing.h5: no such file$"):
        load_weights(model, str(tmp_path / "missing.h5"))
    for name in ("corrupt.h5", "corrupt.keras"):
        (tmp_path / name).write_bytes(b"not a model at all")
        with pytest.raises(ModelError, match=rf"^model.weights: {tmp_path}/{name}: not a readable Keras weights file"):
            load_weights(model, str(tmp_path / name))
    with pytest.raises(ModelError, match=r"^model.weights: must be 'imagenet' or a .h5/.keras file, got 'w.bin'"):
        load_weights(model, "w.bin")


def test_a_file_of_another_architecture_loads_nothing(trained: Any, tmp_path: Path) -> None:
    trained.save_weights(tmp_path / "cnn.h5")
    with pytest.raises(ModelError, match=r"no layer of lenet5 matches a layer name and shape in the file"):
        load_weights(create("lenet5", 3, SHAPE), str(tmp_path / "cnn.h5"))


# --- nested backbones and tfmot -----------------------------------------------------------------------


def _nested(keras: Any, backbone: Any) -> Any:
    """The user's pattern of tfmot issues #377/#957: a frozen backbone model called as one layer."""
    _randomize_bn(backbone, keras)
    backbone.trainable = False
    inputs = keras.Input(SHAPE, name="image")
    x = backbone(inputs, training=False)
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    x = keras.layers.Dense(3, name="logits")(x)
    outputs = keras.layers.Activation("softmax", name="probs")(x)
    return keras.Model(inputs, outputs, name="nested")


def _resnet8_backbone(keras: Any) -> Any:
    resnet = create("resnet8", 10, SHAPE, width=0.5)  # residual branches: the graph is not a chain
    return keras.Model(resnet.input, resnet.get_layer("stack3_relu2").output, name="resnet8_backbone")


@pytest.mark.parametrize("backbone", [
    "resnet8",
    # The same with keras.applications' MobileNet: tfmot wraps 86 layers (~7 s).
    pytest.param("keras.applications.MobileNet", marks=pytest.mark.slow),
])
def test_flatten_nested_lets_tfmot_quantize_and_prune(backbone: str, keras: Any) -> None:
    from edgecls._tf import tfmot

    keras.utils.set_random_seed(4)
    if backbone == "resnet8":
        inner, first = _resnet8_backbone(keras), "stem_conv"
    else:
        inner, first = keras.applications.MobileNet(include_top=False, weights=None, alpha=0.25, input_shape=SHAPE), "conv1"
    nested = _nested(keras, inner)
    qk = tfmot().quantization.keras
    with pytest.raises(ValueError, match="Quantizing a keras Model inside another keras Model is not supported"):
        qk.quantize_model(nested)
    flat = flatten_nested(nested)
    assert not any(isinstance(layer, keras.Model) for layer in flat.layers)
    assert len(flat.layers) == len(inner.layers) + 3  # the backbone's input layer becomes the model's
    x = _images()
    np.testing.assert_allclose(flat(x, training=False), nested(x, training=False), atol=1e-5)
    # the frozen backbone stays frozen, the head does not
    assert not flat.get_layer(first).trainable and flat.get_layer("logits").trainable
    qat = qk.quantize_model(flat)
    assert any(type(layer).__name__ == "QuantizeWrapperV2" for layer in qat.layers)
    assert np.all(np.isfinite(qat(x, training=False)))  # (its ranges are uncalibrated until QAT trains)
    pruned = tfmot().sparsity.keras.prune_low_magnitude(flat)
    assert sum(type(layer).__name__ == "PruneLowMagnitude" for layer in pruned.layers) > 5


def test_flatten_keeps_clashing_names_apart(keras: Any) -> None:
    inner = create("lenet5", 3, SHAPE)
    inputs = keras.Input(SHAPE, name="image")
    x = keras.layers.Conv2D(3, 1, name="c1")(inputs)  # "c1" is also lenet5's first conv
    outer = keras.Model(inputs, inner(x), name="outer")
    flat = flatten_nested(outer)
    assert {"c1", "lenet5/c1"} <= {layer.name for layer in flat.layers}
    np.testing.assert_allclose(flat(_images()), outer(_images()), atol=1e-5)


# --- fine-tuning and few-shot --------------------------------------------------------------------------


def test_freeze_backbone_then_unfreeze_the_last_layers(keras: Any) -> None:
    model = create("mobilenet_v2", 3, SHAPE, width=0.35)
    assert freeze_backbone(model) == 2  # logits kernel and bias
    assert [layer.name for layer in model.layers if layer.trainable and layer.weights] == ["logits"]
    # The last 4 layers with weights before the head: block_16_project, its BN, Conv_1, its BN; BN stays frozen.
    assert freeze_backbone(model, 4) == 4
    assert [layer.name for layer in model.layers if layer.trainable and layer.weights] == [
        "block_16_project", "Conv_1", "logits"]
    assert freeze_backbone(model, 10_000) == sum(
        len(layer.weights) for layer in model.layers if not isinstance(layer, keras.layers.BatchNormalization))
    assert not any(layer.trainable for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization))
    with pytest.raises(ModelError, match=r"^unfreeze must be an integer >= 0"):
        freeze_backbone(model, -1)


def test_unfreezing_keeps_constants_frozen(keras: Any) -> None:
    model = create("mobilenet_v3_small", 3, SHAPE, width=0.5)
    freeze_backbone(model, 10_000)
    constants = [layer for layer in model.layers if layer.name.endswith("_affine")]
    assert constants and not any(layer.trainable for layer in constants)
    # MobileNetV3's head starts at the pooling: Conv_2 (pretrained, from keras' include-top weights) trains with it.
    freeze_backbone(model)
    assert {layer.name for layer in model.layers if layer.trainable_weights} == {"Conv_2", "logits"}


def test_head_only_few_shot(trained: Any, keras: Any, tmp_path: Path) -> None:
    """Another recipe's trained model, loaded from its model.keras, gets a new 3-class head trained on k=2 shots."""
    trained.save(tmp_path / "model.keras")
    backbone = keras.models.load_model(tmp_path / "model.keras")
    model = head_only(backbone, 3, dropout=0.1)
    assert model.output_shape == (None, 3) and model.output.dtype == "float32"
    assert [layer.name for layer in model.layers[-4:]] == ["avg_pool", "head_dropout", "logits", "probs"]
    assert freeze_backbone(model) == 2
    x = _images(n=6)
    features = keras.Model(model.input, model.get_layer("avg_pool").output)
    np.testing.assert_allclose(features(x), keras.Model(trained.input, trained.get_layer("avg_pool").output)(x),
                               atol=1e-6)
    before = model.get_layer("block1_conv").get_weights()[0].copy()
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy", run_eagerly=True)
    model.fit(x, np.arange(6) % 3, batch_size=6, epochs=3, verbose=0)
    np.testing.assert_array_equal(model.get_layer("block1_conv").get_weights()[0], before)  # backbone frozen
    with pytest.raises(ModelError, match=r"^num_classes must be an integer >= 2"):
        head_only(backbone, 1)
