"""Transfer learning, the model side: pretrained weights, flat graphs, frozen backbones, new heads.

The trainer calls these plain functions:

- ``load_weights(model, spec)``: ``spec`` is "imagenet" (keras.applications
  weights, for the models registered with ``imagenet=``) or a local
  ``.h5``/``.keras`` file. Weights are copied layer by layer where the names
  and shapes match; a different head is skipped and reported, a layer before
  the head that does not load is an error.
- ``check_weights(spec, model_name)``: the same spec checked without
  TensorFlow or a download (``edgecls validate``).
- ``flatten_nested(model)``: one flat functional graph, same weights, so
  tfmot's ``quantize_model``/``prune_low_magnitude`` can wrap every layer
  (they refuse a Model used as a layer: tfmot issues #377, #957).
- ``freeze_backbone(model, trainable_from)``: train the head only, or also
  the last N layers with weights; BatchNormalization stays frozen.
- ``head_only(model, num_classes, dropout)``: a trained edgecls model cut at
  its pooled features, with a new classifier (few-shot).

Why the registered architectures themselves take ImageNet weights (instead of
building the keras.applications model): they have the same layers under the
same names, so the model a recipe trains, compresses and exports is the same
with or without pretrained weights, with no TFOpLambda layers tfmot cannot
wrap and no preprocessing layers inside.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgecls.errors import first_line
from edgecls.models.macs import leaf_layers
from edgecls.models.registry import ModelError, get_info

# Input normalization each ImageNet backbone was trained with, as the data pipeline applies it:
# (pixels / 255 - mean) / std. Put it in the recipe's data.normalize.
_TF = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))  # "tf" mode: [-1, 1]
_TORCH_MEAN, _TORCH_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
# "caffe" mode: BGR minus the ImageNet mean, not scaled; the BGR order is folded into the first conv instead.
_CAFFE = (tuple(c / 255 for c in (123.68, 116.779, 103.939)), (1 / 255,) * 3)
# keras' EfficientNet divides by std, then again by sqrt(std) (see its comment on tensorflow#49930).
_EFFICIENTNET = (_TORCH_MEAN, tuple(s**1.5 for s in _TORCH_STD))
IMAGENET_NORMALIZE = {
    "MobileNet": _TF,
    "MobileNetV2": _TF,
    "MobileNetV3Small": _TF,
    "MobileNetV3Large": _TF,
    "ResNet50V2": _TF,
    "ResNet50": _CAFFE,
    "VGG16": _CAFFE,
    "DenseNet121": (_TORCH_MEAN, _TORCH_STD),
    **{f"EfficientNetB{i}": _EFFICIENTNET for i in range(4)},
}
_BGR = ("ResNet50", "VGG16")
# keras.applications' classifier layers: never in an edgecls model (its head is "logits").
_KERAS_TOP = ("Logits", "predictions")
HEAD_LAYERS = ("avg_pool", "logits")  # the head starts at the first of these a model has


@dataclass(frozen=True)
class WeightsReport:
    """What ``load_weights`` did: layers loaded out of the model's layers with weights, and what was skipped."""

    source: str
    loaded: int
    total: int
    skipped: tuple[str, ...] = ()  # "layer (why)"
    # {"mean": [...], "std": [...]} the weights expect: imagenet, or a keras.applications file given as a path
    normalize: dict | None = field(default=None)
    notes: tuple[str, ...] = ()  # how the weights were adapted (BGR first conv flipped...)

    def __str__(self) -> str:
        text = f"loaded weights for {self.loaded} of {self.total} layers from {self.source}"
        if self.skipped:
            text += f"; skipped {_shown(self.skipped, 5)}"
        return "; ".join((text, *self.notes))


def _shown(items: Any, n: int) -> str:
    items = list(items)
    return ", ".join(items[:n]) + (f" and {len(items) - n} more" if len(items) > n else "")


