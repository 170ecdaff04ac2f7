"""Multiply-accumulates of a model, from its layer configs and shapes (no profiler, nothing run).

Counted: Conv2D, DepthwiseConv2D, Dense (on any rank: a ViT's per-token
Dense counts once per token) and MultiHeadAttention (its four projections and
the two attention matmuls). Not counted, as papers do not: BatchNormalization
(folded into the conv at inference), activations, pooling, additions.
"""
from __future__ import annotations

import math
from typing import Any, Iterator


def count_macs(name: str, num_classes: int = 10, input_shape: tuple[int, int, int] | None = None, **options: Any) -> int:
    """MACs of registered model ``name`` for one image of ``input_shape`` (default: the model's default input)."""
    from edgecls.models.registry import create, get_info

    shape = input_shape if input_shape is not None else get_info(name).default_input
    return model_macs(create(name, num_classes, shape, **options))


def model_macs(model: Any) -> int:
    """MACs of a built tf_keras model for one example (nested models are counted through)."""
    return sum(_layer_macs(layer, node) for layer in leaf_layers(model) for node in _nodes(layer))


def leaf_layers(model: Any) -> Iterator[Any]:
    """Every non-model layer of ``model``, descending into nested models, in graph order."""
    for layer in model.layers:
        if hasattr(layer, "layers") and hasattr(layer, "inputs"):  # a nested Functional/Sequential model
            yield from leaf_layers(layer)
        else:
            yield layer


def _nodes(layer: Any) -> list[Any]:
    # A layer applied twice (shared weights) costs twice.
    return list(layer.inbound_nodes)


def _shape(shape: Any) -> tuple[int, ...]:
    return tuple(int(d) for d in shape[1:])  # drop the batch dimension


def _layer_macs(layer: Any, node: Any) -> int:
    from edgecls._tf import keras

    layers = keras.layers
    if isinstance(layer, layers.DepthwiseConv2D):
        # One k x k filter per output channel (depth_multiplier included in the output channels).
        return math.prod(_shape(node.output_shapes)) * math.prod(layer.kernel_size)
    if isinstance(layer, layers.Conv2D):
        cin = _shape(node.input_shapes)[-1]
        return math.prod(_shape(node.output_shapes)) * math.prod(layer.kernel_size) * cin // layer.groups
    if isinstance(layer, layers.Dense):
        shape = _shape(node.input_shapes)
        return math.prod(shape[:-1]) * shape[-1] * layer.units
    if isinstance(layer, layers.MultiHeadAttention):
        return _attention_macs(layer, node)
    return 0


def _attention_macs(layer: Any, node: Any) -> int:
    query = _shape(node.call_args[0].shape)
    value = _shape((node.call_args[1] if len(node.call_args) > 1 else node.call_kwargs["value"]).shape)
    key = _shape(node.call_kwargs["key"].shape) if node.call_kwargs.get("key") is not None else value
    heads, key_dim = layer._num_heads, layer._key_dim
    value_dim = layer._value_dim or key_dim
    tq, tk = math.prod(query[:-1]), math.prod(key[:-1])
    out_dim = layer._output_shape or query[-1]
    out_dim = math.prod(out_dim) if isinstance(out_dim, (tuple, list)) else int(out_dim)
    projections = tq * query[-1] * heads * key_dim + tk * key[-1] * heads * key_dim + tk * value[-1] * heads * value_dim
    attention = heads * tq * tk * (key_dim + value_dim)  # QK^T, then the weighted sum of V
    return projections + attention + tq * heads * value_dim * out_dim
