"""Keras -> ONNX through tf2onnx, and the parity check in onnxruntime (the optional ``target: onnx``).

Like every edgecls export, the ONNX model takes raw pixels: float32 RGB 0..255, shape
(N, H, W, 3), normalization inside the graph (the model given is the pixel-input one,
:func:`edgecls.export.convert.with_pixel_input`). Its first output is the probabilities.
tf2onnx, onnx and onnxruntime are the ``onnx`` extra: imported on first use, a missing one
is an :class:`OnnxError` naming what to install. An .onnx file is data (a protobuf);
onnxruntime loads it without running Python code.
"""
from __future__ import annotations

import logging
import os
import time
from typing import Any, Sequence

import numpy as np

from edgecls import metrics
from edgecls.errors import EdgeclsError, first_line

log = logging.getLogger("edgecls.export")

INSTALL = "pip install 'edgecls[onnx]'"


class OnnxError(EdgeclsError):
    """An ONNX export or check that cannot be done: a missing package, an op without an ONNX
    equivalent, a model file onnxruntime cannot load or run, pixels of the wrong shape."""


def _require(module: str) -> Any:
    """``module`` imported (tf2onnx, onnx, onnxruntime), or OnnxError saying how to install it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise OnnxError(f"{module} is not installed ({first_line(err)}): {INSTALL}") from None


def _erfc(ctx, node, name, args):
    """erfc(x) = 1 - erf(x). ONNX has Erf but no Erfc, and tf2onnx 1.17 maps no Erfc; TensorFlow's exact
    GELU (tf.nn.gelu(approximate=False), vit_tiny's MLP) is written with Erfc."""
    from tf2onnx import utils

    dtype = utils.map_onnx_to_numpy_type(ctx.get_dtype(node.input[0]))
    node.type = "Erf"
    one = ctx.make_const(utils.make_name(f"{name}_one"), np.array(1, dtype=dtype))
    ctx.insert_new_node_on_output("Sub", node.output[0], inputs=[one.output[0], node.output[0]])


def opset_range() -> tuple[int, int]:
    """The ONNX opsets the installed tf2onnx can target (lowest, highest)."""
    constants = _require("tf2onnx.constants")
    known = sorted(constants.OPSET_TO_IR_VERSION)
    return known[0], known[-1]


def to_onnx(model_pixels, *, opset: int | None = None) -> bytes:
    """The pixel-input Keras model as a serialized ONNX ModelProto (tf2onnx ``from_keras``).

    ``opset``: the ONNX opset to target; None takes tf2onnx's default (15 in tf2onnx 1.17, which
    onnxruntime has run since 1.10). OnnxError, one line, when tf2onnx fails or leaves ops that have no
    ONNX equivalent (it only logs those and returns a model no runtime can load, so they are looked for).
    """
    from edgecls._tf import quiet_native_stderr, tf

    if opset is not None:
        low, high = opset_range()
        if isinstance(opset, bool) or not isinstance(opset, int) or not low <= opset <= high:
            raise OnnxError(f"ONNX opset must be an integer from {low} to {high} (tf2onnx), got {opset!r}")
    with quiet_native_stderr():  # tf2onnx's import re-runs TensorFlow's CUDA probe on fd 2
        tf2onnx = _require("tf2onnx")
    onnx = _require("onnx")
    name = getattr(model_pixels, "name", "model")
    shape = tuple(model_pixels.input_shape[1:])
    spec = (tf.TensorSpec((None, *shape), tf.float32, name="pixels"),)
    failures = _Failures()  # tf2onnx (continue_on_error) logs a node it cannot convert and leaves it as it was
    tf2onnx_log = logging.getLogger("tf2onnx")
    saved = tf2onnx_log.level, tf2onnx_log.propagate
    tf2onnx_log.addHandler(failures)
    if os.environ.get("EDGECLS_TF_LOGS") != "1":  # it logs every rewrite at INFO; the line raised below says it
        tf2onnx_log.setLevel(logging.ERROR)
        tf2onnx_log.propagate = False
    try:
        proto, _ = tf2onnx.convert.from_keras(model_pixels, input_signature=spec, opset=opset,
                                              custom_op_handlers={"Erfc": (_erfc, [])})
    except Exception as err:  # tf2onnx raises bare ValueError/KeyError/... from deep inside its rewriters
        raise OnnxError(f"tf2onnx {tf2onnx.__version__} cannot convert {name!r}: {first_line(err)}") from None
    finally:
        tf2onnx_log.removeHandler(failures)
        tf2onnx_log.setLevel(saved[0])
        tf2onnx_log.propagate = saved[1]
    actual = _opset(proto)
    left = sorted({n.op_type for n in _nodes(proto.graph) if not onnx.defs.has(n.op_type, n.domain)})
    if left:
        why = f" ({failures.lines[0]})" if failures.lines else ""
        raise OnnxError(f"tf2onnx {tf2onnx.__version__} cannot convert TensorFlow op(s) {', '.join(left)} of {name!r} "
                        f"to ONNX opset {actual}{why}; export this model to TFLite instead")
    try:
        onnx.checker.check_model(proto, full_check=True)
    except Exception as err:
        raise OnnxError(f"tf2onnx made an invalid ONNX model of {name!r}: {first_line(err)}") from None
    return proto.SerializeToString()


class _Failures(logging.Handler):
    """Collects tf2onnx's "Failed to convert node" errors, each as one line with its exception."""

    def __init__(self):
        super().__init__(logging.ERROR)
        self.lines: list[str] = []

    def emit(self, record):
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None:
            node = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
            self.lines.append(f"node {node}: {type(exc).__name__}: {first_line(exc)}")


def _nodes(graph):
    """Every node of an ONNX graph, those in subgraphs (If/Loop bodies) included."""
    for node in graph.node:
        yield node
        for attr in node.attribute:
            for sub in [attr.g] if attr.HasField("g") else list(attr.graphs):
                yield from _nodes(sub)


def _opset(proto) -> int:
    """The default-domain opset a ModelProto imports."""
    return next((int(o.version) for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)


def _session(model_bytes: bytes, what: str, num_threads: int):
    ort = _require("onnxruntime")
    options = ort.SessionOptions()
    options.intra_op_num_threads = num_threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors come back as exceptions; its warnings would only repeat them
    try:
        return ort.InferenceSession(bytes(model_bytes), sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime's own exception types (InvalidProtobuf, InvalidGraph, Fail...)
        raise OnnxError(f"{what}: onnxruntime {ort.__version__} cannot load it: {first_line(err)}") from None


def onnx_probs(model_bytes: bytes, pixels: np.ndarray, *, what: str = "ONNX model", batch: int = 64,
               num_threads: int = 2) -> np.ndarray:
    """(N, classes) probabilities of an edgecls ONNX model for RGB pixels 0..255, shape (N, H, W, 3).

    uint8 or float pixels; fed as float32, the model's input type. onnxruntime on the CPU, ``batch``
    images a run. ``what`` names the model in errors (its path).
    """
    pixels = np.asarray(pixels)
    if pixels.ndim != 4 or pixels.shape[-1] != 3:
        raise OnnxError(f"{what}: pixels must be RGB images shaped (N, H, W, 3), got shape {pixels.shape}")
    if not len(pixels):
        raise OnnxError(f"{what}: no images to run")
    session = _session(model_bytes, what, num_threads)
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if len(inputs) != 1 or len(inputs[0].shape) != 4 or not outputs:
        raise OnnxError(f"{what}: not an edgecls image classifier (inputs "
                        f"{[(i.name, i.shape) for i in inputs]}, {len(outputs)} outputs); it needs one "
                        "(N, H, W, 3) pixel input and a probabilities output")
    want = inputs[0].shape[1:]
    if any(isinstance(w, int) and w != g for w, g in zip(want, pixels.shape[1:])):
        raise OnnxError(f"{what}: the model takes images shaped {tuple(want)} (H, W, C), got {pixels.shape[1:]}")
    chunks, batch = [], max(1, int(batch))
    for start in range(0, len(pixels), batch):
        x = pixels[start:start + batch].astype(np.float32, copy=False)
        try:
            chunks.append(session.run([outputs[0].name], {inputs[0].name: x})[0])
        except Exception as err:
            raise OnnxError(f"{what}: onnxruntime failed to run it: {first_line(err)}") from None
    probs = np.concatenate(chunks)
    if probs.ndim != 2:
        raise OnnxError(f"{what}: its first output is shaped {probs.shape}, not (N, classes) probabilities")
    return probs.astype(np.float32, copy=False)


def onnx_record(model_pixels, pixels: np.ndarray, reference: np.ndarray, labels: Sequence[int] | None, *,
                opset: int | None = None) -> tuple[bytes, dict]:
    """Convert, run ``pixels`` (the test split) in onnxruntime and compare with the Keras ``reference``
    probabilities of the same model. Returns the .onnx bytes and the record for export.json's ``onnx``.

    ``labels``: the images' integer classes (None: no accuracy).
    """
    ort = _require("onnxruntime")
    start = time.perf_counter()
    model_bytes = to_onnx(model_pixels, opset=opset)
    seconds = time.perf_counter() - start
    probs = onnx_probs(model_bytes, pixels, what=f"ONNX export of {getattr(model_pixels, 'name', 'model')!r}")
    reference = np.asarray(reference, np.float32)
    if probs.shape != reference.shape:
        raise OnnxError(f"onnxruntime gives probabilities shaped {probs.shape}; Keras gives {reference.shape}")
    diff = np.abs(probs - reference)
    onnx = _require("onnx")
    record = {
        "opset": _opset(onnx.load_from_string(model_bytes)),
        "tf2onnx": _require("tf2onnx").__version__,
        "onnxruntime": ort.__version__,
        "accuracy": None if labels is None else metrics.accuracy(np.asarray(labels), probs.argmax(1)),
        "top1_agreement": float((probs.argmax(1) == reference.argmax(1)).mean()),
        "max_abs_diff": float(diff.max()),
        "mean_abs_diff": float(diff.mean()),
        "images": int(len(probs)),
        "convert_seconds": round(seconds, 3),
    }
    log.debug("export: onnx opset %d (tf2onnx %s, onnxruntime %s): agreement %.4f, max|diff| %.2e on %d images",
             record["opset"], record["tf2onnx"], record["onnxruntime"], record["top1_agreement"],
             record["max_abs_diff"], record["images"])
    return model_bytes, record
