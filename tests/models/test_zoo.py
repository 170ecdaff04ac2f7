"""The model zoo: every registered model builds at a small size, trains a step, converts to full int8 and runs.

Models are built at reduced width/depth and 32x32: the point is each
architecture's structure (and that every op it uses has an int8 kernel), not
its size. The heavy variants are marked slow; the default run keeps one small
case per family. QAT claims are checked against tfmot in test_qat_claims.
"""
from __future__ import annotations

import functools
from typing import Any

import numpy as np
import pytest

from edgecls.models import create, get_info, list_models

NUM_CLASSES = 4
SHAPE = (32, 32, 3)


def heavy(name: str, options: dict) -> Any:
    """A case left to the slow run (big graphs: building, tracing and converting cost seconds each)."""
    return pytest.param((name, options), marks=pytest.mark.slow)


# (model, options); every registered model appears at least once.
CASES = [
    ("lenet5", {}),
    ("small_cnn", {"width": 0.5}),
    ("alexnet", {"width": 0.25, "fc_units": 64, "stem_stride": 2}),
    ("vgg_small", {"width": 0.25, "depth": 1}),
    heavy("vgg16", {"width": 0.125}),
    ("inception_small", {"width": 0.25, "depth": 0.2, "stem_stride": 2}),
    ("resnet8", {"width": 0.5}),
    ("resnet8_v2", {"width": 0.5}),
    ("resnet18", {"width": 0.125, "stem_stride": 2}),
    ("resnet18_v2", {"width": 0.125, "stem_stride": 2}),
    heavy("resnet50", {"width": 0.125, "stem_stride": 2}),
    heavy("resnet50_v2", {"width": 0.125, "stem_stride": 2}),
    ("densenet_small", {"width": 0.25, "depth": 0.25}),
    heavy("densenet121", {"width": 0.25, "depth": 0.25}),
    ("mobilenet_v1", {"width": 0.25, "depth": 0.2}),
    heavy("mobilenet_v2", {"width": 0.35}),
    heavy("mobilenet_v3_small", {"width": 0.5}),
    heavy("mobilenet_v3_large", {"width": 0.35}),
    heavy("efficientnet_b0", {"width": 0.25, "depth": 0.34}),
    heavy("efficientnet_b1", {"width": 0.25, "depth": 0.34}),
    heavy("efficientnet_b2", {"width": 0.25, "depth": 0.34}),
    heavy("efficientnet_b3", {"width": 0.25, "depth": 0.34}),
    ("efficientnet_lite0", {"width": 0.25, "depth": 0.34}),
    heavy("efficientnet_lite1", {"width": 0.25, "depth": 0.34}),
    heavy("efficientnet_lite2", {"width": 0.25, "depth": 0.34}),
    ("vit_tiny", {"width": 0.25, "depth": 1, "patch_size": 8}),
]


def _case(case: Any) -> tuple[str, dict]:
    return case.values[0] if hasattr(case, "values") else case


def _id(case: Any) -> str:
    name, options = _case(case)
    return f"{name}-{'-'.join(f'{k}={v}' for k, v in options.items()) or 'default'}"


IDS = [_id(c) for c in CASES]


def _images(n: int = 8, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, *SHAPE)).astype("float32")


@functools.lru_cache(maxsize=None)
def _model(name: str, options: tuple) -> Any:
    from edgecls._tf import keras

    keras.utils.set_random_seed(0)
    return create(name, NUM_CLASSES, SHAPE, **dict(options))


def test_every_registered_model_is_a_case() -> None:
    assert {info.name for info in list_models()} == {_case(c)[0] for c in CASES}


