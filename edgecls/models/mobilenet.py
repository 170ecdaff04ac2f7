"""MobileNetV1 (Howard et al. 2017), V2 (Sandler et al. 2018) and V3 Small/Large (Howard et al. 2019).

Written from the papers and the Keras reference configurations, with 'same'
padding throughout so any input size from 32x32 up builds (at even sizes
'same' pads exactly as keras.applications' explicit padding does). Layers
with weights carry keras.applications' names, so its ImageNet weight files
load by name (``edgecls.models.transfer``). Normalization is not part of the
model (the data pipeline does it).
"""
from __future__ import annotations

import math
from typing import Any

from edgecls.models.registry import check_bool, check_int, register

# MobileNetV1, paper Table 1: (pointwise filters, depthwise stride) of the 13 depthwise-separable blocks.
_V1_CONFIG = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)) + ((512, 1),) * 5 + ((1024, 2), (1024, 1))

# (expansion t, output channels c, repeats n, first stride s) from the MobileNetV2 paper, Table 2.
_V2_CONFIG = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))

# MobileNetV3, paper Tables 1 and 2: (expansion, output channels, kernel, stride, squeeze-excite, activation).
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
_V3_LARGE_CONFIG = (
    (1, 16, 3, 1, False, "re"),
    (4, 24, 3, 2, False, "re"),
    (3, 24, 3, 1, False, "re"),
    (3, 40, 5, 2, True, "re"),
    (3, 40, 5, 1, True, "re"),
    (3, 40, 5, 1, True, "re"),
    (6, 80, 3, 2, False, "hs"),
    (2.5, 80, 3, 1, False, "hs"),
    (2.3, 80, 3, 1, False, "hs"),
    (2.3, 80, 3, 1, False, "hs"),
    (6, 112, 3, 1, True, "hs"),
    (6, 112, 3, 1, True, "hs"),
    (6, 160, 5, 2, True, "hs"),
    (6, 160, 5, 1, True, "hs"),
    (6, 160, 5, 1, True, "hs"),
)
_V3_NOTE = (
    "squeeze-excite and hard-swish need Multiply, which tfmot's default 8-bit scheme cannot quantize; "
    "minimalistic=True (ReLU, 3x3, no squeeze-excite) is QAT-able"
)


def _repeats(n: int, depth: float) -> int:
    return max(1, int(math.ceil(n * depth)))


@register(
    "mobilenet_v1",
    family="mobilenet",
    description="MobileNetV1: 13 depthwise-separable blocks, ReLU6; width (alpha), depth scales the five 512-filter blocks",
    default_input=(224, 224, 3),
    imagenet="MobileNet",
)
def mobilenet_v1(
    num_classes: int,
    input_shape: tuple[int, int, int],
    *,
    width: float = 1.0,
    depth: float = 1.0,
    dropout: float = 0.2,
    stem_stride: int = 2,
) -> Any:
    check_int("stem_stride", stem_stride, choices=(1, 2))
    from edgecls._tf import keras
    from edgecls.models import layers as L

    inputs = L.image_input(input_shape)
    # The reference rounds with int(), not make_divisible.
    x = L.conv_bn(inputs, int(32 * width), 3, stride=stem_stride, act="relu6", name="conv1", conv_name="conv1")
    # Only the run of identical 512-filter blocks is what a depth multiplier can shorten.
    config = _V1_CONFIG[:6] + _V1_CONFIG[6:11][: _repeats(5, depth)] + _V1_CONFIG[11:]
    for i, (filters, stride) in enumerate(config, start=1):
        x = L.depthwise_bn(x, 3, stride=stride, act="relu6", name=f"conv_dw_{i}", conv_name=f"conv_dw_{i}",
                           bn_name=f"conv_dw_{i}_bn")
        x = L.conv_bn(x, int(filters * width), 1, act="relu6", name=f"conv_pw_{i}", conv_name=f"conv_pw_{i}")
    outputs = L.classifier(x, num_classes, dropout)
    return keras.Model(inputs, outputs, name="mobilenet_v1")


@register(
    "mobilenet_v2",
    family="mobilenet",
    description="MobileNetV2: inverted residuals with linear bottlenecks, ReLU6; width, depth, stem_stride 1 for small inputs",
    default_input=(224, 224, 3),
    imagenet="MobileNetV2",
)
def mobilenet_v2(
    num_classes: int,
    input_shape: tuple[int, int, int],
    *,
    width: float = 1.0,
    dropout: float = 0.2,
    stem_stride: int = 2,
    depth: float = 1.0,
) -> Any:
    check_int("stem_stride", stem_stride, choices=(1, 2))
    from edgecls._tf import keras
    from edgecls.models import layers as L

    inputs = L.image_input(input_shape)
    x = L.conv_bn(inputs, L.make_divisible(32 * width), 3, stride=stem_stride, act="relu6", name="stem",
                  conv_name="Conv1", bn_name="bn_Conv1")
    block = 0
    for t, c, n, s in _V2_CONFIG:
        out = L.make_divisible(int(c * width))  # int() first, as the reference does
        for i in range(_repeats(n, depth)):
            x = _inverted_residual(x, t, out, 3, s if i == 0 else 1, se=False, act="relu6", block=block, v3=False)
            block += 1
    # The paper keeps 1280 head channels for width < 1: the classifier needs them more than the body.
    head = L.make_divisible(1280 * width) if width > 1.0 else 1280
    x = L.conv_bn(x, head, 1, act="relu6", name="head", conv_name="Conv_1", bn_name="Conv_1_bn")
    outputs = L.classifier(x, num_classes, dropout)
    return keras.Model(inputs, outputs, name="mobilenet_v2")


