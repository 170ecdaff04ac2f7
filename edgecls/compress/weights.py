"""What compression did to a model's weights: sparsity and distinct values per layer.

Reads the kernels of a (stripped or wrapped) Keras model; reports are plain
JSON-able dicts for compress/metrics.json.
"""
from __future__ import annotations

import fnmatch

import numpy as np

_KERNEL_NAMES = ("kernel", "depthwise_kernel", "pointwise_kernel")


def matches(name: str, patterns) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


class LeaveAsIs(Exception):
    """Raised by a wrap function: this layer stays as it is, for the reason given."""


def wrap_layers(model, wrap, *, skip=(), verb: str):
    """Clone ``model`` with ``wrap(layer)`` applied to every layer that has a kernel.

    Returning the layer objects themselves (as tfmot's guides do) keeps their
    trained weights. Layers matching ``skip``, those ``wrap`` leaves
    (:class:`LeaveAsIs`) and those tfmot refuses (ValueError) stay as they are;
    returns (model, {"wrapped": [names], "left": {name: reason}}).
    """
    from edgecls._tf import keras

    has_kernel = set(kernels(model))
    wrapped, left = [], {}

    def clone(layer):
        if layer.name not in has_kernel:
            return layer
        if matches(layer.name, skip):
            left[layer.name] = "skipped by name"
            return layer
        try:
            out = wrap(layer)
        except LeaveAsIs as why:
            left[layer.name] = str(why)
            return layer
        except ValueError as err:  # tfmot names what it cannot handle
            left[layer.name] = f"tfmot cannot {verb} it: {str(err).splitlines()[0]}"
            return layer
        wrapped.append(layer.name)
        return out

    return keras.models.clone_model(model, clone_function=clone), {"wrapped": wrapped, "left": left}


def kernels(model) -> dict[str, np.ndarray]:
    """The main weight tensor of every layer that has one, by layer name.

    Wrapped layers (pruning, clustering, QAT) keep their kernels under the
    wrapped layer's name, so this reads them whatever the wrapper.
    """
    out = {}
    for layer in model.layers:
        inner = getattr(layer, "layer", layer)
        for weight in layer.weights:
            short = weight.name.split("/")[-1].split(":")[0]
            if short in _KERNEL_NAMES and inner.name not in out:
                out[inner.name] = weight.numpy()
    return out


def sparsity_report(model) -> dict:
    """Fraction of exact zeros per kernel, and over all kernels together."""
    per_layer, zeros, total = {}, 0, 0
    for name, w in kernels(model).items():
        z = int((w == 0).sum())
        per_layer[name] = round(z / w.size, 4)
        zeros, total = zeros + z, total + w.size
    return {"sparsity": round(zeros / total, 4) if total else 0.0, "sparsity_per_layer": per_layer}


def unique_report(model) -> dict:
    """Distinct weight values per kernel (what clustering bounds)."""
    per_layer = {name: int(np.unique(w).size) for name, w in kernels(model).items()}
    return {"unique_weights_per_layer": per_layer}


def unique_per_channel(model) -> dict[str, int]:
    """The largest count of distinct values in one output channel, per kernel (per-channel clustering)."""
    return {name: int(max(np.unique(w[..., c]).size for c in range(w.shape[-1])))
            for name, w in kernels(model).items()}


def m_by_n_ok(w: np.ndarray, m: int, n: int) -> bool:
    """Whether every block of n consecutive input-channel weights has at most m non-zeros.

    tfmot prunes M-by-N along the input-channel axis (the second to last of a
    kernel), which is what sparse kernels on accelerators expect.
    """
    x = np.moveaxis(w, -2, -1).reshape(-1, w.shape[-2])
    if x.shape[1] % n:
        return False
    blocks = x.reshape(x.shape[0], -1, n)
    return bool(((blocks != 0).sum(-1) <= m).all())