def load_weights(model: Any, spec: str, *, model_name: str | None = None, options: dict | None = None) -> WeightsReport:
    """Load ``spec`` ("imagenet" or a .h5/.keras path) into ``model`` by layer name; returns what was loaded.

    ``model_name``/``options`` are the recipe's ``model.name``/``model.options``
    (default: ``model.name`` and the builder's defaults); "imagenet" needs them
    to pick the matching keras.applications model (MobileNet's alpha...).
    A file keras.applications wrote (see ``_keras_applications_file``) gets
    the same first-conv adaptation and normalization report as "imagenet".
    """
    if spec == "imagenet":
        return _load_imagenet(model, model_name or model.name, dict(options or {}))
    path = Path(str(spec)).expanduser()
    problems = _path_problems(path, deep=False)
    if problems:
        raise ModelError(f"model.weights: {problems[0]}")
    try:
        import zipfile

        # By content, not by name: a .keras may be HDF5 (tf_keras writes one for model.save("x.keras") in places).
        source = _read_keras(path) if zipfile.is_zipfile(path) else _read_h5(path)
    except ModelError:
        raise
    except Exception as err:  # h5py, zipfile and keras raise many kinds for a bad file
        raise ModelError(f"model.weights: {path}: not a readable Keras weights file ({first_line(err)})") from None
    backbone = _keras_applications_file(source, model, model_name or model.name)
    notes: list[str] = []
    normalize = None
    if backbone:
        source, notes = _adapt_stem(source, model, backbone)
        normalize = _normalize_for(backbone, model.input_shape[-1])
    loaded, skipped = _copy_by_name(source, model)
    report = WeightsReport(str(path), len(loaded), _weighted_count(model), tuple(skipped), normalize, tuple(notes))
    if not loaded:
        raise ModelError(f"model.weights: {path}: no layer of {model.name} matches a layer name and shape in the file "
                         f"(is it a model of another architecture?); {report}")
    head = {layer.name for layer in _head_layers(model)}
    missing = [s for s in skipped if s.split(" ")[0] not in head]
    if missing:  # a different head is expected (another class count); a different body is another model
        raise ModelError(f"model.weights: {path}: {len(missing)} layers of {model.name} before its head did not load "
                         f"(is it a model of another architecture?): {_shown(missing, 8)}")
    if backbone and backbone.startswith("MobileNetV3") and any(s.split(" ")[0] == "Conv_2" for s in skipped):
        # Conv_2 sits after the pooling (so in "the head" above) but is pretrained: left random, logits are noise.
        raise ModelError(f"model.weights: {path}: keras' {backbone} file without its top has no Conv_2 (the 1x1 conv "
                         "after pooling); give the include-top weights file (include_top=True) or weights: imagenet")
    return report


def check_weights(spec: str, model_name: str | None) -> list[str]:
    """Problems with ``model.weights`` found without TensorFlow or a download; [] when none.

    "imagenet" needs a model registered with ImageNet weights; a path must be
    an existing .h5/.keras file whose content is HDF5 with Keras layer
    weights, or a .keras zip with a model config.
    """
    if spec == "imagenet":
        if model_name is None:
            return []
        try:
            return [] if get_info(model_name).imagenet else [_no_imagenet(model_name)]
        except ModelError:
            return []  # an unknown model.name is model.name's problem, reported on its own
    return _path_problems(Path(str(spec)).expanduser(), deep=True)