def test_every_family_has_a_fast_case() -> None:
    fast = {get_info(c[0]).family for c in CASES if not hasattr(c, "marks")}
    assert fast == {info.family for info in list_models()}


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_builds_and_trains_a_step(case: Any) -> None:
    name, options = _case(case)
    model = _model(name, tuple(options.items()))
    assert model.name == name and model.input.name == "image" and model.layers[-1].name == "probs"
    # One step, eagerly: tracing a train function costs seconds (~10 s for a 200-layer graph on 2 cores);
    # test_families runs graph-mode steps in the slow run.
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", run_eagerly=True)
    history = model.fit(_images(), np.arange(8) % NUM_CLASSES, batch_size=8, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


# Conversion costs 3-30 s a model on 2 cores, so the default run converts the few small models that
# between them use most kinds of op the zoo has (conv, depthwise, add, concat, pools, dense, attention,
# layer norm, GELU); the slow run converts every case.
INT8_FAST = {"lenet5", "densenet_small", "vit_tiny"}
INT8_CASES = [c if _case(c)[0] in INT8_FAST else pytest.param(_case(c), marks=pytest.mark.slow) for c in CASES]


@functools.lru_cache(maxsize=None)
def _int8(name: str, options: tuple) -> bytes:
    from edgecls.export.convert import convert

    # convert() refuses an "int8" model with any op left float, so this proves full integer.
    return convert(_model(name, options), "int8", representative=_images(4, seed=1), input_type="int8",
                   output_type="int8")


def _run_int8(blob: bytes, x: np.ndarray) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=blob)
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    assert inp["dtype"] == np.int8 and out["dtype"] == np.int8
    from edgecls.runtime.quantization import dequantize, quantize  # the runtime's own, as users get it

    results = []
    for image in x:
        interpreter.set_tensor(inp["index"], quantize(image[None], np.int8, *inp["quantization"]))
        interpreter.invoke()
        results.append(dequantize(interpreter.get_tensor(out["index"]), *out["quantization"]))
    return np.concatenate(results)


@pytest.mark.parametrize("case", INT8_CASES, ids=IDS)
def test_converts_to_full_int8_and_runs_in_the_interpreter(case: Any) -> None:
    name, options = _case(case)
    probs = _run_int8(_int8(name, tuple(options.items())), _images(1, seed=2))
    assert probs.shape == (1, NUM_CLASSES)
    np.testing.assert_allclose(probs.sum(), 1.0, atol=0.05)


def test_int8_follows_the_float_model() -> None:
    """Not just any output: the int8 LeNet-5 gives the float model's probabilities within int8 error."""
    x = _images(8, seed=3)
    got = _run_int8(_int8("lenet5", ()), x)
    np.testing.assert_allclose(got, _model("lenet5", ())(x, training=False).numpy(), atol=0.05)


# QAT-able and refused cases; the plain conv nets (alexnet, vgg_small, mobilenet_v1) in the slow run.
QAT_FAST = {"resnet18", "efficientnet_lite0", "resnet18_v2", "densenet_small", "vit_tiny"}
QAT_CASES = [
    c if _case(c)[0] in QAT_FAST else pytest.param(_case(c), marks=pytest.mark.slow)
    for c in CASES
    if _case(c)[0] in QAT_FAST | {"alexnet", "vgg_small", "inception_small", "mobilenet_v1", "resnet50", "resnet50_v2", "densenet121",
                                  "efficientnet_b1", "efficientnet_lite2", "vgg16"}
]


@pytest.mark.parametrize("case", QAT_CASES, ids=[_id(c) for c in QAT_CASES])
def test_qat_claims(case: Any) -> None:
    """qat=True: tfmot's quantize_model wraps the model; qat=False: tfmot refuses, for the reason qat_note gives."""
    from edgecls._tf import tfmot

    name, options = _case(case)
    model = _model(name, tuple(options.items()))
    info = get_info(name)
    qk = tfmot().quantization.keras
    if info.qat:
        qat = qk.quantize_model(model)
        assert any(type(layer).__name__ == "QuantizeWrapperV2" for layer in qat.layers)
    else:
        with pytest.raises(RuntimeError, match="is not supported") as err:
            qk.quantize_model(model)
        refused = str(err.value).split("<class '")[1].split("'")[0].rsplit(".", 1)[-1]
        assert refused in info.qat_note, (refused, info.qat_note)


