"""Keras -> TFLite (LiteRT) conversion. Returns bytes; saving is the caller's (atomic) job.

Every exported model takes raw pixels: RGB, 0..255 (float32, or uint8/int8
through its input quantization). Normalization and, for grayscale models, the
RGB-to-gray conversion happen inside the graph, so one file serves every app:
MediaPipe Tasks (which feeds only 3- or 4-channel images), the edgecls
runtime, or a user's own code.
"""
from __future__ import annotations

import logging
import warnings
from typing import Sequence

import numpy as np

from edgecls._tf import keras, quiet_native_stderr, tf
from edgecls.errors import EdgeclsError, first_line
from edgecls.models.heads import output_layer, softmax_logits, unwrap
from edgecls.progress import bar

log = logging.getLogger("edgecls.export")

MODES = ("float32", "float16", "dynamic", "int8", "int16x8")
GRAY_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R BT.601 luma, as Pillow's convert("L") uses


class ExportError(EdgeclsError):
    """A conversion that cannot give what the recipe asked for (e.g. int8 that is not fully integer)."""


def with_pixel_input(model, *, channels: int, mean: Sequence[float], std: Sequence[float]):
    """Wrap ``model`` (normalized input) into one that takes raw RGB pixels 0..255.

    Plain Keras layers only, so QAT models stay convertible and the ops are
    quantizable (a 1x1 convolution for gray, a multiply-add for normalization).
    """
    h, w = model.input_shape[1:3]
    pixels = keras.Input((h, w, 3), name="pixels")
    x = pixels
    if channels == 1:
        gray = keras.layers.Conv2D(1, 1, use_bias=False, trainable=False, name="rgb_to_gray")
        x = gray(x)
        gray.set_weights([np.array(GRAY_WEIGHTS, np.float32).reshape(1, 1, 3, 1)])
    mean = np.broadcast_to(np.asarray(mean, np.float32), (channels,))
    std = np.broadcast_to(np.asarray(std, np.float32), (channels,))
    # (x / 255 - mean) / std  ==  x * scale + offset
    scale, offset = 1.0 / (255.0 * std), -mean / std
    norm = keras.layers.DepthwiseConv2D(1, use_bias=True, trainable=False, name="normalize")
    x = norm(x)
    norm.set_weights([scale.reshape(1, 1, channels, 1), offset])
    return keras.Model(pixels, model(x), name=f"{model.name}_pixels")


def with_temperature(model, temperature: float):
    """``model`` with its softmax taken over logits / ``temperature``: calibrated probabilities in the graph.

    The logits are the input of the final softmax layer (edgecls models end in
    ``Activation("softmax", name="probs")``, QAT-wrapped or not; a ``Softmax`` layer
    works too); a final Dense with a softmax activation is split into a linear copy of
    itself and a softmax. The division is a built-in ``Rescaling``, not a Lambda (this
    graph is only converted, never saved): one MUL, which the converter folds into the
    logits' FULLY_CONNECTED for float and post-training int8 models (a QAT model keeps an
    int8 MUL). ExportError when the model does not end in a softmax: no logits to scale.
    """
    t = float(temperature)
    if not (np.isfinite(t) and t > 0):
        raise ExportError(f"temperature must be a finite number > 0, got {temperature!r}")
    layer = output_layer(model)
    inner = unwrap(layer)
    activation = getattr(getattr(inner, "activation", None), "__name__", "")
    logits = softmax_logits(model)
    if logits is None and isinstance(inner, keras.layers.Dense) and activation == "softmax" and inner is layer:
        config = dict(inner.get_config(), activation="linear", name=f"{inner.name}_logits")
        dense = keras.layers.Dense.from_config(config)
        logits = dense(layer.input)
        dense.set_weights(inner.get_weights())
    elif logits is None:
        raise ExportError(f"calibrate: temperature needs a model that ends in a softmax; '{model.name}' ends in "
                          f"{type(inner).__name__} '{inner.name}'")
    scaled = keras.layers.Rescaling(1.0 / t, name="temperature")(logits)
    probs = keras.layers.Activation("softmax", dtype="float32", name="calibrated_probs")(scaled)
    return keras.Model(model.inputs, probs, name=f"{model.name}_calibrated")


def _representative(samples: np.ndarray, desc: str = "calibration"):
    def gen():
        # The converter draws every sample, one invoke each: on a TTY a bar shows how far calibration is.
        for x in bar(samples, desc=desc, unit="img"):
            yield [x[None].astype(np.float32)]
    return gen


_TYPES = {"float32": tf.float32, "uint8": tf.uint8, "int8": tf.int8}


