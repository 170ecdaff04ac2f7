"""One loaded model: its interpreter, its input quantization and its output dequantization.

:class:`Runner` knows nothing of images or labels; :class:`~edgecls.runtime.classifier.Classifier`
builds on it, and :mod:`edgecls.runtime.timing` times it. The hot path
(:meth:`Runner.run`) is ``set_tensor`` / ``invoke`` / ``get_tensor`` with
nothing else in it, so its latency is the interpreter's.

Delegates: XNNPACK is the default (the interpreter applies it by itself);
``"none"`` runs the reference kernels; a library name or path (e.g.
``libedgetpu.so.1``, or ``"edgetpu"``) is loaded as an external delegate;
``"gpu"`` uses LiteRT's GPU accelerator through its CompiledModel API with
ai-edge-litert, or ``libtensorflowlite_gpu_delegate.so`` with the other backends.
"""
from __future__ import annotations

import os
import threading
import time
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgecls.errors import first_line
from edgecls.runtime.backends import Backend, delegate_kind, load_backend
from edgecls.runtime.errors import DelegateError, ImageError, RuntimeModelError, XnnpackRefused
from edgecls.runtime.flatcheck import verify_tflite
from edgecls.runtime.options import check_threads
from edgecls.runtime.quantization import dequantize, quantize

INPUT_DTYPES = (np.float32, np.uint8, np.int8)


def default_threads() -> int:
    """All cores, at most 4 (XNNPACK gains little beyond that on phone-class CPUs)."""
    return max(1, min(4, os.cpu_count() or 1))


@dataclass(frozen=True)
class TensorInfo:
    """An input or output tensor: where it is, its shape and dtype, and its (scale, zero_point)."""

    name: str
    index: int
    shape: tuple[int, ...]
    dtype: np.dtype
    scale: float = 0.0
    zero_point: int = 0

    @property
    def quantized(self) -> bool:
        return self.dtype != np.float32 and self.scale != 0.0

    @classmethod
    def from_details(cls, d: dict) -> "TensorInfo":
        scale, zp = d.get("quantization", (0.0, 0)) or (0.0, 0)
        return cls(str(d.get("name", "")), int(d["index"]), tuple(int(v) for v in d["shape"]),
                   np.dtype(d["dtype"]), float(scale), int(zp))


