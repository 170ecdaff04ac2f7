"""MobileNetV2 (Sandler et al. 2018) and MobileNetV3-Small (Howard et al. 2019).

Written from the papers and the Keras reference configurations, with 'same'
padding throughout so any input size from 32x32 up builds. Normalization is
not part of the model (the data pipeline does it).
"""
from __future__ import annotations

from typing import Any

from edgecls.models.registry import ModelError, register

# (expansion t, output channels c, repeats n, first stride s) from the MobileNetV2 paper, Table 2.
_V2_CONFIG = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))

# MobileNetV3-Small, paper Table 2: (expansion, output channels, kernel, stride, squeeze-excite, activation).
# Kernel 5 and the "hs" activation become 3 and ReLU in the minimalistic variant.
_V3_SMALL_CONFIG = (
    (1, 16, 3, 2, True, "re"),
    (72 / 16, 24, 3, 2, False, "re"),
    (88 / 24, 24, 3, 1, False, "re"),
    (4, 40, 5, 2, True, "hs"),
    (6, 40, 5, 1, True, "hs"),
    (6, 40, 5, 1, True, "hs"),
    (3, 48, 5, 1, True, "hs"),
    (3, 48, 5, 1, True, "hs"),
    (6, 96, 5, 2, True, "hs"),
    (6, 96, 5, 1, True, "hs"),
    (6, 96, 5, 1, True, "hs"),
)


def _check_bool(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise ModelError(f"{name} must be true or false, got {value!r}")


@register(
    "mobilenet_v2",
    family="mobilenet",
    description="MobileNetV2: inverted residuals with linear bottlenecks, ReLU6; width multiplier, stem_stride 1 for small inputs",
    default_input=(224, 224, 3),
)
def mobilenet_v2(
    num_classes: int,
    input_shape: tuple[int, int, int],
    *,
    width: float = 1.0,
    dropout: float = 0.2,
    stem_stride: int = 2,
) -> Any:
    if stem_stride not in (1, 2) or isinstance(stem_stride, bool):
        raise ModelError(f"stem_stride must be 1 or 2, got {stem_stride!r}")
    from edgecls._tf import keras
    from edgecls.models import layers as L

    inputs = L.image_input(input_shape)
    x = L.conv_bn(inputs, L.make_divisible(32 * width), 3, stride=stem_stride, act="relu6", name="stem")
    block = 0
    for t, c, n, s in _V2_CONFIG:
        out = L.make_divisible(c * width)
        for i in range(n):
            x = _inverted_residual(
                x, t, out, 3, s if i == 0 else 1, se=False, act="relu6", expand=block > 0, name=f"block{block}"
            )
            block += 1
    # The paper keeps 1280 head channels for width < 1: the classifier needs them more than the body.
    head = L.make_divisible(1280 * width) if width > 1.0 else 1280
    x = L.conv_bn(x, head, 1, act="relu6", name="head")
    outputs = L.classifier(x, num_classes, dropout)
    return keras.Model(inputs, outputs, name="mobilenet_v2")


@register(
    "mobilenet_v3_small",
    family="mobilenet",
    description="MobileNetV3-Small: inverted residuals with squeeze-excite and hard-swish; minimalistic=True drops both",
    default_input=(224, 224, 3),
    qat=False,
    qat_note=(
        "squeeze-excite and hard-swish need Multiply, which tfmot's default 8-bit scheme cannot quantize; "
        "minimalistic=True (ReLU, 3x3, no squeeze-excite) is QAT-able"
    ),
)
def mobilenet_v3_small(
    num_classes: int,
    input_shape: tuple[int, int, int],
    *,
    width: float = 1.0,
    dropout: float = 0.2,
    minimalistic: bool = False,
) -> Any:
    _check_bool("minimalistic", minimalistic)
    from edgecls._tf import keras
    from edgecls.models import layers as L

    def act_of(code: str) -> str:
        return "hard_swish" if code == "hs" and not minimalistic else "relu"

    inputs = L.image_input(input_shape)
    # The reference keeps the 16-filter stem for every width.
    x = L.conv_bn(inputs, 16, 3, stride=2, act=act_of("hs"), name="stem")
    for i, (t, c, k, s, se, code) in enumerate(_V3_SMALL_CONFIG):
        x = _inverted_residual(
            x,
            t,
            L.make_divisible(c * width),
            3 if minimalistic else k,
            s,
            se=se and not minimalistic,
            act=act_of(code),
            expand=i > 0,
            name=f"block{i}",
        )
    x = L.conv_bn(x, L.make_divisible(int(x.shape[-1]) * 6), 1, act=act_of("hs"), name="head")
    x = keras.layers.GlobalAveragePooling2D(keepdims=True, name="avg_pool")(x)
    # The 1024-channel 1x1 conv after pooling (with bias, no BN) as in the paper.
    last = L.make_divisible(1024 * width) if width > 1.0 else 1024
    x = keras.layers.Conv2D(last, 1, name="head_pointwise")(x)
    x = L.activation(x, act_of("hs"), name="head_pointwise_act")
    x = keras.layers.Flatten(name="flatten")(x)
    outputs = L.classifier(x, num_classes, dropout, pool=False)
    return keras.Model(inputs, outputs, name="mobilenet_v3_small")


def _inverted_residual(
    x: Any, expansion: float, out: int, kernel: int, stride: int, *, se: bool, act: str, expand: bool, name: str
) -> Any:
    """Expand (1x1) -> depthwise -> [squeeze-excite] -> linear project (1x1), residual when shapes match."""
    from edgecls.models import layers as L

    shortcut = x
    channels = int(x.shape[-1])
    hidden = L.make_divisible(channels * expansion)
    if expand:
        x = L.conv_bn(x, hidden, 1, act=act, name=f"{name}_expand")
    x = L.depthwise_bn(x, kernel, stride=stride, act=act, name=name)
    if se:
        # Squeeze to a quarter of the expanded channels; the inner activation is always ReLU.
        x = L.squeeze_excite(x, L.make_divisible(int(x.shape[-1]) * 0.25), act="relu", gate="hard_sigmoid", name=name)
    x = L.conv_bn(x, out, 1, act=None, name=f"{name}_project")
    if stride == 1 and channels == out:
        x = L.layers.Add(name=f"{name}_add")([shortcut, x])
    return x