def _path_problems(path: Path, *, deep: bool) -> list[str]:
    """What is wrong with a weights path; ``deep`` also reads its content (signature, layer weights)."""
    if path.suffix not in (".h5", ".hdf5", ".keras"):
        return [f"must be 'imagenet' or a .h5/.keras file, got {str(path)!r}"]
    if not path.is_file():
        return [f"{path}: no such file"]
    if not deep:
        return []
    import zipfile

    from edgecls.models.loading import HDF5_SIGNATURE

    try:
        with open(path, "rb") as f:
            is_h5 = f.read(len(HDF5_SIGNATURE)) == HDF5_SIGNATURE
        is_zip = zipfile.is_zipfile(path)
    except OSError as err:
        return [f"{path}: cannot be read ({first_line(err)})"]
    if not (is_h5 or is_zip):
        return [f"{path}: neither HDF5 nor a .keras zip: not a Keras weights file"]
    if is_zip:
        try:
            with zipfile.ZipFile(path) as z:
                missing = _not_keras_zip(path, z.namelist())
        except (OSError, zipfile.BadZipFile) as err:
            return [f"{path}: not a readable .keras zip ({first_line(err)})"]
        return [missing] if missing else []
    try:
        import h5py
    except ImportError:  # the signature check above is all that can be done
        return []
    try:
        with h5py.File(path, "r") as f:
            group = f["model_weights"] if "model_weights" in f else f
            problem = "" if "layer_names" in group.attrs else _h5_without_layer_names(path, f)
    except Exception as err:  # h5py raises OSError and others for a damaged file
        return [f"{path}: not a readable HDF5 file ({first_line(err)})"]
    return [problem] if problem else []


def _h5_without_layer_names(path: Path, f: Any) -> str:
    """Why an HDF5 file has no tf_keras layer weights: Keras 3's save_weights layout, or none at all."""
    import h5py

    if isinstance(f.get("layers"), h5py.Group) or "vars" in f:  # Keras 3: layers/<class>/vars/<i>, by position
        return (f"{path}: a Keras 3 weights-only file (save_weights), which names no layers to match by; "
                "save the whole model (model.save('name.keras')) or use tf_keras' save_weights('name.h5')")
    return f"{path}: an HDF5 file without Keras layer weights"


def imagenet_normalization(model_name: str) -> dict | None:
    """The data.normalize {"mean", "std"} that ``model_name``'s ImageNet weights expect, or None."""
    backbone = get_info(model_name).imagenet
    return _normalize_for(backbone, 3) if backbone else None


def _normalize_for(backbone: str, channels: int) -> dict:
    mean, std = IMAGENET_NORMALIZE[backbone]
    if channels == 1:  # the summed RGB filters of a one-channel model see the mean of the channels
        mean, std = (sum(mean) / 3,), (sum(std) / 3,)
    return {"mean": [round(m, 9) for m in mean], "std": [round(s, 9) for s in std]}


def _no_imagenet(model_name: str) -> str:
    from edgecls.models.registry import list_models

    have = ", ".join(i.name for i in list_models() if i.imagenet)
    return (f"imagenet: {model_name} (family {get_info(model_name).family}) has no ImageNet weights in "
            f"keras.applications; models that have them: {have}; or give a local .h5/.keras path")


def _load_imagenet(model: Any, model_name: str, options: dict) -> WeightsReport:
    info = get_info(model_name)
    if not info.imagenet:
        raise ModelError(f"model.weights: {_no_imagenet(model_name)}")
    from edgecls._tf import keras

    h, w = model.input_shape[1:3]
    kwargs: dict[str, Any] = {"include_top": False, "weights": "imagenet", "input_shape": (max(h, 32), max(w, 32), 3)}
    if info.imagenet.startswith("MobileNet"):
        kwargs["alpha"] = options.get("width", 1.0)
    if info.imagenet.startswith("MobileNetV3"):
        # Conv_2 (the 1x1 conv after pooling) is only in the include-top weights; its Logits are left out below.
        kwargs.update(minimalistic=options.get("minimalistic", False), include_preprocessing=False, include_top=True)
    try:
        reference = getattr(keras.applications, info.imagenet)(**kwargs)
    except ValueError as err:  # keras' own check of the arguments (e.g. an alpha without weights)
        raise ModelError(f"model.weights: imagenet: {info.imagenet} has no weights for these options: "
                         f"{first_line(err)}") from None
    except Exception as err:  # the download: URL fetch failure, socket or HTTP errors
        file_name = _url_file_name(str(err)) or f"the {info.imagenet} weights file"
        raise ModelError(
            f"model.weights: imagenet weights for {info.imagenet} cannot be downloaded (offline?): {first_line(err)}; "
            f"put the file at ~/.keras/models/{file_name} or give model.weights a local .h5/.keras path") from None
    return copy_reference(reference, model, info.imagenet)


