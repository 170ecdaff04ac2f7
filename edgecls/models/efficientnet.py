"""EfficientNet-B0 (Tan & Le 2019), with width/depth coefficients and optional Lite variant.

``lite=True`` applies the EfficientNet-Lite changes for integer accelerators:
no squeeze-excite, ReLU6 instead of swish, stem and head not scaled. That is
also what makes it QAT-able with tfmot's default 8-bit scheme.
"""
from __future__ import annotations

import math
from typing import Any

from edgecls.models.registry import ModelError, register

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


@register(
    "efficientnet_b0",
    family="efficientnet",
    description="EfficientNet-B0: MBConv blocks with squeeze-excite and swish; width/depth coefficients, lite=True for int8",
    default_input=(224, 224, 3),
    qat=False,
    qat_note=(
        "squeeze-excite needs Multiply, which tfmot's default 8-bit scheme cannot quantize; "
        "lite=True (EfficientNet-Lite: no squeeze-excite, ReLU6) is QAT-able"
    ),
)
def efficientnet_b0(
    num_classes: int,
    input_shape: tuple[int, int, int],
    *,
    width: float = 1.0,
    depth: float = 1.0,
    dropout: float = 0.2,
    drop_connect: float = 0.2,
    lite: bool = False,
) -> Any:
    if not isinstance(lite, bool):
        raise ModelError(f"lite must be true or false, got {lite!r}")
    from edgecls._tf import keras
    from edgecls.models import layers as L

    act = "relu6" if lite else "swish"

    def filters(c: int) -> int:
        return L.make_divisible(c * width)

    def repeats(n: int) -> int:
        return int(math.ceil(depth * n))

    inputs = L.image_input(input_shape)
    x = L.conv_bn(inputs, 32 if lite else filters(32), 3, stride=2, act=act, name="stem")
    total = sum(repeats(stage[1]) for stage in _B0_STAGES)
    block = 0
    for stage, (kernel, n, _, cout, expansion, stride) in enumerate(_B0_STAGES, start=1):
        for i in range(repeats(n)):
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
                name=f"block{stage}_{i + 1}",
            )
            block += 1
    x = L.conv_bn(x, 1280 if lite else filters(1280), 1, act=act, name="head")
    outputs = L.classifier(x, num_classes, dropout)
    return keras.Model(inputs, outputs, name="efficientnet_b0")


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
    name: str,
) -> Any:
    """Mobile inverted bottleneck: expand -> depthwise -> [squeeze-excite] -> project, with skip + drop-connect."""
    from edgecls.models import layers as L

    shortcut = x
    if expansion != 1:
        x = L.conv_bn(x, filters_in * expansion, 1, act=act, name=f"{name}_expand")
    x = L.depthwise_bn(x, kernel, stride=stride, act=act, name=name)
    if se:
        # The squeeze width follows the block's input channels, not the expanded ones.
        x = L.squeeze_excite(x, max(1, int(filters_in * _SE_RATIO)), act=act, gate="sigmoid", name=name)
    x = L.conv_bn(x, filters_out, 1, act=None, name=f"{name}_project")
    if stride == 1 and filters_in == filters_out:
        if drop_rate > 0:
            # Drop the whole residual branch per example: noise shape (batch, 1, 1, 1).
            x = L.layers.Dropout(drop_rate, noise_shape=(None, 1, 1, 1), name=f"{name}_drop")(x)
        x = L.layers.Add(name=f"{name}_add")([x, shortcut])
    return x