class Runner:
    """A TFLite model ready to run: ``Runner(model_bytes, num_threads=2).run(x)``."""

    def __init__(self, model: bytes, *, name: str = "model", num_threads: int | None = None,
                 delegate: str | os.PathLike | None = None, delegate_options: dict | None = None,
                 backend: str | None = None, check: bool = True):
        if check:  # False when the caller has just run verify_tflite (read_model does)
            verify_tflite(model, name=name)
        if num_threads is not None:
            num_threads = check_threads(num_threads, "num_threads")
        self.name = name
        self.model = model
        self.num_threads = num_threads or default_threads()
        self.delegate = delegate_kind(delegate)
        self._options = {"delegate": delegate, "delegate_options": delegate_options}  # for copy()
        self._backend: Backend = load_backend(backend)
        self._lock = threading.Lock()
        self.fallback: str | None = None  # why the default XNNPACK delegate was left out, when it was
        t0 = time.perf_counter()
        if self.delegate == "gpu" and self._backend.name == "ai-edge-litert":
            self._engine: Any = _CompiledModelEngine(model, name, self.num_threads, delegate_options)
        else:
            try:
                self._engine = _InterpreterEngine(self._backend, model, name, self.num_threads, delegate,
                                                  delegate_options)
            except XnnpackRefused as exc:
                if delegate is not None:  # asked for by name: say so rather than run slower than asked
                    raise
                # XNNPACK is only the default: the builtin kernels run every op, slower, with the same answer.
                warnings.warn(f"{str(exc).rstrip('.')}; running on the builtin CPU kernels instead (slower)",
                              RuntimeWarning, stacklevel=2)
                self.fallback = str(exc)
                self.delegate = "none"
                self._options = {**self._options, "delegate": "none"}  # copies skip the refused attempt
                self._engine = _InterpreterEngine(self._backend, model, name, self.num_threads, "none",
                                                  delegate_options)
        self.init_ms = (time.perf_counter() - t0) * 1000.0
        self.inputs: list[TensorInfo] = self._engine.inputs
        self.outputs: list[TensorInfo] = self._engine.outputs
        if len(self.inputs) != 1:
            raise RuntimeModelError(f"{name}: the model has {len(self.inputs)} inputs; an image classifier has one")
        self.input = self.inputs[0]
        shape = self.input.shape
        if len(shape) != 4 or shape[-1] not in (1, 3) or min(shape[1:]) < 1:
            raise RuntimeModelError(f"{name}: input {self.input.name!r} has shape {list(shape)}; an image classifier "
                                    "takes [batch, height, width, 1 or 3]")
        if self.input.dtype.type not in INPUT_DTYPES:
            raise RuntimeModelError(f"{name}: input dtype {self.input.dtype} is not supported "
                                    "(float32, uint8 or int8)")
        if self.input.dtype != np.float32 and not self.input.quantized:
            raise RuntimeModelError(f"{name}: {self.input.dtype} input without quantization parameters")
        if not self.outputs or int(np.prod(self.outputs[0].shape[1:])) < 1:
            raise RuntimeModelError(f"{name}: the model has no usable output")
        self.output = self.outputs[0]
        self.height, self.width, self.channels = (int(v) for v in shape[1:])

    def copy(self, num_threads: int | None = None) -> "Runner":
        """A second interpreter on the same model, backend and delegate (interpreters are not shared by threads)."""
        return Runner(self.model, name=self.name, num_threads=num_threads or self.num_threads,
                      backend=self._backend.name, check=False, **self._options)

    # -- properties
    @property
    def backend(self) -> str:
        return self._backend.name

    @property
    def backend_version(self) -> str:
        return self._backend.version

    @property
    def num_classes(self) -> int:
        return int(np.prod(self.output.shape[1:]))

    def select_output(self, num_classes: int) -> None:
        """Use the output with ``num_classes`` values when the model has several."""
        matching = [o for o in self.outputs if int(np.prod(o.shape[1:])) == num_classes]
        if len(matching) == 1 and matching[0] is not self.output:
            self.output = matching[0]
            self._engine.set_output(self.outputs.index(matching[0]))

    # -- quantization
    def quantize(self, x: np.ndarray) -> np.ndarray:
        """Normalized floats to the input tensor's dtype (identity for float inputs), as TFLite quantizes."""
        info = self.input
        return quantize(x, info.dtype, info.scale if info.quantized else 0.0, info.zero_point)

    def dequantize(self, raw: np.ndarray) -> np.ndarray:
        """Output values as float32 (from the output tensor's scale and zero point when it is quantized)."""
        info = self.output
        return dequantize(raw, info.scale if info.quantized else 0.0, info.zero_point)

    def as_input(self, x: np.ndarray) -> np.ndarray:
        """``x`` checked (and batched) against the input tensor: (N, H, W, C) or (H, W, C).

        Floats for a quantized model are taken as normalized values and quantized.
        """
        x = np.asarray(x)
        if x.ndim == 3:
            x = x[None]
        want = (self.height, self.width, self.channels)
        if x.ndim != 4 or tuple(x.shape[1:]) != want or x.shape[0] < 1:
            raise ImageError(f"tensor of shape {tuple(x.shape)}: {self.name} takes (N, {want[0]}, {want[1]}, "
                             f"{want[2]}) {self.input.dtype}")
        if x.dtype != self.input.dtype:
            if x.dtype.kind == "f":
                x = self.quantize(x)
            else:
                raise ImageError(f"tensor of dtype {x.dtype}: {self.name} takes {self.input.dtype}"
                                 + (" (or normalized floats, which are quantized)" if self.input.quantized else ""))
        return np.ascontiguousarray(x)

    # -- running
    def run(self, x: np.ndarray) -> np.ndarray:
        """Raw output (N, ...) for an input already in the input tensor's dtype and (N, H, W, C) shape."""
        with self._lock:
            try:
                return self._engine.run(x)
            except (RuntimeError, ValueError) as exc:
                raise RuntimeModelError(f"{self.name}: inference failed: {first_line(exc)}") from None

    def close(self) -> None:
        self._engine = None

    def __repr__(self) -> str:
        return (f"Runner({self.name!r}, backend={self.backend}, threads={self.num_threads}, delegate={self.delegate}, "
                f"input={list(self.input.shape)} {self.input.dtype})")