def copy_reference(reference: Any, model: Any, backbone: str) -> WeightsReport:
    """Copy a keras.applications model's weights into the registered model with the same layers.

    Every reference layer with weights (but its ImageNet classifier) must find
    its twin (same name, same shape): anything else means the options differ
    from the pretrained ones. The first conv is adapted to the model's input
    (``_adapt_stem``).
    """
    source: dict[str, list[Any]] = {}
    for layer in leaf_layers(reference):
        if not layer.weights or type(layer).__name__ in ("Normalization", "Rescaling") or layer.name in _KERAS_TOP:
            continue  # preprocessing layers: the recipe's data.normalize does that; the 1000-class head is not ours
        source[layer.name] = layer.get_weights()
    source, notes = _adapt_stem(source, model, backbone)
    loaded, skipped = _copy_by_name(source, model)
    unmatched = [n for n in source if n not in loaded]
    if unmatched:
        why = [s for s in skipped if s.split(" ")[0] in unmatched] or [f"{n} (no such layer)" for n in unmatched]
        raise ModelError(f"model.weights: imagenet: {backbone} weights do not fit {model.name} with these options "
                         f"({len(unmatched)} layers: {', '.join(why[:3])}); ImageNet weights exist for the default "
                         "width/depth (MobileNets: the alphas keras.applications lists)")
    skipped = [s for s in skipped if s.split(" ")[0] not in source]
    return WeightsReport(f"imagenet ({backbone})", len(loaded), _weighted_count(model), tuple(skipped),
                         _normalize_for(backbone, model.input_shape[-1]), tuple(notes))


def _first_conv(layers: Any) -> str | None:
    """The name of the first entry with a 4-D kernel in ``(name, weights)`` pairs: the stem conv."""
    return next((name for name, weights in layers if weights and len(weights[0].shape) == 4), None)


def _keras_applications_file(source: dict[str, list[Any]], model: Any, model_name: str) -> str:
    """The backbone whose keras.applications weights ``source`` holds ("" = not such a file).

    The model must be registered with ImageNet weights, and the file's first
    conv carry the same name as the model's (keras.applications' name). A file
    with a "logits" layer is edgecls' own (its head), already adapted (RGB).
    """
    try:
        backbone = get_info(model_name).imagenet
    except ModelError:  # not a registered model (a user's own)
        return ""
    if not backbone or "logits" in source:
        return ""
    ours = _first_conv((layer.name, layer.weights) for layer in leaf_layers(model))
    return backbone if ours is not None and _first_conv(source.items()) == ours else ""


def _adapt_stem(source: dict[str, list[Any]], model: Any, backbone: str) -> tuple[dict[str, list[Any]], list[str]]:
    """keras.applications weights for ``model``'s input: caffe-mode (BGR) first conv reversed to RGB, RGB filters
    summed for a one-channel model. Returns the new {layer: weights} and what was done, for the log."""
    import numpy as np

    stem = _first_conv(source.items())
    if stem is None:
        return source, []
    kernel, notes = source[stem][0], []
    if backbone in _BGR:
        kernel = kernel[:, :, ::-1]
        notes.append(f"{stem}: {backbone}'s BGR filters reversed to RGB")
    if model.input_shape[-1] == 1 and kernel.shape[2] == 3:
        kernel = kernel.sum(axis=2, keepdims=True)
        notes.append(f"{stem}: RGB filters summed for one channel")
    return {**source, stem: [np.ascontiguousarray(kernel), *source[stem][1:]]}, notes