def convert(model, mode: str, *, representative: np.ndarray | None = None, input_type: str = "float32",
            output_type: str = "float32", per_channel: bool = True, float_layers: Sequence[str] = (),
            debugger=None) -> bytes:
    """Convert a Keras model to TFLite bytes.

    ``representative``: raw-pixel float samples (N, H, W, 3) for int8/int16x8
    calibration (and for QAT models' ops outside the fake-quant wrappers).
    ``per_channel=False`` (int8/int16x8): one weight scale per tensor. Each
    channel's scale (float32) and zero point (int64) take 12 bytes in the
    file, which for a MobileNetV2 x0.35 (14,098 channels) is 27 % of the int8 file.
    ``float_layers`` (int8 only): quantization debugger node names (:func:`debugger_nodes`, the output
    tensor names of the calibrated model) whose ops stay float inside the otherwise int8 model.
    ``debugger`` (int8): a :func:`quantization_debugger` of this model and ``representative``, reused
    instead of calibrating again (a float_layers search converts the same model many times).
    """
    if mode not in MODES:
        raise ExportError(f"unknown export mode '{mode}'; modes: {', '.join(MODES)}")
    float_layers = tuple(float_layers)
    if (float_layers or debugger is not None) and mode != "int8":
        raise ExportError(f"float_layers: keeping layers in float needs mode int8 (mode is {mode})")
    if mode in ("int8", "int16x8"):
        if representative is None or not len(representative):
            raise ExportError(f"mode {mode} needs representative data")
        conv = _int8_converter(model, representative, per_channel, f"{mode} calibration", mode=mode)
        if mode == "int8":
            conv.inference_input_type = _TYPES[input_type]
            conv.inference_output_type = _TYPES[output_type]
    else:
        conv = tf.lite.TFLiteConverter.from_keras_model(model)
        if mode in ("float16", "dynamic"):
            conv.optimizations = [tf.lite.Optimize.DEFAULT]
        if mode == "float16":
            conv.target_spec.supported_types = [tf.float16]
    try:
        with warnings.catch_warnings(), quiet_native_stderr(keep_python=True):  # the calibration bar stays
            warnings.simplefilter("ignore")  # the converter warns about QAT statistics we give it
            if float_layers or debugger is not None:
                debugger = debugger or quantization_debugger(model, representative, per_channel=per_channel,
                                                             desc="int8 calibration")
                blob = _selective(debugger, float_layers, input_type, output_type)
            else:
                blob = conv.convert()
    except ExportError:
        raise
    except Exception as err:  # the converter raises ConverterError, RuntimeError, ValueError...
        if mode == "int8":
            raise ExportError(f"int8 conversion failed: not every op can be fully integer "
                              f"({_first_line(err)}); ops that stay float: {', '.join(_float_ops(model, representative)) or 'unknown'}") from None
        raise ExportError(f"{mode} conversion failed: {_first_line(err)}") from None
    if mode == "int8":  # the converter can leave ops float even with the int8 op set: never ship that as int8
        from edgecls.export.ops import op_report

        # Only the nodes float_layers names may compute in float.
        float_ops = (sorted({op for op, name in float_nodes(blob) if not _is_node(name, float_layers)})
                     if float_layers else op_report(blob)["float_ops"])
        if float_ops:
            raise ExportError(f"int8 was asked but these ops stay float: {', '.join(float_ops)}; "
                              "export this model as 'dynamic', or replace those layers")
    return blob


def _int8_converter(model, representative: np.ndarray, per_channel: bool, desc: str, *, mode: str = "int8"):
    """The one definition of the post-training int8 (or int16x8) converter settings: convert()'s int8 and
    int16x8 variants and the quantization debugger (float_layers, its "plain int8" included) all start here.
    Input/output types are the caller's (the debugger keeps float edges)."""
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = _representative(representative, desc)
    # The converter's only switch for this is a private attribute (TF 2.21); it is the documented
    # per-tensor path of the post-training quantization guide.
    conv._experimental_disable_per_channel = not per_channel
    conv.target_spec.supported_ops = ([tf.lite.OpsSet.TFLITE_BUILTINS_INT8] if mode == "int8" else
                                      [tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8])
    return conv


def quantization_debugger(model, representative: np.ndarray, *, per_channel: bool = True,
                          layer_debug_metrics: dict | None = None, desc: str = "quantization debugger calibration"):
    """LiteRT's QuantizationDebugger on ``model`` calibrated with ``representative`` (raw-pixel samples).

    Constructing it calibrates once; ``.run()`` then compares every quantized op with its float
    counterpart on ``representative`` (the layer statistics); :func:`convert` with ``debugger=`` gets the
    int8 model with ``float_layers`` (its options' denylisted_nodes) kept float. ``fully_quantize=False``:
    the model's edges stay float32, and :func:`convert` sets the recipe's input/output types on them
    as the converter itself does (``fully_quantize=True`` could only give int8 edges).
    """
    conv = _int8_converter(model, representative, per_channel, desc)
    options = tf.lite.experimental.QuantizationDebugOptions(
        layer_debug_metrics=layer_debug_metrics, fully_quantize=False)
    with warnings.catch_warnings(), quiet_native_stderr(keep_python=True):
        warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation notice; statistics for QAT models
        return tf.lite.experimental.QuantizationDebugger(
            converter=conv, debug_dataset=_representative(representative, "quantization debugger"),
            debug_options=options)