class _InterpreterEngine:
    """The classic ``Interpreter`` (set_tensor / invoke / get_tensor)."""

    def __init__(self, backend: Backend, model: bytes, name: str, threads: int, delegate: Any,
                 options: dict | None):
        self._interp = backend.make_interpreter(model, num_threads=threads, delegate=delegate,
                                                delegate_options=options, where=name)
        self.inputs = [TensorInfo.from_details(d) for d in self._interp.get_input_details()]
        self.outputs = [TensorInfo.from_details(d) for d in self._interp.get_output_details()]
        self._in = self.inputs[0].index if self.inputs else 0
        self._out = self.outputs[0].index if self.outputs else 0
        self._shape = self.inputs[0].shape if self.inputs else ()
        self._set, self._invoke, self._get = self._interp.set_tensor, self._interp.invoke, self._interp.get_tensor

    def set_output(self, i: int) -> None:
        self._out = self.outputs[i].index

    def run(self, x: np.ndarray) -> np.ndarray:
        if x.shape != self._shape:
            self._interp.resize_tensor_input(self._in, list(x.shape), strict=False)
            self._interp.allocate_tensors()
            self._shape = x.shape
        self._set(self._in, x)
        self._invoke()
        return self._get(self._out)


_LITERT_DTYPES = {"float32": np.float32, "float16": np.float16, "int32": np.int32, "int8": np.int8,
                  "uint8": np.uint8, "int64": np.int64, "int16": np.int16, "bool": np.bool_}


class _CompiledModelEngine:
    """LiteRT's CompiledModel with the GPU accelerator (and the CPU for what the GPU does not run)."""

    def __init__(self, model: bytes, name: str, threads: int, options: dict | None):
        import importlib

        try:
            cm = importlib.import_module("ai_edge_litert.compiled_model")
            ha = importlib.import_module("ai_edge_litert.hardware_accelerator")
            opts = importlib.import_module("ai_edge_litert.options")
        except ImportError as exc:
            raise DelegateError(f"this ai-edge-litert has no CompiledModel API for the GPU ({exc}); "
                                "pip install -U ai-edge-litert") from None
        accel = ha.HardwareAccelerator.GPU | ha.HardwareAccelerator.CPU
        try:
            self._model = cm.CompiledModel.from_buffer(
                model, options=opts.Options(hardware_accelerators=accel,
                                            cpu_options=opts.CpuOptions(num_threads=threads)))
        except (RuntimeError, ValueError) as exc:
            raise DelegateError(f"{name}: LiteRT's GPU accelerator could not compile the model "
                                f"({first_line(exc)}); is there a GPU with OpenCL, Vulkan or Metal drivers?") from None
        # Quantization parameters come from the (cheap, unallocated) classic interpreter.
        interp = load_backend("ai-edge-litert").Interpreter(model_content=model)
        self.inputs = [TensorInfo.from_details(d) for d in interp.get_input_details()]
        self.outputs = [TensorInfo.from_details(d) for d in interp.get_output_details()]
        self._out_i = 0
        self._shape = self.inputs[0].shape if self.inputs else ()
        self._make_buffers()

    def _make_buffers(self) -> None:
        self._inb = self._model.create_input_buffers(0)
        self._outb = self._model.create_output_buffers(0)

    def set_output(self, i: int) -> None:
        self._out_i = i

    def run(self, x: np.ndarray) -> np.ndarray:
        if x.shape != self._shape:
            self._model.resize_input_tensor(0, list(x.shape), 0, strict=False)
            self._make_buffers()
            self._shape = x.shape
        self._inb[0].write(x)
        self._model.run_by_index(0, self._inb, self._outb)
        out = self.outputs[self._out_i]
        shape = (x.shape[0], *out.shape[1:])
        return self._outb[self._out_i].read(int(np.prod(shape)), out.dtype.type).reshape(shape)
