"""ResNet-8 of the MLPerf Tiny image-classification benchmark (CIFAR-10, ~78k parameters).

Follows the reference ``resnet_v1_eembc``: a 16-filter stem and three stacks
(16, 32, 64 filters) of one basic residual block each; stacks 2 and 3 halve
the resolution and use a 1x1 strided conv (no BN) as the shortcut. The
reference's L2 kernel regularizer is left to the training recipe.
"""
from __future__ import annotations

from typing import Any

from edgecls.models.registry import register


@register(
    "resnet8",
    family="resnet",
    description="MLPerf Tiny ResNet-8: 16-filter stem, 3 residual stacks (16/32/64 filters x width)",
)
def resnet8(num_classes: int, input_shape: tuple[int, int, int], *, width: float = 1.0, dropout: float = 0.0) -> Any:
    from edgecls._tf import keras
    from edgecls.models import layers as L

    layers = keras.layers

    def conv(x: Any, filters: int, kernel: int, stride: int, name: str) -> Any:
        # The reference keeps conv biases (they count in its 78k parameters).
        return layers.Conv2D(
            filters, kernel, strides=stride, padding="same", kernel_initializer="he_normal", name=name
        )(x)

    def bn(x: Any, name: str) -> Any:
        return layers.BatchNormalization(name=name)(x)

    inputs = L.image_input(input_shape)
    filters = L.scaled(16, width)
    x = layers.ReLU(name="stem_relu")(bn(conv(inputs, filters, 3, 1, "stem_conv"), "stem_bn"))
    for stack in (1, 2, 3):
        stride = 1 if stack == 1 else 2
        filters = L.scaled(16 * 2 ** (stack - 1), width)
        p = f"stack{stack}"
        y = layers.ReLU(name=f"{p}_relu1")(bn(conv(x, filters, 3, stride, f"{p}_conv1"), f"{p}_bn1"))
        y = bn(conv(y, filters, 3, 1, f"{p}_conv2"), f"{p}_bn2")
        if stride != 1 or int(x.shape[-1]) != filters:
            x = conv(x, filters, 1, stride, f"{p}_shortcut")
        x = layers.Add(name=f"{p}_add")([x, y])
        x = layers.ReLU(name=f"{p}_relu2")(x)
    outputs = L.classifier(x, num_classes, dropout)
    return keras.Model(inputs, outputs, name="resnet8")