def debugger_nodes(debugger) -> list[tuple[str, str]]:
    """(op, node name) of every op in the debugger's calibrated model, in graph order: the names
    ``float_layers``/``denylisted_nodes`` take (an op's output tensor name, which names its Keras layers)."""
    return [(op, name) for op, name, _ in _op_outputs(debugger.calibrated_model)]


def float_nodes(model_bytes: bytes) -> list[tuple[str, str]]:
    """(op, output tensor name) of the ops computing in float (QUANTIZE/DEQUANTIZE only convert), graph order."""
    return [(op, name) for op, name, floating in _op_outputs(model_bytes)
            if floating and op not in ("QUANTIZE", "DEQUANTIZE")]


def _is_node(name: str, nodes: Sequence[str]) -> bool:
    """Is ``name`` (a tensor of the converted model) one of ``nodes``? The quantizer keeps a float op's output
    name, or appends a digit when its quantized twin took the name ("einsum_1/Einsum1" -> "einsum_1/Einsum11")."""
    return any(name == n or (name.startswith(n) and name[len(n):].isdigit()) for n in nodes)


def _op_outputs(model_bytes: bytes) -> list[tuple[str, str, bool]]:
    """(op, first output's tensor name, any float output) for each op of the main subgraph, from the flatbuffer."""
    from edgecls.runtime.modelfile import FLOAT_DTYPES, dtype_name, load_model, op_name

    m = load_model(bytes(model_bytes)).model
    codes = [op_name(m.OperatorCodes(i)) for i in range(m.OperatorCodesLength())]
    sg, rows = m.Subgraphs(0), []
    for i in range(sg.OperatorsLength()):
        op = sg.Operators(i)
        outs = [o for o in (op.OutputsAsNumpy().tolist() if op.OutputsLength() else []) if o >= 0]
        name = (sg.Tensors(outs[0]).Name() or b"").decode("utf-8", "replace") if outs else ""
        floating = any(dtype_name(sg.Tensors(o).Type()) in FLOAT_DTYPES for o in outs)
        rows.append((codes[op.OpcodeIndex()], name, floating))
    return rows


def _selective(debugger, float_layers: tuple[str, ...], input_type: str, output_type: str) -> bytes:
    """int8 with ``float_layers`` kept float: the quantization debugger's non-debug model, edges retyped."""
    from tensorflow.lite.python.util import modify_model_io_type  # what TFLiteConverter.convert() itself calls

    known = {name for _, name in debugger_nodes(debugger)}
    unknown = [n for n in float_layers if n not in known]
    if unknown:
        raise ExportError(f"float_layers: no node named '{unknown[0]}' in the calibrated model; nodes: "
                          f"{', '.join(sorted(known)[:8])}{' ...' if len(known) > 8 else ''}")
    debugger.options = tf.lite.experimental.QuantizationDebugOptions(
        layer_debug_metrics=debugger.options.layer_debug_metrics, denylisted_nodes=list(float_layers) or None,
        fully_quantize=False)
    blob = debugger.get_nondebug_quantized_model()
    try:
        return bytes(modify_model_io_type(blob, _TYPES[input_type], _TYPES[output_type]))
    except (ValueError, RuntimeError) as err:  # e.g. a float last op cannot give a uint8 output
        raise ExportError(f"float_layers: input_type {input_type} / output_type {output_type} cannot be set with "
                          f"{', '.join(float_layers)} kept float ({first_line(err)}); keep the model's first and "
                          "last ops int8, or use float32 input/output") from None


def _first_line(err: Exception) -> str:
    """The converter's useful line names an unsupported op; else the first line."""
    return first_line(err, prefer=r"^.*(unsupported|not supported)")


def _float_ops(model, representative) -> list[str]:
    """Which ops stay float when int8 is not forced: convert leniently and look."""
    from edgecls.export.ops import op_report

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = _representative(representative, "finding float ops")
    try:
        with warnings.catch_warnings(), quiet_native_stderr(keep_python=True):
            warnings.simplefilter("ignore")
            blob = conv.convert()
        return op_report(blob)["float_ops"]
    except Exception:  # nothing more to learn
        return []
