"""LeNet-5 (LeCun et al. 1998), adapted for today's training and tiny inputs."""
from __future__ import annotations

from typing import Any

from edgecls.models.registry import register


@register(
    "lenet5",
    family="lenet",
    description="LeNet-5: 2 conv (6, 16 filters, 5x5) + 3 dense; ReLU, 'same' padding so it runs from 8x8",
)
def lenet5(num_classes: int, input_shape: tuple[int, int, int], *, width: float = 1.0, dropout: float = 0.0) -> Any:
    from edgecls._tf import keras
    from edgecls.models import layers as L

    layers = keras.layers
    inputs = L.image_input(input_shape)
    x = inputs
    # C1-S2 and C3-S4. 'same' padding (not the original 'valid') keeps 8x8 digits
    # from shrinking to nothing; ReLU replaces tanh because it quantizes well.
    for conv, pool, filters in (("c1", "s2", 6), ("c3", "s4", 16)):
        x = layers.Conv2D(L.scaled(filters, width), 5, padding="same", name=conv)(x)
        x = layers.ReLU(name=f"{conv}_relu")(x)
        x = layers.AveragePooling2D(2, padding="same", name=pool)(x)
    x = layers.Flatten(name="flatten")(x)
    for name, units in (("f5", 120), ("f6", 84)):
        x = layers.Dense(L.scaled(units, width), name=name)(x)
        x = layers.ReLU(name=f"{name}_relu")(x)
    outputs = L.classifier(x, num_classes, dropout, pool=False)
    return keras.Model(inputs, outputs, name="lenet5")
