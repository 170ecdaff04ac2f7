"""Quantization-aware training through tfmot, alone or preserving sparsity and clusters (PQAT, CQAT, PCQAT).

Layers tfmot's default 8-bit scheme cannot quantize are left unannotated (they
stay float) and named in the log and in compress/metrics.json, instead of
failing the run.
"""
from __future__ import annotations

import logging
import re

from edgecls._tf import keras, tfmot
from edgecls.compress.weights import _KERNEL_NAMES, kernels, matches
from edgecls.errors import StageError
from edgecls.recipe.schema import QuantizeOptions

log = logging.getLogger("edgecls.compress")


def scheme(preserve: str):
    t = tfmot()
    combine = t.experimental.combine
    if preserve == "sparsity":
        return combine.Default8BitPrunePreserveQuantizeScheme()
    if preserve == "clusters":
        return combine.Default8BitClusterPreserveQuantizeScheme()
    if preserve == "both":
        return combine.Default8BitClusterPreserveQuantizeScheme(preserve_sparsity=True)
    return t.quantization.keras.default_8bit.Default8BitQuantizeScheme()


def apply(model, opts: QuantizeOptions, *, total_steps: int):
    """Annotate every layer, apply QAT, and leave out what tfmot refuses; returns (model, {"wrapped", "left"}).

    Support is decided by ``quantize_apply`` itself, after its graph transforms
    (Conv+BatchNorm folding...), so a layer is only left float when tfmot says
    it cannot quantize it.
    """
    qk = tfmot().quantization.keras
    left: dict[str, str] = {n.name: "skipped by name" for n in model.layers if matches(n.name, opts.skip)}
    for _ in range(len(model.layers) + 1):
        annotated = keras.models.clone_model(
            model, clone_function=lambda layer: layer if layer.name in left else qk.quantize_annotate_layer(layer))
        try:
            with qk.quantize_scope():
                qat = qk.quantize_apply(annotated, scheme(opts.preserve))
            break
        except RuntimeError as err:  # "Layer <name>:<class> is not supported..."
            match = re.search(r"Layer (\S+?):<class '[\w.]*?(\w+)'> is not supported", str(err))
            if not match or match.group(1) in left:
                raise StageError(f"quantize: tfmot could not apply QAT: {str(err).splitlines()[0]}") from None
            left[match.group(1)] = f"{match.group(2)} is not supported by tfmot's 8-bit scheme"
        except ValueError as err:
            raise StageError(f"quantize: tfmot could not apply QAT: {str(err).splitlines()[0]}") from None
    for name, why in left.items():
        log.warning("quantize: %s stays float (%s)", name, why)
    wrapped = [layer.layer.name for layer in qat.layers if hasattr(layer, "quantize_config")]
    info = {"wrapped": wrapped, "left": left}
    if opts.preserve in ("sparsity", "both"):
        # tfmot's prune-preserving scheme loses the mask of layers its layout transforms
        # rewrite (seen: Conv2D followed by ReLU), so keep the source's zeros ourselves.
        info["keep_zero"] = {name: w != 0 for name, w in kernels(model).items() if (w == 0).any()}
    return qat, info


class KeepZeros(keras.callbacks.Callback):
    """Re-apply the source model's zero masks to the QAT kernels after every batch."""

    def __init__(self, masks: dict):
        super().__init__()
        self.masks = masks

    def on_train_begin(self, logs=None):
        self._pairs = []
        for layer in self.model.layers:
            name = getattr(layer, "layer", layer).name
            if name in self.masks:
                var = next(w for w in layer.weights if w.name.split("/")[-1].split(":")[0] in _KERNEL_NAMES)
                self._pairs.append((var, self.masks[name].astype(var.dtype.as_numpy_dtype)))
        self.on_train_batch_end(0)

    def on_train_batch_end(self, batch, logs=None):
        for var, mask in self._pairs:
            var.assign(var * mask)


def callbacks(info: dict) -> list:
    return [KeepZeros(info["keep_zero"])] if info.get("keep_zero") else []


def strip(model):
    """QAT's fake-quant wrappers are what the converter reads: nothing to strip."""
    return model