def _copy_by_name(source: dict[str, list[Any]], model: Any) -> tuple[list[str], list[str]]:
    """Set each layer's weights from ``source[layer.name]`` when every shape matches; returns (loaded, skipped)."""
    from edgecls.models.layers import CONSTANT_SUFFIX

    loaded, skipped = [], []
    for layer in leaf_layers(model):
        if not layer.weights or layer.name.endswith(CONSTANT_SUFFIX):  # constants are part of the architecture
            continue
        weights = source.get(layer.name)
        if weights is None:
            skipped.append(f"{layer.name} (not in the file)")
            continue
        want = [tuple(w.shape) for w in layer.weights]
        have = [tuple(w.shape) for w in weights]
        if want != have:
            skipped.append(f"{layer.name} (shape {have} in the file, {want} in the model)")
            continue
        layer.set_weights(weights)
        loaded.append(layer.name)
    return loaded, skipped


def _weighted_count(model: Any) -> int:
    from edgecls.models.layers import CONSTANT_SUFFIX

    return sum(1 for layer in leaf_layers(model) if layer.weights and not layer.name.endswith(CONSTANT_SUFFIX))


def _read_h5(path: Path) -> dict[str, list[Any]]:
    """{layer name: weights} of a Keras .h5 (save_weights, or a whole model saved as .h5)."""
    import h5py
    import numpy as np

    def text(values: Any) -> list[str]:
        return [v.decode() if isinstance(v, bytes) else str(v) for v in values]

    with h5py.File(path, "r") as f:
        group = f["model_weights"] if "model_weights" in f else f
        if "layer_names" not in group.attrs:
            raise ModelError(f"model.weights: {_h5_without_layer_names(path, f)}")
        return {
            name: [np.asarray(group[name][w]) for w in text(group[name].attrs["weight_names"])]
            for name in text(group.attrs["layer_names"])
        }


def _read_keras(path: Path) -> dict[str, list[Any]]:
    """{layer name: weights} of a .keras zip, in the order of its config's layers.

    Read as data: no model is rebuilt, so nothing in the file runs, and files
    with layers edgecls would not load as a model (keras.applications'
    MobileNetV3 has TFOpLambda layers) still give their weights, quickly.
    model.weights.h5 holds ``layers/<snake_case class>[_k]/vars/<i>`` (k
    counts that class in the config's layer list; nested models go on with
    ``/layers/...``; vars are trainable then non-trainable, as ``get_weights``).
    """
    import io
    import json
    import zipfile

    import h5py
    import numpy as np

    from edgecls.models.loading import MAX_CONFIG_BYTES

    with zipfile.ZipFile(path) as z:
        missing = _not_keras_zip(path, z.namelist())
        if missing:
            raise ModelError(f"model.weights: {missing}")
        if z.getinfo("config.json").file_size > MAX_CONFIG_BYTES:  # the same bound as a model file's
            raise ModelError(f"model.weights: {path}: its config.json is too large for a model config")
        config = json.loads(z.read("config.json"))
        data = z.read("model.weights.h5")
    weights: dict[str, list[Any]] = {}
    with h5py.File(io.BytesIO(data), "r") as f:
        for where, name in _weight_paths(config.get("config", {}).get("layers", []), "layers"):
            group = f.get(f"{where}/vars")
            if group is not None and len(group) and name not in weights:
                weights[name] = [np.asarray(group[str(i)]) for i in range(len(group))]
    return weights


def _not_keras_zip(path: Path, names: list[str]) -> str:
    """What a zip lacks to be a .keras model file ("" = nothing)."""
    lacks = [part for part in ("config.json", "model.weights.h5") if part not in names]
    return f"{path}: a zip without {' and '.join(lacks)}: not a .keras model file" if lacks else ""


