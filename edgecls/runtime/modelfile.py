"""A .tflite model read as a flatbuffer, without TensorFlow or an interpreter.

:func:`load_model` takes bytes or a path and returns a checked
:class:`ModelFile`; :func:`read_model_summary` tells what the model holds
(backs ``edgecls info`` and the "which ops stay float" report). The structure
is checked by :func:`edgecls.runtime.flatcheck.verify_tflite` before the
vendored generated code reads anything: Python's flatbuffers has no verifier,
and a truncated or foreign file must be one clear error, not an IndexError
deep in generated code.
"""
from __future__ import annotations

import contextlib
import functools
import os
import struct
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterator, Union

from edgecls.runtime.errors import RuntimeModelError
from edgecls.runtime.flatcheck import read_model, verify_tflite

ModelSource = Union[bytes, bytearray, memoryview, str, os.PathLike, "ModelFile"]

# What the generated flatbuffers code raises on out-of-range or garbage data.
FLATBUFFER_DAMAGE = (IndexError, ValueError, TypeError, struct.error, UnicodeDecodeError)
FLOAT_DTYPES = frozenset({"float16", "bfloat16", "float32", "float64"})


class ModelFileError(RuntimeModelError, ValueError):
    """Not a readable TFLite model (missing, truncated, foreign); the message names the file."""


@dataclass(frozen=True)
class ModelFile:
    """The bytes of a checked model, where they came from, and the flatbuffer root (``tflite.Model``)."""

    data: bytes  # the whole file, associated-file zip included
    where: str  # the path, or "<model: N bytes>", for messages
    _model: list = field(default_factory=list, repr=False, compare=False)

    @property
    def model(self) -> Any:
        if not self._model:  # the 700 kB generated schema is imported only when a model is read
            from edgecls._vendor import tflite_schema as fb

            self._model.append(fb.Model.GetRootAs(self.data, 0))
        return self._model[0]


def load_model(model: ModelSource) -> ModelFile:
    """Read and check a model given as bytes, a path or a ModelFile; :class:`ModelFileError` otherwise."""
    if isinstance(model, ModelFile):
        return model
    try:
        if isinstance(model, (bytes, bytearray, memoryview)):
            data, where = bytes(model), f"<model: {len(model)} bytes>"
            verify_tflite(data, name=where)
        elif isinstance(model, (str, os.PathLike)):
            data, where = read_model(model), os.fspath(model)  # read and verified
        else:
            raise TypeError(f"a model is bytes or a path, not {type(model).__name__}")
    except ModelFileError:
        raise
    except RuntimeModelError as err:  # the same message, as the error this module's callers catch
        raise ModelFileError(str(err)) from None
    return ModelFile(data, where)


@contextlib.contextmanager
def reading(where: str, what: str, error: type[ModelFileError] = ModelFileError) -> Iterator[None]:
    """Turn what reading damaged flatbuffer data raises into one ``error`` naming the file."""
    try:
        yield
    except ModelFileError:
        raise
    except FLATBUFFER_DAMAGE as err:
        raise error(f"{where}: damaged {what} (truncated or corrupt): {err}") from None


def op_name(code: Any) -> str:
    """Builtin op name (CONV_2D...) of a ``tflite.OperatorCode``, or a custom op's own name."""
    from edgecls._vendor import tflite_schema as fb

    # schema.fbs: the real code is the larger of builtin_code and the older int8 deprecated_builtin_code.
    builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
    if builtin == fb.BuiltinOperator.CUSTOM:
        return (code.CustomCode() or b"CUSTOM").decode("utf-8", "replace")
    return _names(fb.BuiltinOperator).get(builtin, f"UNKNOWN_{builtin}")


def dtype_name(tensor_type: int) -> str:
    """``tflite.TensorType`` as a numpy-style name: float32, uint8, int8..."""
    from edgecls._vendor import tflite_schema as fb

    return _names(fb.TensorType).get(tensor_type, f"type{tensor_type}").lower()


@functools.lru_cache(maxsize=None)
def _names(enum: type) -> dict[int, str]:
    return {v: k for k, v in vars(enum).items() if not k.startswith("_")}


def read_model_summary(model: ModelSource) -> dict[str, Any]:
    """What a .tflite holds, from its flatbuffer alone (no interpreter, no TensorFlow).

    ``{"size", "subgraphs", "inputs", "outputs", "ops", "float_ops", "metadata"}``:
    inputs/outputs of the main subgraph as dicts (name, shape, shape_signature,
    dtype, scale, zero_point; scale and zero_point are None when not quantized);
    ``ops`` counts operators by name over all subgraphs, most frequent first;
    ``float_ops`` counts those computing in floating point (a float output;
    QUANTIZE/DEQUANTIZE left out, they only convert); ``metadata`` names the
    model's metadata entries (``TFLITE_METADATA`` when it has TFLite metadata).
    """
    mf = load_model(model)
    with reading(mf.where, "TFLite model"):
        return _summary(mf)


def _summary(mf: ModelFile) -> dict[str, Any]:
    m = mf.model
    names = [op_name(m.OperatorCodes(i)) for i in range(m.OperatorCodesLength())]
    ops: Counter[str] = Counter()
    float_ops: Counter[str] = Counter()
    for s in range(m.SubgraphsLength()):
        sg = m.Subgraphs(s)
        for i in range(sg.OperatorsLength()):
            op = sg.Operators(i)
            name = names[op.OpcodeIndex()]
            ops[name] += 1
            outs = op.OutputsAsNumpy().tolist() if op.OutputsLength() else []
            floating = any(dtype_name(sg.Tensors(o).Type()) in FLOAT_DTYPES for o in outs if o >= 0)
            if floating and name not in ("QUANTIZE", "DEQUANTIZE"):
                float_ops[name] += 1
    main = m.Subgraphs(0)  # verify_tflite guarantees one
    return {
        "size": len(mf.data),
        "subgraphs": m.SubgraphsLength(),
        "inputs": [_tensor(main, i) for i in (main.InputsAsNumpy().tolist() if main.InputsLength() else [])],
        "outputs": [_tensor(main, i) for i in (main.OutputsAsNumpy().tolist() if main.OutputsLength() else [])],
        "ops": dict(ops.most_common()),
        "float_ops": dict(float_ops.most_common()),
        "metadata": [(m.Metadata(i).Name() or b"").decode("utf-8", "replace") for i in range(m.MetadataLength())],
    }


def _tensor(sg: Any, index: int) -> dict[str, Any]:
    t = sg.Tensors(index)
    q = t.Quantization()
    scale = q.ScaleAsNumpy().tolist() if q is not None and q.ScaleLength() else []
    zero = q.ZeroPointAsNumpy().tolist() if q is not None and q.ZeroPointLength() else []
    shape = t.ShapeAsNumpy().tolist() if t.ShapeLength() else []
    return {
        "name": (t.Name() or b"").decode("utf-8", "replace"),
        "shape": shape,
        "shape_signature": t.ShapeSignatureAsNumpy().tolist() if t.ShapeSignatureLength() else shape,
        "dtype": dtype_name(t.Type()),
        # Model inputs/outputs carry one value; per-axis quantization (weights) would give lists.
        "scale": (scale[0] if len(scale) == 1 else scale) if scale else None,
        "zero_point": (zero[0] if len(zero) == 1 else zero) if zero else None,
    }
