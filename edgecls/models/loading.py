"""Load a Keras model file without running code from it: the one place edgecls calls ``keras.models.load_model``.

Why this exists: tf_keras reads HDF5 by its legacy path, which has no
``safe_mode``: a ``Lambda`` layer's marshalled bytecode runs as the model is
rebuilt. tf_keras picks that path for any file that is not a zip, whatever its
name, so a ``train/model.keras`` that is really HDF5 runs code too. Here the
format is read from the content, the model's config is read as plain JSON
(``config.json`` of a .keras zip, the ``model_config`` attribute of an HDF5
file) and every layer is checked before Keras deserializes anything:

- layers must be tf_keras built-ins (``keras.layers``) or tfmot's wrappers and
  quantize layers. edgecls registers no layer classes of its own: its families
  are built from built-ins only (models/layers.py).
- refused by name: ``Lambda`` (Python bytecode), and the layers that call a
  TensorFlow symbol named in the file (``TFOpLambda``, ``SlicingOpLambda``,
  ``ClassMethod``, ``InstanceMethod``, ``InstanceProperty``) or run ops
  described in it (``TensorFlowOpLayer``). ``TFOpLambda`` holds no bytecode,
  but it calls any public TF function with arguments from the file (such as
  ``tf.io.gfile.makedirs`` or ``rmtree``) while the graph is rebuilt.
- refused anywhere in the config: a serialized lambda (``__lambda__``,
  ``function_type: lambda``), and in a .keras config an object whose
  ``module`` is outside keras/tf_keras/tfmot (tf_keras imports it) or a
  Python builtin (``eval``...).

Then a .keras zip loads with ``safe_mode=True`` from a private copy (so the
file checked is the file loaded), an HDF5 file from the same open handle.
"""
from __future__ import annotations

import builtins
import functools
import json
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from edgecls.errors import first_line
from edgecls.models.registry import ModelError

NO_CODE = "edgecls loads no code from model files: rebuild the model without it"
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
MAX_CONFIG_BYTES = 64 << 20  # a .keras config.json larger than this is not a classifier's
# Layers that run code from the file, with what the one-line error says they do.
CODE_LAYERS = {
    "Lambda": "a Lambda (Python code)",
    "TFOpLambda": "a TFOpLambda (calls a TensorFlow function named in the file)",
    "SlicingOpLambda": "a SlicingOpLambda (calls a TensorFlow function named in the file)",
    "ClassMethod": "a ClassMethod layer (calls a TensorFlow method named in the file)",
    "InstanceMethod": "an InstanceMethod layer (calls a tensor method named in the file)",
    "InstanceProperty": "an InstanceProperty layer (reads a tensor attribute named in the file)",
    "TensorFlowOpLayer": "a TensorFlowOpLayer (runs TensorFlow ops described in the file)",
}
# tfmot's layers: QAT wrappers and input quantizer, pruning and clustering wrappers (not stripped in a user's file).
TFMOT_LAYERS = frozenset({"QuantizeAnnotate", "QuantizeWrapper", "QuantizeWrapperV2", "QuantizeLayer",
                          "PruneLowMagnitude", "ClusterWeights", "ClusterWeightsMHA", "ClusterWeightsRNN"})
# Config keys whose values are layers (models, wrappers, RNN cells).
LAYER_KEYS = frozenset({"layers", "layer", "forward_layer", "backward_layer", "cell", "cells"})
# Roots of the modules a .keras config may name (tf_keras imports the module to find a class).
KERAS_MODULES = frozenset({"keras", "tf_keras", "builtins", "tensorflow_model_optimization"})
# Compile settings are not deserialized (edgecls loads with compile=False).
SKIPPED_KEYS = frozenset({"compile_config", "training_config"})


class UnloadableModelError(ModelError):
    """A file that is no loadable Keras model (damaged, foreign, weights only); ``reason``: why, without the path."""

    def __init__(self, what: str, path: Path, reason: str):
        self.reason = reason
        super().__init__(f"{what}: {path}: not a loadable Keras model ({reason})")


class _Refused(Exception):
    def __init__(self, layer: str, why: str):
        self.layer, self.why = layer, why


def load_keras_model(path: str | Path, *, what: str, quantized: bool = False) -> Any:
    """The Keras model in ``path`` (.keras zip or HDF5, by content), refused with a ModelError if it holds code.

    ``what`` names the file for the user ("model.backbone", "train/model.keras");
    ``quantized``: load inside tfmot's quantize_scope (QAT models, saved as HDF5).
    """
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError as err:
        raise UnloadableModelError(what, path, f"cannot be read: {err.strerror or first_line(err)}") from None
    if head == HDF5_SIGNATURE:
        return _load_h5(path, what, quantized)
    if head[:4] == b"PK\x03\x04":
        return _load_zip(path, what, quantized)
    raise UnloadableModelError(what, path, "by its content neither a .keras zip nor HDF5; "
                                           "save the model with model.save('name.keras')")


def check_config(config: Any, *, what: str, keras_format: bool) -> None:
    """Raise a one-line ModelError naming the first layer in ``config`` that would run code when loaded.

    ``config``: a model's serialized config, as a .keras zip (``keras_format``)
    or an HDF5 file (``model.to_json()``) holds it.
    """
    try:
        _check(config, layer="", slot=True, keras_format=keras_format, allowed=_allowed_layers())
    except _Refused as refused:
        where = f"layer '{refused.layer}'" if refused.layer else "the model"
        raise ModelError(f"{what}: {where} {refused.why}; {NO_CODE}") from None
    except RecursionError:
        raise ModelError(f"{what}: the model config is nested too deeply to check for code; "
                         "rebuild the model with fewer nested models") from None


