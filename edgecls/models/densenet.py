"""DenseNet (Huang et al. 2017): dense blocks of BN-ReLU-Conv layers joined by concatenation.

``densenet121`` follows keras.applications' DenseNet121 layer for layer
(explicit stem padding, BN epsilon, names like ``conv3_block2_1_conv``) so
its ImageNet weights load by name; ``densenet_small`` is the same builder
with fewer layers and a smaller growth rate. Transitions average-pool with
'same' padding (identical at even sizes) so inputs down to 32x32 build.
"""
from __future__ import annotations

import math
from typing import Any

from edgecls.models.registry import check_int, register

_EPSILON = 1.001e-5
_QAT_NOTE = (
    "each layer starts with BatchNormalization after a Concatenate (pre-activation), with no conv before it "
    "to fold into; tfmot's default 8-bit scheme cannot quantize a standalone BatchNormalization"
)


def _densenet(
    name: str,
    num_classes: int,
    input_shape: tuple[int, int, int],
    *,
    blocks: tuple[int, ...],
    growth: int,
    stem: int,
    width: float,
    depth: float,
    dropout: float,
    stem_stride: int,
) -> Any:
    check_int("stem_stride", stem_stride, choices=(1, 2, 4))
    from edgecls._tf import keras
    from edgecls.models import layers as L

    layers = keras.layers
    growth = L.scaled(growth, width)
    inputs = L.image_input(input_shape)
    x = L.padded(inputs, 3, name="conv1_pad")
    x = L.conv_bn(x, L.scaled(stem, width), 7, stride=min(stem_stride, 2), padding="valid", epsilon=_EPSILON,
                  name="conv1", conv_name="conv1/conv", bn_name="conv1/bn")
    if stem_stride == 4:
        x = layers.MaxPooling2D(3, strides=2, name="pool1")(L.padded(x, 1, name="pool1_pad"))
    for stage, n in enumerate(blocks, start=2):
        for i in range(1, max(1, math.ceil(n * depth)) + 1):
            block = f"conv{stage}_block{i}"
            y = _bn_relu_conv(x, 4 * growth, 1, name=f"{block}_0", conv=f"{block}_1_conv")
            y = _bn_relu_conv(y, growth, 3, name=f"{block}_1", conv=f"{block}_2_conv")
            x = layers.Concatenate(name=f"{block}_concat")([x, y])
        if stage < len(blocks) + 1:
            # Transition: halve the channels (compression 0.5) and the resolution.
            pool = f"pool{stage}"
            x = _bn_relu_conv(x, int(x.shape[-1]) // 2, 1, name=pool, conv=f"{pool}_conv", bn=f"{pool}_bn")
            x = layers.AveragePooling2D(2, strides=2, padding="same", name=f"{pool}_pool")(x)
    x = layers.BatchNormalization(epsilon=_EPSILON, name="bn")(x)
    x = layers.ReLU(name="relu")(x)
    outputs = L.classifier(x, num_classes, dropout)
    return keras.Model(inputs, outputs, name=name)


def _bn_relu_conv(x: Any, filters: int, kernel: int, *, name: str, conv: str, bn: str | None = None) -> Any:
    from edgecls.models import layers as L

    x = L.layers.BatchNormalization(epsilon=_EPSILON, name=bn or f"{name}_bn")(x)
    x = L.layers.ReLU(name=f"{name}_relu")(x)
    return L.layers.Conv2D(filters, kernel, padding="same", use_bias=False, kernel_initializer="he_normal", name=conv)(x)


@register(
    "densenet121",
    family="densenet",
    description="DenseNet-121: dense blocks 6/12/24/16, growth 32 x width; depth scales the blocks",
    default_input=(224, 224, 3),
    qat=False,
    qat_note=_QAT_NOTE,
    imagenet="DenseNet121",
)
def densenet121(
    num_classes: int,
    input_shape: tuple[int, int, int],
    *,
    width: float = 1.0,
    depth: float = 1.0,
    dropout: float = 0.0,
    stem_stride: int = 4,
) -> Any:
    return _densenet("densenet121", num_classes, input_shape, blocks=(6, 12, 24, 16), growth=32, stem=64,
                     width=width, depth=depth, dropout=dropout, stem_stride=stem_stride)


@register(
    "densenet_small",
    family="densenet",
    description="Small DenseNet: dense blocks 2/4/6/4, growth 16 x width, 32-filter stem; depth scales the blocks",
    default_input=(64, 64, 3),
    qat=False,
    qat_note=_QAT_NOTE,
)
def densenet_small(
    num_classes: int,
    input_shape: tuple[int, int, int],
    *,
    width: float = 1.0,
    depth: float = 1.0,
    dropout: float = 0.0,
    stem_stride: int = 2,
) -> Any:
    return _densenet("densenet_small", num_classes, input_shape, blocks=(2, 4, 6, 4), growth=16, stem=32,
                     width=width, depth=depth, dropout=dropout, stem_stride=stem_stride)