def _mobilenet_v3(
    config: tuple, last_point: int, name: str, num_classes: int, input_shape: tuple[int, int, int], *,
    width: float, dropout: float, minimalistic: bool,
) -> Any:
    check_bool("minimalistic", minimalistic)
    from edgecls._tf import keras
    from edgecls.models import layers as L

    def act_of(code: str) -> str:
        return "hard_swish" if code == "hs" and not minimalistic else "relu"

    inputs = L.image_input(input_shape)
    # The reference keeps the 16-filter stem for every width.
    x = L.conv_bn(inputs, 16, 3, stride=2, act=act_of("hs"), name="stem", conv_name="Conv", bn_name="Conv/BatchNorm")
    for i, (t, c, k, s, se, code) in enumerate(config):
        x = _inverted_residual(
            x, t, L.make_divisible(c * width), 3 if minimalistic else k, s,
            se=se and not minimalistic, act=act_of(code), block=i, v3=True,
        )
    x = L.conv_bn(x, L.make_divisible(int(x.shape[-1]) * 6), 1, act=act_of("hs"), name="head", conv_name="Conv_1",
                  bn_name="Conv_1/BatchNorm")
    x = keras.layers.GlobalAveragePooling2D(keepdims=True, name="avg_pool")(x)
    # The 1x1 conv after pooling (with bias, no BN) as in the paper; keras.applications counts it in the top.
    last = L.make_divisible(last_point * width) if width > 1.0 else last_point
    x = keras.layers.Conv2D(last, 1, name="Conv_2")(x)
    x = L.activation(x, act_of("hs"), name="head_pointwise_act")
    x = keras.layers.Flatten(name="flatten")(x)
    outputs = L.classifier(x, num_classes, dropout, pool=False)
    return keras.Model(inputs, outputs, name=name)


@register(
    "mobilenet_v3_small",
    family="mobilenet",
    description="MobileNetV3-Small: inverted residuals with squeeze-excite and hard-swish; minimalistic=True drops both",
    default_input=(224, 224, 3),
    qat=False,
    qat_note=_V3_NOTE,
    imagenet="MobileNetV3Small",
)
def mobilenet_v3_small(
    num_classes: int,
    input_shape: tuple[int, int, int],
    *,
    width: float = 1.0,
    dropout: float = 0.2,
    minimalistic: bool = False,
) -> Any:
    return _mobilenet_v3(_V3_SMALL_CONFIG, 1024, "mobilenet_v3_small", num_classes, input_shape, width=width,
                         dropout=dropout, minimalistic=minimalistic)


@register(
    "mobilenet_v3_large",
    family="mobilenet",
    description="MobileNetV3-Large: 15 inverted residuals with squeeze-excite and hard-swish; minimalistic=True drops both",
    default_input=(224, 224, 3),
    qat=False,
    qat_note=_V3_NOTE,
    imagenet="MobileNetV3Large",
)
def mobilenet_v3_large(
    num_classes: int,
    input_shape: tuple[int, int, int],
    *,
    width: float = 1.0,
    dropout: float = 0.2,
    minimalistic: bool = False,
) -> Any:
    return _mobilenet_v3(_V3_LARGE_CONFIG, 1280, "mobilenet_v3_large", num_classes, input_shape, width=width,
                         dropout=dropout, minimalistic=minimalistic)


def _inverted_residual(
    x: Any, expansion: float, out: int, kernel: int, stride: int, *, se: bool, act: str, block: int, v3: bool
) -> Any:
    """Expand (1x1) -> depthwise -> [squeeze-excite] -> linear project (1x1), residual when shapes match.

    The first block has no expansion. Names follow keras.applications: V2 uses
    ``block_{i}_expand``/``_BN``, V3 ``expanded_conv_{i}/expand``/``/BatchNorm``.
    """
    from edgecls.models import layers as L

    if v3:
        prefix, bn = (f"expanded_conv_{block}/" if block else "expanded_conv/"), "/BatchNorm"
    else:
        prefix, bn = (f"block_{block}_" if block else "expanded_conv_"), "_BN"

    def names(part: str) -> dict[str, str]:
        return {"name": f"{prefix}{part}", "conv_name": f"{prefix}{part}", "bn_name": f"{prefix}{part}{bn}"}

    shortcut = x
    channels = int(x.shape[-1])
    hidden = L.make_divisible(channels * expansion)
    if block:
        x = L.conv_bn(x, hidden, 1, act=act, **names("expand"))
    x = L.depthwise_bn(x, kernel, stride=stride, act=act, **names("depthwise"))
    if se:
        # Squeeze to a quarter of the expanded channels; the inner activation is always ReLU.
        x = L.squeeze_excite(
            x, L.make_divisible(int(x.shape[-1]) * 0.25), act="relu", gate="hard_sigmoid", name=f"{prefix}se",
            conv_names=(f"{prefix}squeeze_excite/Conv", f"{prefix}squeeze_excite/Conv_1"),
        )
    x = L.conv_bn(x, out, 1, act=None, **names("project"))
    if stride == 1 and channels == out:
        x = L.layers.Add(name=f"{prefix}add")([shortcut, x])
    return x
