"""The model registry: listing, errors people read, registration, and no TensorFlow on import."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from edgecls.models import ModelError, ModelInfo, count_params, create, get_info, list_models, register, registry

ALL_MODELS = [
    "alexnet", "densenet121", "densenet_small", "efficientnet_b0", "efficientnet_b1", "efficientnet_b2",
    "efficientnet_b3", "efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2", "inception_small", "lenet5",
    "mobilenet_v1", "mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small", "resnet18", "resnet18_v2", "resnet50",
    "resnet50_v2", "resnet8", "resnet8_v2", "small_cnn", "vgg16", "vgg_small", "vit_tiny",
]


@pytest.fixture
def scratch_registry(monkeypatch: pytest.MonkeyPatch) -> dict:
    """A copy of the registry so test registrations do not leak into other tests."""
    registry._ensure_loaded()
    copy = dict(registry._REGISTRY)
    monkeypatch.setattr(registry, "_REGISTRY", copy)
    return copy


def test_lists_every_family_sorted() -> None:
    infos = list_models()
    assert [i.name for i in infos] == ALL_MODELS
    assert all(isinstance(i, ModelInfo) and i.description for i in infos)


@pytest.mark.parametrize(
    "pattern, expected",
    [
        ("mobilenet*", ["mobilenet_v1", "mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small"]),
        ("*lite?", ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"]),
        ("resnet?", ["resnet8"]),
        ("resnet*_v2", ["resnet18_v2", "resnet50_v2", "resnet8_v2"]),
        ("vit*", ["vit_tiny"]),
        ("convnext*", []),
    ],
)
def test_list_patterns(pattern: str, expected: list[str]) -> None:
    assert [i.name for i in list_models(pattern)] == expected


def test_model_info_fields() -> None:
    info = get_info("small_cnn")
    assert info.family == "small_cnn"
    assert info.options == ("width", "depth", "dropout")
    assert info.default_input == (32, 32, 3)
    assert get_info("mobilenet_v2").options == ("width", "dropout", "stem_stride", "depth")
    assert get_info("efficientnet_b0").options == ("width", "depth", "dropout", "drop_connect", "lite")
    assert get_info("vit_tiny").options == ("width", "depth", "patch_size", "heads", "mlp_ratio", "dropout")
    assert {i.name for i in list_models() if i.qat} == {
        "lenet5", "small_cnn", "alexnet", "vgg_small", "vgg16", "inception_small", "resnet8", "resnet18", "resnet50",
        "mobilenet_v1", "mobilenet_v2", "efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"}
    assert get_info("resnet50").imagenet == "ResNet50" and get_info("resnet18").imagenet == ""
    for info in list_models():
        assert info.qat or info.qat_note, info.name  # a model that cannot be QAT-ed says why


def test_unknown_model_suggests_close_name() -> None:
    with pytest.raises(ModelError, match=r"unknown model 'resnet9'; did you mean 'resnet8'\? \(edgecls models lists them\)"):
        create("resnet9", 10, (32, 32, 3))
    with pytest.raises(ModelError, match=r"unknown model 'zzz' \(edgecls models"):
        create("zzz", 10, (32, 32, 3))


def test_unknown_option_names_it_and_the_accepted_ones() -> None:
    with pytest.raises(ModelError, match=r"no option 'widht'; accepted options: width, dropout"):
        create("resnet8", 10, (32, 32, 3), widht=0.5)


@pytest.mark.parametrize(
    "name, options, field",
    [
        ("small_cnn", {"width": 0}, "width"),
        ("small_cnn", {"width": -1.0}, "width"),
        ("small_cnn", {"width": "wide"}, "width"),
        ("small_cnn", {"width": float("nan")}, "width"),
        ("lenet5", {"dropout": 1.0}, "dropout"),
        ("lenet5", {"dropout": -0.1}, "dropout"),
        ("efficientnet_b0", {"drop_connect": 1.5}, "drop_connect"),
        ("efficientnet_b0", {"depth": 0.0}, "depth"),
        ("efficientnet_b0", {"lite": "yes"}, "lite"),
        ("small_cnn", {"depth": 0}, "depth"),
        ("small_cnn", {"depth": 2.5}, "depth"),
        ("mobilenet_v2", {"stem_stride": 3}, "stem_stride"),
        ("mobilenet_v3_small", {"minimalistic": 1}, "minimalistic"),
    ],
)
def test_bad_option_values_name_the_field(name: str, options: dict, field: str) -> None:
    with pytest.raises(ModelError, match=rf"^{field} must"):
        create(name, 10, (32, 32, 3), **options)


@pytest.mark.parametrize(
    "num_classes, shape, field",
    [(1, (32, 32, 3), "num_classes"), (10, (32, 32), "input_shape"), (10, (0, 32, 3), "input_shape"), (10, 32, "input_shape")],
)
def test_bad_classes_or_shape(num_classes: int, shape: object, field: str) -> None:
    with pytest.raises(ModelError, match=rf"^{field} must"):
        create("lenet5", num_classes, shape)  # type: ignore[arg-type]


def test_model_error_is_a_value_error_and_a_user_error() -> None:
    from edgecls.errors import EdgeclsError

    assert issubclass(ModelError, ValueError) and issubclass(ModelError, EdgeclsError)


def test_register_derives_options_and_create_passes_them(scratch_registry: dict) -> None:
    @register("tiny_test", family="test", description="a builder that builds nothing", default_input=(8, 8, 1))
    def tiny(num_classes: int, input_shape: tuple, *, width: float = 1.0, flag: bool = False) -> tuple:
        return ("built", num_classes, input_shape, width, flag)

    info = get_info("tiny_test")
    assert info == ModelInfo("tiny_test", "test", "a builder that builds nothing", (8, 8, 1), ("width", "flag"))
    # numpy integers (shapes read from arrays) are accepted and passed on as ints
    assert create("tiny_test", np.int64(3), (np.int64(8), 8, 1), width=2) == ("built", 3, (8, 8, 1), 2, False)
    assert [i.name for i in list_models("tiny*")] == ["tiny_test"]


def test_duplicate_registration_raises(scratch_registry: dict) -> None:
    def builder(num_classes: int, input_shape: tuple) -> None:
        return None

    register("dup_test", family="test", description="first")(builder)
    with pytest.raises(ValueError, match="'dup_test' is already registered"):
        register("dup_test", family="test", description="second")(builder)
    with pytest.raises(ValueError, match="already registered"):
        register("resnet8", family="test", description="clash")(builder)


def test_count_params_matches_mlperf_resnet8() -> None:
    # The MLPerf Tiny reference ResNet-8 has 78,666 parameters at 32x32x3, 10 classes.
    assert count_params("resnet8") == 78_666
    assert count_params("resnet8", num_classes=2, input_shape=(8, 8, 1)) < 78_666


def test_importing_and_listing_loads_no_tensorflow() -> None:
    code = (
        "import sys\n"
        "import edgecls.models as m\n"
        "assert len(m.list_models()) >= 6\n"
        "try:\n"
        "    m.create('resnt8', 10, (32, 32, 3))\n"
        "except m.ModelError:\n"
        "    pass\n"
        "print(sorted(k for k in sys.modules if k.split('.')[0] in ('tensorflow', 'tf_keras', 'keras')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