def _weight_paths(layers: list[Any], prefix: str) -> list[tuple[str, str]]:
    """(path in model.weights.h5, layer name) of each layer in a .keras config's layer list, as tf_keras names them."""
    out: list[tuple[str, str]] = []
    used: dict[str, int] = {}
    for layer in layers:
        if not isinstance(layer, dict) or not isinstance(layer.get("config"), dict):
            continue
        key = _snake_case(str(layer.get("class_name", "")))
        used[key] = used[key] + 1 if key in used else 0
        where = f"{prefix}/{key}_{used[key]}" if used[key] else f"{prefix}/{key}"
        inner = layer["config"].get("layers")
        if isinstance(inner, list):  # a nested model
            out += _weight_paths(inner, f"{where}/layers")
        else:
            out.append((where, str(layer["config"].get("name"))))
    return out


def _snake_case(name: str) -> str:
    """tf_keras' generic_utils.to_snake_case (how .keras files name their layers' weights)."""
    text = re.sub("([a-z])([A-Z])", r"\1_\2", re.sub("(.)([A-Z][a-z0-9]+)", r"\1_\2", name)).lower()
    return text if not text.startswith("_") else "private" + text


def _url_file_name(message: str) -> str | None:
    match = re.search(r"https?://\S+?/([^/\s:]+\.h5)", message)
    return match.group(1) if match else None


# --- one flat graph ---------------------------------------------------------------------------


def flatten_nested(model: Any) -> Any:
    """Rebuild ``model`` with every nested Model inlined: one flat functional graph, same weights.

    Every layer is a fresh copy (config + weights), so the result shares
    nothing with ``model``. A nested model's ``trainable=False`` carries over
    to its layers. Names that would clash get the nested model's name as prefix.
    """
    from edgecls._tf import keras

    inputs = [keras.Input(shape=t.shape[1:], dtype=t.dtype, name=layer.name)
              for t, layer in zip(model.inputs, model._input_layers)]
    names = {layer.name for layer in model._input_layers}
    outputs = _inline(model, inputs, names, prefix="", trainable=True)
    return keras.Model(inputs, outputs, name=model.name)


def _is_graph_model(layer: Any) -> bool:
    return getattr(layer, "_is_graph_network", False)


def _inline(model: Any, inputs: list[Any], names: set[str], *, prefix: str, trainable: bool) -> Any:
    """Call copies of ``model``'s layers on ``inputs`` in graph order; returns the new outputs."""
    from edgecls._tf import keras, tf

    tensors = {id(t): new for t, new in zip(model.inputs, inputs)}
    copies: dict[int, Any] = {}  # a layer applied twice keeps sharing one copy

    def mapped(structure: Any) -> Any:
        # Graph order maps every input tensor before use; anything else (training=False...) passes as is.
        return tf.nest.map_structure(lambda t: tensors.get(id(t), t), structure)

    for depth in sorted(model._nodes_by_depth, reverse=True):
        for node in model._nodes_by_depth[depth]:
            layer = node.layer
            if node.is_input:
                continue
            args, kwargs = mapped(node.call_args), mapped(node.call_kwargs)
            if _is_graph_model(layer):
                kwargs.pop("training", None)
                outs = _inline(layer, tf.nest.flatten(args[0] if len(args) == 1 else args), names,
                               prefix=f"{layer.name}/", trainable=trainable and layer.trainable)
            elif isinstance(layer, keras.Model):
                raise ModelError(f"cannot flatten {model.name}: {layer.name} is a subclassed model, not a graph of layers")
            else:
                first = id(layer) not in copies
                if first:
                    copies[id(layer)] = _copy_layer(layer, names, prefix, trainable)
                outs = copies[id(layer)](*args, **kwargs)
                if first:
                    copies[id(layer)].set_weights(layer.get_weights())  # built by the call above
            for old, new in zip(tf.nest.flatten(node.outputs), tf.nest.flatten(outs)):
                tensors[id(old)] = new
    # _nested_outputs keeps a single output a tensor (not a one-element list), as the model was built.
    return tf.nest.map_structure(lambda t: tensors[id(t)], getattr(model, "_nested_outputs", model.outputs))


