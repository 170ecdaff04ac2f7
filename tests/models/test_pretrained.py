"""Pretrained weights load exactly, for every family registered with ImageNet weights.

Per family: keras.applications' model with fixed random weights (random
BatchNorm statistics too, so equal outputs mean equal layers) is saved where
keras' download looks first (~/.keras/models/<the file it fetches>, HOME
moved to a temporary folder, downloads sent to a closed port) and as a .h5
and a .keras file. The registered model loads it three ways (``weights:
imagenet`` and both paths); on the same pixels, edgecls' preprocessing
(data.normalize as the report gives it) into our model must give what keras'
own ``preprocess_input`` into keras.applications' ImageNet model gives.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgecls.data.pipeline import normalize
from edgecls.models import ModelError, create, get_info
from edgecls.models.layers import CONSTANT_SUFFIX
from edgecls.models.transfer import check_weights, imagenet_normalization, load_weights

SIZE = 32  # the smallest input keras.applications accepts
# registered name: (model.options, keras.applications kwargs, the file keras fetches for them at 32 px)
CASES = {
    "mobilenet_v1": ({"width": 0.25}, {"alpha": 0.25}, "mobilenet_2_5_224_tf_no_top.h5"),
    "mobilenet_v2": ({"width": 0.35}, {"alpha": 0.35},
                     "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5"),
    "mobilenet_v3_small": ({}, {}, "weights_mobilenet_v3_small_224_1.0_float.h5"),  # include-top: Conv_2 is there
    "mobilenet_v3_large": ({"width": 0.75}, {"alpha": 0.75}, "weights_mobilenet_v3_large_224_0.75_float.h5"),
    "resnet50": ({}, {}, "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    "efficientnet_b0": ({}, {}, "efficientnetb0_notop.h5"),
    "resnet50_v2": ({}, {}, "resnet50v2_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    "vgg16": ({}, {}, "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    "densenet121": ({}, {}, "densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    **{f"efficientnet_b{i}": ({}, {}, f"efficientnetb{i}_notop.h5") for i in (1, 2, 3)},
}
# By default: MobileNetV2 (folder-template's), V3 (Conv_2 from the include-top file) and VGG16 (caffe mode, BGR):
# ~10-15 s each on 2 cores, three model builds; the others test the same code and take up to 75 s (-m slow).
FAST = ("mobilenet_v2", "mobilenet_v3_small", "vgg16")
ROUTES = ("imagenet", "h5", "keras")
# keras.applications module with each backbone's preprocess_input (EfficientNet's: none, it is in the model)
MODULES = {"MobileNet": "mobilenet", "MobileNetV2": "mobilenet_v2", "MobileNetV3Small": "mobilenet_v3",
           "MobileNetV3Large": "mobilenet_v3", "ResNet50": "resnet50", "ResNet50V2": "resnet_v2", "VGG16": "vgg16",
           "DenseNet121": "densenet"}
TOLERANCE = 1e-5  # max |ours - keras| relative to max |keras|: float32 sums in another order, nothing more
MEASURED: dict[str, dict[str, float]] = {}  # family -> route -> max relative difference (printed with -s)


@pytest.fixture(scope="module")
def keras() -> Any:
    from edgecls._tf import keras

    return keras


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """An empty HOME whose ~/.keras/models holds the test's files; a download would fail (closed port);
    keras' hash check accepts the test's file (it is the only thing bypassed: the files are not Google's)."""
    from tf_keras.src.utils import data_utils

    home = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HOME", str(home))
        for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
            mp.setenv(var, "http://127.0.0.1:9")
        mp.delenv("no_proxy", raising=False)
        mp.delenv("NO_PROXY", raising=False)
        mp.setattr(data_utils, "validate_file", lambda *args, **kwargs: True)
        (home / ".keras" / "models").mkdir(parents=True)
        yield home


def _randomize(model: Any, keras: Any, backbone: str) -> None:
    rng = np.random.default_rng(0)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([rng.uniform(0.5, 1.5, gamma.shape), rng.normal(0, 0.1, beta.shape),
                               rng.normal(0, 0.1, mean.shape), rng.uniform(0.5, 1.5, var.shape)])
        elif isinstance(layer, keras.layers.Normalization) and backbone.startswith("EfficientNet"):
            # as in the real file: ImageNet's mean and variance (keras then divides by sqrt(std) once more)
            mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
            layer.set_weights([mean, std**2, layer.get_weights()[2]])


def _pixels() -> np.ndarray:
    return np.random.default_rng(1).integers(0, 256, (2, SIZE, SIZE, 3), dtype=np.uint8)


def _ours(model: Any, keras: Any, top: bool) -> Any:
    """Our features before pooling, or with an include-top MobileNetV3 our logits."""
    layer = model.get_layer("logits" if top else "avg_pool")
    return keras.Model(model.input, layer.output if top else layer.input)


def _max_rel(ours: np.ndarray, theirs: np.ndarray) -> float:
    return float(np.abs(ours.reshape(theirs.shape) - theirs).max() / np.abs(theirs).max())


@pytest.fixture(scope="module", params=[n if n in FAST else pytest.param(n, marks=pytest.mark.slow) for n in CASES])
def family(request: pytest.FixtureRequest, keras: Any, home: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One family: keras' model on the test's weights, and ours loaded the three ways."""
    name = request.param
    options, kwargs, file_name = CASES[name]
    backbone = get_info(name).imagenet
    app = getattr(keras.applications, backbone)
    top = backbone.startswith("MobileNetV3")  # its ImageNet weights come with the top: Conv_2 is in it
    shape = (SIZE, SIZE, 3)
    keras.utils.set_random_seed(0)
    theirs_net = app(include_top=top, weights=None, input_shape=shape, **kwargs)
    _randomize(theirs_net, keras, backbone)
    cached = home / ".keras" / "models" / file_name  # the file keras' download finds
    theirs_net.save_weights(cached)
    keras_file = tmp_path_factory.mktemp(name) / "model.keras"
    theirs_net.save(keras_file)
    if backbone.startswith("EfficientNet"):  # with ImageNet weights keras adds a multiply to its preprocessing
        theirs_net = app(include_top=False, weights="imagenet", input_shape=shape, **kwargs)
    pixels = _pixels()
    preprocess = getattr(keras.applications, MODULES.get(backbone, "efficientnet")).preprocess_input
    if top:  # keras' logits: its 1x1 conv "Logits" before Flatten
        theirs_net = keras.Model(theirs_net.input, theirs_net.get_layer("Logits").output)
    theirs = theirs_net(preprocess(pixels.astype("float32")), training=False).numpy()

    model = create(name, 1000 if top else 5, shape, **options)
    outputs = _ours(model, keras, top)
    zeros = [(v, np.zeros(v.shape, v.dtype.as_numpy_dtype)) for layer in model.layers for v in layer.weights
             if not layer.name.endswith(CONSTANT_SUFFIX)]  # constants are the architecture's
    result: dict[str, Any] = {"name": name, "theirs": theirs, "backbone": backbone, "ours": {}, "reports": {},
                              "model": model}
    for route, spec in zip(ROUTES, ("imagenet", str(cached), str(keras_file))):
        keras.backend.batch_set_value(zeros)  # a layer left unloaded shows
        if top:  # keras' 1x1-conv Logits into our Dense: the logits must agree too
            kernel, bias = theirs_net.layers[-1].get_weights()
            model.get_layer("logits").set_weights([kernel.reshape(kernel.shape[-2:]), bias])
        report = load_weights(model, spec, model_name=name, options=options)
        norm = report.normalize
        x = normalize(pixels, np.array(norm["mean"], np.float32), np.array(norm["std"], np.float32))
        result["ours"][route] = outputs(x, training=False).numpy()
        result["reports"][route] = report
    MEASURED[name] = {route: _max_rel(out, theirs) for route, out in result["ours"].items()}
    print(f"\n{name}: max |ours - keras| / max |keras|: {MEASURED[name]}")
    return result


@pytest.mark.parametrize("route", ROUTES)
def test_weights_load_exactly(family: dict, route: str) -> None:
    report = family["reports"][route]
    assert report.normalize == imagenet_normalization(family["name"])
    # only our own classifier (another class count) stays untrained
    assert report.skipped == ("logits (not in the file)",) and report.loaded == report.total - 1
    ours, theirs = family["ours"][route], family["theirs"]
    assert _max_rel(ours, theirs) < TOLERANCE
    assert np.abs(theirs).max() > 1e-3  # not all zeros: the comparison means something


def test_bgr_first_conv_is_flipped_and_said(family: dict) -> None:
    if family["backbone"] not in ("ResNet50", "VGG16"):
        pytest.skip("RGB weights")
    for route in ROUTES:
        assert "BGR filters reversed to RGB" in str(family["reports"][route])


def test_an_edgecls_file_is_not_flipped_again(family: dict, tmp_path: Path) -> None:
    """edgecls' own model (it has "logits") of a caffe-mode family is RGB already: it loads unchanged."""
    if family["backbone"] != "VGG16":
        pytest.skip("one caffe-mode family is enough")
    model = family["model"]  # ImageNet weights loaded, first conv RGB
    model.save_weights(tmp_path / "ours.h5")
    again = create("vgg16", 5, (SIZE, SIZE, 3))
    report = load_weights(again, str(tmp_path / "ours.h5"))
    assert report.normalize is None and "BGR" not in str(report) and report.skipped == ()
    for name in ("block1_conv1", "block5_conv3", "logits"):
        for a, b in zip(again.get_layer(name).get_weights(), model.get_layer(name).get_weights()):
            np.testing.assert_array_equal(a, b)


# --- bad input ------------------------------------------------------------------------------------


def test_a_file_of_another_architecture_names_the_layers(keras: Any, tmp_path: Path) -> None:
    """MobileNetV2 x0.35 and x0.5 share every layer name; from block 1 on the shapes differ: one line names them."""
    create("mobilenet_v2", 3, (SIZE, SIZE, 3), width=0.35).save_weights(tmp_path / "narrow.h5")
    with pytest.raises(ModelError) as err:
        load_weights(create("mobilenet_v2", 3, (SIZE, SIZE, 3), width=0.5), str(tmp_path / "narrow.h5"))
    assert re.fullmatch(
        rf"model.weights: {tmp_path}/narrow.h5: \d+ layers of mobilenet_v2 before its head did not load \(is it a "
        r"model of another architecture\?\): block_1_project \(shape \[\(1, 1, 48, 8\)\] in the file, "
        r"\[\(1, 1, 48, 16\)\] in the model\), block_1_project_BN \(shape .* and \d+ more", str(err.value))


def test_check_weights_without_tensorflow(tmp_path: Path, keras: Any) -> None:
    assert check_weights("imagenet", "mobilenet_v2") == []
    assert check_weights("imagenet", None) == []
    [message] = check_weights("imagenet", "resnet18")
    assert message.startswith("imagenet: resnet18 (family resnet) has no ImageNet weights in keras.applications; "
                              "models that have them: densenet121, ")
    assert check_weights(str(tmp_path / "w.bin"), "lenet5") == [
        f"must be 'imagenet' or a .h5/.keras file, got '{tmp_path}/w.bin'"]
    assert check_weights(str(tmp_path / "gone.h5"), "lenet5") == [f"{tmp_path}/gone.h5: no such file"]
    (tmp_path / "text.h5").write_text("not a model")
    assert check_weights(str(tmp_path / "text.h5"), "lenet5") == [
        f"{tmp_path}/text.h5: neither HDF5 nor a .keras zip: not a Keras weights file"]
    import h5py
    import zipfile

    with h5py.File(tmp_path / "data.h5", "w") as f:
        f["x"] = np.zeros(3)
    assert check_weights(str(tmp_path / "data.h5"), "lenet5") == [
        f"{tmp_path}/data.h5: an HDF5 file without Keras layer weights"]
    with h5py.File(tmp_path / "k3.weights.h5", "w") as f:  # Keras 3's save_weights: by position, no layer names
        f["layers/conv2d/vars/0"] = np.zeros((3, 3, 3, 8))
    [message] = check_weights(str(tmp_path / "k3.weights.h5"), "lenet5")
    assert message.startswith(f"{tmp_path}/k3.weights.h5: a Keras 3 weights-only file (save_weights)")
    with zipfile.ZipFile(tmp_path / "other.keras", "w") as z:
        z.writestr("readme.txt", "hi")
    assert check_weights(str(tmp_path / "other.keras"), "lenet5") == [
        f"{tmp_path}/other.keras: a zip without config.json and model.weights.h5: not a .keras model file"]
    model = create("lenet5", 3, (SIZE, SIZE, 3))
    model.save_weights(tmp_path / "ok.h5")
    model.save(tmp_path / "ok.keras")
    assert check_weights(str(tmp_path / "ok.h5"), "lenet5") == check_weights(str(tmp_path / "ok.keras"), None) == []


def test_check_weights_imports_no_tensorflow(tmp_path: Path) -> None:
    import subprocess
    import sys

    (tmp_path / "text.keras").write_text("x")
    code = ("import sys; from edgecls.models.transfer import check_weights; "
            f"print(check_weights({str(tmp_path / 'text.keras')!r}, 'resnet50'), check_weights('imagenet', 'lenet5')); "
            "assert 'tensorflow' not in sys.modules and 'h5py' not in sys.modules")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert "neither HDF5 nor a .keras zip" in res.stdout and "lenet5 (family lenet)" in res.stdout


def test_mobilenet_v3_file_without_its_top_is_refused(keras: Any, tmp_path: Path) -> None:
    """keras' no-top MobileNetV3 file lacks Conv_2 (after the pooling): loading it would leave Conv_2 random."""
    notop = keras.applications.MobileNetV3Small(include_top=False, weights=None, input_shape=(SIZE, SIZE, 3),
                                                include_preprocessing=False)
    notop.save_weights(tmp_path / "notop.h5")
    with pytest.raises(ModelError, match=r"keras' MobileNetV3Small file without its top has no Conv_2 .*"
                                         r"give the include-top weights file"):
        load_weights(create("mobilenet_v3_small", 5, (SIZE, SIZE, 3)), str(tmp_path / "notop.h5"))