@functools.lru_cache(maxsize=None)
def _allowed_layers() -> frozenset[str]:
    """tf_keras's public layer classes (and model classes, old aliases), tfmot's layers; never a CODE_LAYER."""
    from edgecls._tf import keras

    names = {"Functional", "Sequential", "Model", "BatchNormalizationV1", "BatchNormalizationV2"} | TFMOT_LAYERS
    for module in (keras.layers, keras.layers.experimental, keras.layers.experimental.preprocessing):
        for name in dir(module):
            obj = getattr(module, name, None)
            if isinstance(obj, type) and issubclass(obj, keras.layers.Layer):
                names.add(name)
    return frozenset(names - set(CODE_LAYERS))


def _check(node: Any, *, layer: str, slot: bool, keras_format: bool, allowed: frozenset[str]) -> None:
    """Walk ``node``; ``slot``: it sits where a layer goes; ``layer``: the innermost layer around it."""
    if isinstance(node, list):
        for item in node:
            _check(item, layer=layer, slot=slot, keras_format=keras_format, allowed=allowed)
        return
    if not isinstance(node, dict):
        return
    cls, config = node.get("class_name"), node.get("config")
    if isinstance(cls, str):
        if slot or cls in CODE_LAYERS:
            name = (config.get("name") if isinstance(config, dict) else None) or node.get("name") or layer
            layer = str(name)
            if cls in CODE_LAYERS:
                raise _Refused(layer, f"is {CODE_LAYERS[cls]}")
            if cls not in allowed:
                raise _Refused(layer, f"is a {cls}, not a tf_keras built-in or tfmot layer")
        if cls == "__lambda__":
            raise _Refused(layer, "holds a serialized Python lambda")
        module = node.get("module")
        if keras_format and isinstance(module, str):
            named = config if cls == "function" and isinstance(config, str) else cls
            if module.split(".")[0] not in KERAS_MODULES:
                raise _Refused(layer, f"names the Python module '{module}' (for {cls})")
            if module == "builtins" and named in vars(builtins):
                raise _Refused(layer, f"names the Python builtin '{named}'")
    for key, value in node.items():
        if isinstance(key, str) and key.endswith("_type") and value == "lambda":
            raise _Refused(layer, "holds a serialized Python lambda")
        if key in SKIPPED_KEYS:
            continue
        # A layer's children: the values of its config's LAYER_KEYS (node is that config here), or the
        # whole config of an old Sequential saved as a list of layers.
        child_slot = key == "config" and isinstance(value, list) if isinstance(cls, str) else key in LAYER_KEYS
        _check(value, layer=layer, slot=child_slot, keras_format=keras_format, allowed=allowed)


def _load_h5(path: Path, what: str, quantized: bool) -> Any:
    import h5py

    from edgecls._tf import keras, tfmot

    try:
        f = h5py.File(path, "r")
    except Exception as err:  # h5py raises OSError and others for a damaged file
        raise UnloadableModelError(what, path, f"HDF5: {first_line(err)}") from None
    with f:
        raw = f.attrs.get("model_config")
        if raw is None:
            raise UnloadableModelError(what, path, "an HDF5 file of weights only; save the whole model with "
                                                   "model.save, not save_weights")
        config = _parse(raw.decode() if isinstance(raw, bytes) else str(raw), what, path)
        check_config(config, what=f"{what}: {path}", keras_format=False)
        # The handle already checked is the one loaded: swapping the file meanwhile changes nothing.
        return _keras_load(lambda: keras.models.load_model(f, compile=False), what, path,
                           tfmot().quantization.keras.quantize_scope() if quantized else None)


def _load_zip(path: Path, what: str, quantized: bool) -> Any:
    from edgecls._tf import keras, tfmot

    with tempfile.TemporaryDirectory(prefix="edgecls-model-") as tmp:
        copy = Path(tmp) / "model.keras"  # tf_keras reads a zip as .keras only under that suffix
        try:
            shutil.copyfile(path, copy)
            with zipfile.ZipFile(copy) as zf:
                info = zf.getinfo("config.json")
                if info.file_size > MAX_CONFIG_BYTES:
                    raise UnloadableModelError(what, path, f"its config.json is {info.file_size >> 20} MiB, "
                                                           "too large for a model config")
                text = zf.read(info).decode("utf-8")
        except UnloadableModelError:
            raise
        except KeyError:
            raise UnloadableModelError(what, path, "a zip without config.json") from None
        except Exception as err:  # zipfile, OSError and UnicodeError for a damaged or foreign file
            raise UnloadableModelError(what, path, f".keras: {first_line(err)}") from None
        config = _parse(text, what, path)
        check_config(config, what=f"{what}: {path}", keras_format=True)
        return _keras_load(lambda: keras.models.load_model(copy, compile=False, safe_mode=True), what, path,
                           tfmot().quantization.keras.quantize_scope() if quantized else None)


def _parse(text: str, what: str, path: Path) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as err:
        raise UnloadableModelError(what, path, f"its config is not JSON: {first_line(err)}") from None


def _keras_load(load: Any, what: str, path: Path, scope: Any) -> Any:
    import contextlib

    try:
        with scope or contextlib.nullcontext():
            return load()
    except Exception as err:  # keras raises many kinds for a truncated file or an unknown class
        raise UnloadableModelError(what, path, first_line(err)) from None
