"""Where a classifier's scores come from: the layer under a tfmot wrapper and the logits before the softmax.

Grad-CAM differentiates the logits (a softmax output saturates) and export's temperature scaling divides
them, so both ask this module where they are.
"""
from __future__ import annotations

from typing import Any


def unwrap(layer: Any) -> Any:
    """The layer a tfmot wrapper (QAT, pruning, clustering) wraps, else the layer itself."""
    return getattr(layer, "layer", layer)


def output_layer(model: Any) -> Any:
    """The layer that makes the model's (first) output."""
    return model.outputs[0]._keras_history.layer


def is_softmax(layer: Any) -> bool:
    """A Softmax layer or an Activation('softmax'), wrapped or not (not a Dense with a softmax activation)."""
    from edgecls._tf import keras

    inner = unwrap(layer)
    activation = getattr(getattr(inner, "activation", None), "__name__", "")
    return isinstance(inner, keras.layers.Softmax) or (isinstance(inner, keras.layers.Activation)
                                                        and activation == "softmax")


def softmax_logits(model: Any) -> Any | None:
    """The logits tensor (the input of the final softmax layer; edgecls models end in
    ``Activation("softmax", name="probs")``), or None when the model does not end in a softmax layer."""
    layer = output_layer(model)
    return layer.input if is_softmax(layer) else None