def _copy_layer(layer: Any, names: set[str], prefix: str, trainable: bool) -> Any:
    config = layer.get_config()
    name = layer.name if layer.name not in names else f"{prefix or 'nested/'}{layer.name}"
    names.add(name)
    config["name"] = name
    copy = type(layer).from_config(config)
    copy.trainable = layer.trainable and trainable
    return copy


# --- fine-tuning and few-shot -------------------------------------------------------------------


def _head_layers(model: Any) -> list[Any]:
    """The layers of ``model``'s head (from "avg_pool" or "logits" on); none when it has neither."""
    layers = list(leaf_layers(model))
    try:
        return layers[_head_start(layers):]
    except ModelError:
        return []


def _head_start(layers: list[Any]) -> int:
    names = [layer.name for layer in layers]
    for name in HEAD_LAYERS:
        if name in names:
            return names.index(name)
    raise ModelError(f"the model has no layer named {' or '.join(HEAD_LAYERS)}: not an edgecls classifier")


def freeze_backbone(model: Any, trainable_from: int | None = None) -> int:
    """Freeze the backbone (every layer before the head); with ``trainable_from=N`` unfreeze its last N layers with weights.

    The head is everything from the global pooling ("avg_pool") on, or from
    "logits" when a model has no such pooling (LeNet, AlexNet). BatchNormalization
    layers stay frozen even when unfrozen around them: a frozen BN runs in
    inference mode, so fine-tuning on small batches does not wreck its
    statistics (the Keras transfer-learning guide's advice). Constant layers
    (hard-sigmoid's frozen affine) stay frozen too. Returns the
    number of trainable weight tensors; recompile the model afterwards.
    """
    from edgecls._tf import keras
    from edgecls.models import layers as L

    if trainable_from is not None and (isinstance(trainable_from, bool) or not isinstance(trainable_from, int)
                                       or trainable_from < 0):
        raise ModelError(f"unfreeze must be an integer >= 0 (layers with weights to train), got {trainable_from!r}")
    layers = list(leaf_layers(model))
    start = _head_start(layers)
    backbone = [layer for layer in layers[:start] if layer.weights]
    unfrozen = {id(layer) for layer in backbone[len(backbone) - (trainable_from or 0):]} if trainable_from else set()
    for nested in model.layers:  # a nested model's own flag would override its layers'
        if isinstance(nested, keras.Model):
            nested.trainable = True
    for i, layer in enumerate(layers):
        if layer.name.endswith(L.CONSTANT_SUFFIX) or (isinstance(layer, keras.layers.BatchNormalization) and i < start):
            layer.trainable = False
        else:
            layer.trainable = i >= start or id(layer) in unfrozen
    return len(model.trainable_weights)


def head_only(backbone_model: Any, num_classes: int, dropout: float = 0.0) -> Any:
    """A new classifier on a trained edgecls model's pooled features (the input of its "logits", before dropout).

    The backbone is a fresh flat copy with the trained weights; the new
    "logits" (``num_classes`` units) and float32 "probs" are untrained.
    """
    from edgecls._tf import keras

    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ModelError(f"num_classes must be an integer >= 2, got {num_classes!r}")
    if not 0.0 <= dropout < 1.0:
        raise ModelError(f"dropout must be in range [0, 1), got {dropout!r}")
    flat = flatten_nested(backbone_model)
    try:
        logits = flat.get_layer("logits")
    except ValueError:
        raise ModelError(f"{backbone_model.name} has no layer named 'logits': not an edgecls classifier") from None
    features = logits.input
    feeder = features._keras_history.layer
    if isinstance(feeder, keras.layers.Dropout):
        features = feeder.input  # the old head's dropout goes with the old head
    x = keras.layers.Dropout(dropout, name="head_dropout")(features) if dropout > 0 else features
    x = keras.layers.Dense(num_classes, name="logits")(x)
    outputs = keras.layers.Activation("softmax", dtype="float32", name="probs")(x)
    return keras.Model(flat.inputs, outputs, name=backbone_model.name)
