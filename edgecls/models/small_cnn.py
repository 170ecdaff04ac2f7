"""A plain small CNN: conv-bn-relu blocks, each followed by 2x2 max pooling."""
from __future__ import annotations

import numbers
from typing import Any

from edgecls.models.registry import ModelError, register


@register(
    "small_cnn",
    family="small_cnn",
    description="Plain CNN: `depth` conv-bn-relu blocks (32, 64, 128.. filters x width) with max pooling",
)
def small_cnn(
    num_classes: int,
    input_shape: tuple[int, int, int],
    *,
    width: float = 1.0,
    depth: int = 3,
    dropout: float = 0.2,
) -> Any:
    if isinstance(depth, bool) or not isinstance(depth, numbers.Integral) or depth < 1:
        raise ModelError(f"depth must be an integer >= 1, got {depth!r}")
    from edgecls._tf import keras
    from edgecls.models import layers as L

    inputs = L.image_input(input_shape)
    x = inputs
    h, w = input_shape[:2]
    for i in range(int(depth)):
        x = L.conv_bn(x, L.scaled(32 * 2**i, width), 3, name=f"block{i + 1}")
        # Stop pooling at 1x1 so deep stacks still build on 8x8 inputs.
        if max(h, w) > 1:
            x = keras.layers.MaxPooling2D(2, padding="same", name=f"block{i + 1}_pool")(x)
            h, w = L.pooled_size(h), L.pooled_size(w)
    outputs = L.classifier(x, num_classes, dropout)
    return keras.Model(inputs, outputs, name="small_cnn")
