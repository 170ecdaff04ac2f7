"""EfficientNet B0-B3 (Tan & Le 2019) and EfficientNet-Lite0-2, from one builder.

Each variant is B0 scaled by a width and a depth coefficient (and its own
default resolution). The Lite variants are TFLite's EfficientNet-Lite for
integer accelerators: no squeeze-excite, ReLU6 instead of swish, stem (32)
and head (1280) not scaled, and the first and last stages not repeated more.
That is also what makes them QAT-able with tfmot's default 8-bit scheme.
Layers with weights carry keras.applications' names (``block2a_expand_conv``...).
"""
from __future__ import annotations

import math
from typing import Any, Callable

from edgecls.models.registry import check_bool, register

# (kernel, repeats, input channels, output channels, expansion, first stride) of the seven B0 stages.
_B0_STAGES = (
    (3, 1, 32, 16, 1, 1),
    (3, 2, 16, 24, 6, 2),
    (5, 2, 24, 40, 6, 2),
    (3, 3, 40, 80, 6, 2),
    (5, 3, 80, 112, 6, 1),
    (5, 4, 112, 192, 6, 2),
    (3, 1, 192, 320, 6, 1),
)
_SE_RATIO = 0.25
_SE_NOTE = (
    "squeeze-excite needs Multiply, which tfmot's default 8-bit scheme cannot quantize; "
    "lite=True (EfficientNet-Lite: no squeeze-excite, ReLU6) is QAT-able"
)

# name: (width, depth, resolution, dropout, lite), from the paper (B) and TFLite's efficientnet_lite_builder.
_VARIANTS = {
    "b0": (1.0, 1.0, 224, 0.2, False),
    "b1": (1.0, 1.1, 240, 0.2, False),
    "b2": (1.1, 1.2, 260, 0.3, False),
    "b3": (1.2, 1.4, 300, 0.3, False),
    "lite0": (1.0, 1.0, 224, 0.2, True),
    "lite1": (1.0, 1.1, 240, 0.2, True),
    "lite2": (1.1, 1.2, 260, 0.3, True),
}


def _efficientnet(
    name: str,
    num_classes: int,
    input_shape: tuple[int, int, int],
    *,
    width: float,
    depth: float,
    dropout: float,
    drop_connect: float,
    lite: bool,
) -> Any:
    check_bool("lite", lite)
    from edgecls._tf import keras
    from edgecls.models import layers as L

    act = "relu6" if lite else "swish"

    def filters(c: int) -> int:
        return L.make_divisible(c * width)

    def repeats(stage: int) -> int:
        n = _B0_STAGES[stage][1]
        # Lite keeps the first and last stage at one block: they cost most at int8 per block.
        return n if lite and stage in (0, len(_B0_STAGES) - 1) else int(math.ceil(depth * n))

    inputs = L.image_input(input_shape)
    x = L.conv_bn(inputs, 32 if lite else filters(32), 3, stride=2, act=act, name="stem")
    total = sum(repeats(s) for s in range(len(_B0_STAGES)))
    block = 0
    for stage, (kernel, _, _, cout, expansion, stride) in enumerate(_B0_STAGES):
        for i in range(repeats(stage)):
            x = _mbconv(
                x,
                # Actual channels, not filters(cin): the Lite stem keeps 32 whatever the width.
                filters_in=int(x.shape[-1]),
                filters_out=filters(cout),
                kernel=kernel,
                stride=stride if i == 0 else 1,
                expansion=expansion,
                se=not lite,
                act=act,
                # Stochastic depth grows linearly with depth, as in the reference.
                drop_rate=drop_connect * block / total,
                prefix=f"block{stage + 1}{chr(ord('a') + i)}_",
            )
            block += 1
    x = L.conv_bn(x, 1280 if lite else filters(1280), 1, act=act, name="top")
    outputs = L.classifier(x, num_classes, dropout)
    return keras.Model(inputs, outputs, name=name)


def _mbconv(
    x: Any,
    *,
    filters_in: int,
    filters_out: int,
    kernel: int,
    stride: int,
    expansion: int,
    se: bool,
    act: str,
    drop_rate: float,
    prefix: str,
) -> Any:
    """Mobile inverted bottleneck: expand -> depthwise -> [squeeze-excite] -> project, with skip + drop-connect."""
    from edgecls.models import layers as L

    shortcut = x
    if expansion != 1:
        x = L.conv_bn(x, filters_in * expansion, 1, act=act, name=f"{prefix}expand")
    x = L.depthwise_bn(x, kernel, stride=stride, act=act, name=prefix[:-1], conv_name=f"{prefix}dwconv",
                       bn_name=f"{prefix}bn")
    if se:
        # The squeeze width follows the block's input channels, not the expanded ones.
        x = L.squeeze_excite(x, max(1, int(filters_in * _SE_RATIO)), act=act, gate="sigmoid", name=prefix[:-1])
    x = L.conv_bn(x, filters_out, 1, act=None, name=f"{prefix}project")
    if stride == 1 and filters_in == filters_out:
        if drop_rate > 0:
            # Drop the whole residual branch per example: noise shape (batch, 1, 1, 1).
            x = L.layers.Dropout(drop_rate, noise_shape=(None, 1, 1, 1), name=f"{prefix}drop")(x)
        x = L.layers.Add(name=f"{prefix}add")([x, shortcut])
    return x


def _register(variant: str) -> Callable[..., Any]:
    width0, depth0, size, dropout0, lite0 = _VARIANTS[variant]
    name = f"efficientnet_{variant}"
    lite_name = variant.startswith("lite")

    # Defaults are the variant's coefficients; ``registry`` reads the options from this signature.
    def build(
        num_classes: int,
        input_shape: tuple[int, int, int],
        *,
        width: float = width0,
        depth: float = depth0,
        dropout: float = dropout0,
        drop_connect: float = 0.2,
        lite: bool = lite0,
    ) -> Any:
        return _efficientnet(name, num_classes, input_shape, width=width, depth=depth, dropout=dropout,
                             drop_connect=drop_connect, lite=lite)

    if lite_name:
        description = (f"EfficientNet-Lite{variant[-1]} (width {width0}, depth {depth0}): MBConv with ReLU6, "
                       "no squeeze-excite; TFLite's int8-friendly EfficientNet")
    else:
        description = (f"EfficientNet-{variant.upper()} (width {width0}, depth {depth0}): MBConv with squeeze-excite "
                       "and swish; lite=True for int8")
    build.__name__ = name
    return register(
        name,
        family="efficientnet",
        description=description,
        default_input=(size, size, 3),
        qat=lite0,
        qat_note="" if lite0 else _SE_NOTE,
        imagenet="" if lite0 else f"EfficientNet{variant.upper()}",
    )(build)


for _variant in _VARIANTS:
    _register(_variant)
