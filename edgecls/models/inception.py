"""A small GoogLeNet-style net (Szegedy et al. 2015): inception modules of four parallel branches.

Each module concatenates a 1x1 conv, a 1x1 -> 3x3, a 1x1 -> 5x5 and a 3x3
max pool -> 1x1 branch. Every conv is conv-BN-ReLU (as in BN-Inception), so
tfmot folds the BatchNorm and QAT works. ``width`` scales the GoogLeNet
filter table and ``depth`` the number of modules per stage (2, 5, 2).
"""
from __future__ import annotations

import math
from typing import Any

from edgecls.models.registry import check_int, register

# GoogLeNet, paper Table 1: (1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool proj) per module, by stage.
_STAGES = (
    (("3a", (64, 96, 128, 16, 32, 32)), ("3b", (128, 128, 192, 32, 96, 64))),
    (
        ("4a", (192, 96, 208, 16, 48, 64)),
        ("4b", (160, 112, 224, 24, 64, 64)),
        ("4c", (128, 128, 256, 24, 64, 64)),
        ("4d", (112, 144, 288, 32, 64, 64)),
        ("4e", (256, 160, 320, 32, 128, 128)),
    ),
    (("5a", (256, 160, 320, 32, 128, 128)), ("5b", (384, 192, 384, 48, 128, 128))),
)


@register(
    "inception_small",
    family="inception",
    description="Small GoogLeNet: inception modules (1x1, 3x3, 5x5, pool branches) with BN; width and depth scale GoogLeNet",
    default_input=(64, 64, 3),
)
def inception_small(
    num_classes: int,
    input_shape: tuple[int, int, int],
    *,
    width: float = 0.5,
    depth: float = 0.5,
    dropout: float = 0.2,
    stem_stride: int = 4,
) -> Any:
    check_int("stem_stride", stem_stride, choices=(1, 2, 4, 8))
    from edgecls._tf import keras
    from edgecls.models import layers as L

    def pool(x: Any, name: str) -> Any:
        return keras.layers.MaxPooling2D(3, strides=2, padding="same", name=name)(x)

    inputs = L.image_input(input_shape)
    # GoogLeNet's stem (7x7/2, pool, 1x1, 3x3, pool) reduces 8x; smaller stem_stride drops its strides for small images.
    x = L.conv_bn(inputs, L.scaled(64, width), 7, stride=2 if stem_stride >= 2 else 1, name="stem1")
    if stem_stride >= 4:
        x = pool(x, "stem1_pool")
    x = L.conv_bn(x, L.scaled(64, width), 1, name="stem2")
    x = L.conv_bn(x, L.scaled(192, width), 3, name="stem3")
    if stem_stride == 8:
        x = pool(x, "stem3_pool")
    for s, stage in enumerate(_STAGES):
        if s:
            x = pool(x, f"pool{s + 2}")
        for name, filters in stage[: max(1, math.ceil(len(stage) * depth))]:
            x = _module(x, [L.scaled(f, width) for f in filters], name=f"inception{name}")
    outputs = L.classifier(x, num_classes, dropout)
    return keras.Model(inputs, outputs, name="inception_small")


def _module(x: Any, filters: list[int], *, name: str) -> Any:
    from edgecls.models import layers as L

    f1, r3, f3, r5, f5, fp = filters
    b1 = L.conv_bn(x, f1, 1, name=f"{name}_1x1")
    b3 = L.conv_bn(L.conv_bn(x, r3, 1, name=f"{name}_3x3_reduce"), f3, 3, name=f"{name}_3x3")
    b5 = L.conv_bn(L.conv_bn(x, r5, 1, name=f"{name}_5x5_reduce"), f5, 5, name=f"{name}_5x5")
    bp = L.layers.MaxPooling2D(3, strides=1, padding="same", name=f"{name}_pool")(x)
    bp = L.conv_bn(bp, fp, 1, name=f"{name}_pool_proj")
    return L.layers.Concatenate(name=f"{name}_concat")([b1, b3, b5, bp])
