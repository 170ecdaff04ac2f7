"""AlexNet (Krizhevsky et al. 2012), reduced for edge inputs.

Five convs (torchvision's 64/192/384/256/256 filters x width) and two fully
connected layers, with the changes everybody makes today: BatchNorm instead
of local response normalization, 'same' padding, and ``fc_units`` (1024
instead of 4096) so the FC layers do not dwarf the rest. ``stem_stride`` 4
is the original 11x11/4 stem; 2 or 1 keep small images from vanishing.
"""
from __future__ import annotations

from typing import Any

from edgecls.models.registry import check_int, register

# (filters, kernel, max pool after) of the five convs.
_CONVS = ((64, 11, True), (192, 5, True), (384, 3, False), (256, 3, False), (256, 3, True))


@register(
    "alexnet",
    family="alexnet",
    description="AlexNet, reduced: 5 conv-BN-ReLU (64-384 filters x width) + 2 FC (fc_units), BN instead of LRN",
    default_input=(224, 224, 3),
)
def alexnet(
    num_classes: int,
    input_shape: tuple[int, int, int],
    *,
    width: float = 1.0,
    fc_units: int = 1024,
    dropout: float = 0.5,
    stem_stride: int = 4,
) -> Any:
    check_int("fc_units", fc_units)
    check_int("stem_stride", stem_stride, choices=(1, 2, 4))
    from edgecls._tf import keras
    from edgecls.models import layers as L

    inputs = L.image_input(input_shape)
    x = inputs
    for i, (filters, kernel, pool) in enumerate(_CONVS, start=1):
        x = L.conv_act(x, L.scaled(filters, width), kernel, stride=stem_stride if i == 1 else 1, batch_norm=True,
                       name=f"conv{i}")
        if pool:
            # Overlapping 3x3/2 pooling, as in the paper.
            x = keras.layers.MaxPooling2D(3, strides=2, padding="same", name=f"pool{i}")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    for name in ("fc6", "fc7"):
        x = L.dense_act(x, int(fc_units), dropout=dropout, name=name)
    # The paper drops out before fc6 and fc7 only, not before the classifier.
    outputs = L.classifier(x, num_classes, 0.0, pool=False)
    return keras.Model(inputs, outputs, name="alexnet")