@pytest.mark.slow
def test_mobilenet_v3_large_minimalistic_is_qat_able() -> None:
    from edgecls._tf import tfmot

    model = create("mobilenet_v3_large", NUM_CLASSES, SHAPE, width=0.35, minimalistic=True)
    qat = tfmot().quantization.keras.quantize_model(model)
    assert any(type(layer).__name__ == "QuantizeWrapperV2" for layer in qat.layers)


@pytest.mark.parametrize(
    "name, options, field",
    [
        ("vit_tiny", {"patch_size": 5}, "patch_size"),
        ("vit_tiny", {"depth": 0}, "depth"),
        ("resnet18", {"stem_stride": 3}, "stem_stride"),
        ("vgg_small", {"depth": 1.5}, "depth"),
        ("vgg16", {"batch_norm": "yes"}, "batch_norm"),
        ("alexnet", {"fc_units": 0}, "fc_units"),
        ("densenet_small", {"stem_stride": 8}, "stem_stride"),
        ("inception_small", {"stem_stride": 3}, "stem_stride"),
        ("efficientnet_lite1", {"lite": 1}, "lite"),
    ],
)
def test_bad_options_name_the_field(name: str, options: dict, field: str) -> None:
    from edgecls.models import ModelError

    with pytest.raises(ModelError, match=rf"^{field} must"):
        create(name, NUM_CLASSES, SHAPE, **options)


def test_efficientnet_variants_scale_from_b0() -> None:
    def options(name: str) -> dict:
        return {o: p.default for o, p in _signature(name).items()}

    assert options("efficientnet_b3")["width"] == 1.2 and options("efficientnet_b3")["depth"] == 1.4
    assert options("efficientnet_lite2")["lite"] is True and get_info("efficientnet_lite2").default_input == (260, 260, 3)
    assert get_info("efficientnet_lite0").qat and not get_info("efficientnet_b1").qat


def _signature(name: str) -> dict:
    import inspect

    from edgecls.models import registry

    return {k: v for k, v in inspect.signature(registry._entry(name).builder).parameters.items() if v.kind == v.KEYWORD_ONLY}


def test_lite_keeps_stem_head_and_end_stages() -> None:
    # EfficientNet-Lite: stem 32 and head 1280 at any width; first and last stage one block at any depth.
    model = create("efficientnet_lite2", NUM_CLASSES, SHAPE, width=0.25, depth=1.5)
    names = [layer.name for layer in model.layers]
    assert model.get_layer("stem_conv").filters == 32 and model.get_layer("top_conv").filters == 1280
    assert "block1b_project_conv" not in names and "block7b_project_conv" not in names
    assert "block2c_project_conv" in names and "block2d_project_conv" not in names  # ceil(2 x 1.5)
    assert not any("se_" in n for n in names)


def test_vit_patch_size_sets_the_tokens() -> None:
    for patch, tokens in ((8, 16), (4, 64)):
        model = create("vit_tiny", NUM_CLASSES, SHAPE, width=0.25, depth=1, patch_size=patch)
        assert model.get_layer("tokens").output.shape[1:] == (tokens, 48)


@pytest.mark.parametrize("name", ["resnet18", "densenet_small", "alexnet"])
def test_stem_stride_keeps_small_images(name: str) -> None:
    small = create(name, NUM_CLASSES, (32, 32, 3), width=0.25, stem_stride=1)
    default = create(name, NUM_CLASSES, (32, 32, 3), width=0.25)
    last = "flatten" if name == "alexnet" else "avg_pool"

    def size(model: Any) -> int:
        return int(np.prod(model.get_layer(last).input.shape[1:3]))

    assert size(small) > size(default)
