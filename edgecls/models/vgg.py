"""VGG (Simonyan & Zisserman 2015): stacks of 3x3 convs, each stack closed by 2x2 max pooling.

``vgg16`` is keras.applications' VGG16 convolutional body (same layers and
names, ``block3_conv2``...), so its ImageNet weights load by name; the
classifier is global average pooling + one Dense instead of the two
4096-unit layers (which hold 90% of VGG-16's parameters and depend on the
input size). ``vgg_small`` is a four-stack VGG-style net with BatchNorm for
edge inputs.
"""
from __future__ import annotations

from typing import Any

from edgecls.models.registry import check_bool, check_int, register


def _vgg(
    name: str, num_classes: int, input_shape: tuple[int, int, int], *, stacks: tuple[tuple[int, int], ...],
    width: float, batch_norm: bool, dropout: float,
) -> Any:
    """``stacks``: (filters, convs) per stack."""
    check_bool("batch_norm", batch_norm)
    from edgecls._tf import keras
    from edgecls.models import layers as L

    inputs = L.image_input(input_shape)
    x = inputs
    for b, (filters, convs) in enumerate(stacks, start=1):
        for i in range(1, convs + 1):
            x = L.conv_act(x, L.scaled(filters, width), 3, batch_norm=batch_norm, name=f"block{b}_conv{i}")
        # 'same' pooling: identical to the reference at even sizes, and 5 pools still build from 32x32.
        x = keras.layers.MaxPooling2D(2, padding="same", name=f"block{b}_pool")(x)
    outputs = L.classifier(x, num_classes, dropout)
    return keras.Model(inputs, outputs, name=name)


@register(
    "vgg16",
    family="vgg",
    description="VGG-16 body: 13 3x3 convs in 5 stacks (64-512 filters x width), global-average-pool head",
    default_input=(224, 224, 3),
    imagenet="VGG16",
)
def vgg16(
    num_classes: int, input_shape: tuple[int, int, int], *, width: float = 1.0, batch_norm: bool = False,
    dropout: float = 0.0,
) -> Any:
    stacks = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))
    return _vgg("vgg16", num_classes, input_shape, stacks=stacks, width=width, batch_norm=batch_norm, dropout=dropout)


@register(
    "vgg_small",
    family="vgg",
    description="Small VGG-style net: 4 stacks of `depth` 3x3 conv-BN-ReLU (32-256 filters x width)",
    default_input=(32, 32, 3),
)
def vgg_small(
    num_classes: int, input_shape: tuple[int, int, int], *, width: float = 1.0, depth: int = 2,
    batch_norm: bool = True, dropout: float = 0.2,
) -> Any:
    check_int("depth", depth)
    stacks = tuple((f, int(depth)) for f in (32, 64, 128, 256))
    return _vgg("vgg_small", num_classes, input_shape, stacks=stacks, width=width, batch_norm=batch_norm,
                dropout=dropout)
