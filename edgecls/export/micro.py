"""TensorFlow Lite for Microcontrollers: op support, the measured tensor arena, TFLM's own answers, C sources.

No TensorFlow here (``edgecls info`` uses it on any .tflite). The op list comes
from the flatbuffer (:func:`edgecls.runtime.modelfile.read_model_summary`) and
is checked against :data:`edgecls.export.micro_ops.MICRO_RESOLVER`, generated
from tflite-micro's ``micro_mutable_op_resolver.h``. Everything else runs the
real TFLite Micro interpreter of the ``tflite-micro`` package
(``tflite_micro.runtime.Interpreter``, reference kernels):

- the arena is the smallest ``arena_size`` with which that interpreter
  allocates the model's tensors (bisection, to the byte), checked by running
  ``invoke()`` in an arena of exactly that size;
- the probabilities are that interpreter's outputs, the input quantized and
  the output dequantized by :mod:`edgecls.runtime.quantization`, the one
  definition the LiteRT runtime uses too.
"""
from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import textwrap
from typing import Any, Iterator, Sequence

import numpy as np

from edgecls.errors import EdgeclsError, first_line
from edgecls.export.micro_ops import MICRO_RESOLVER

INSTALL_HINT = "pip install 'edgecls[micro]'"
ARENA_LIMIT = 1 << 30  # bisection ceiling: no microcontroller has a GiB of RAM
ARENA_NOTE = ("measured by the tflite-micro Python interpreter (reference kernels, RecordingMicroAllocator) on a "
              "64-bit host: structs holding pointers are smaller on 32-bit MCUs, so for these kernels it is an upper "
              "bound there (by construction, not measured on a board); optimized kernels (CMSIS-NN, ESP-NN) "
              "request their own scratch buffers and may need more")


class MicroError(EdgeclsError):
    """A model TFLite Micro cannot run (an op without a kernel, an arena it cannot allocate), or no tflite-micro."""


class MicroRefused(MicroError):
    """TFLite Micro's interpreter refuses a model whose ops all have kernels, for a reason no arena size fixes
    (a float16 or dynamic-range (hybrid) model: tensor types its kernels do not take)."""


# ---------------------------------------------------------------------------------------------- ops

def micro_ops(model_bytes: bytes) -> dict:
    """{"ops": sorted op names of the model, "unsupported": those TFLite Micro has no builtin kernel for}.

    Custom ops count as unsupported: TFLM's resolver registers builtins by their
    schema code, and edgecls ships no custom kernels.
    """
    from edgecls.runtime.modelfile import read_model_summary

    ops = sorted(read_model_summary(model_bytes)["ops"])
    return {"ops": ops, "unsupported": [op for op in ops if op not in MICRO_RESOLVER]}


def check_micro(model_bytes: bytes, what: str) -> None:
    """MicroError (one line) naming the model's ops TFLite Micro has no kernel for; nothing when all have one."""
    missing = micro_ops(model_bytes)["unsupported"]
    if missing:
        raise MicroError(f"{what}: TFLite Micro has no kernel for op(s) {', '.join(missing)}; replace the layers "
                         "that make them (see `edgecls info` for the model's ops) or use target: tflite")


# ---------------------------------------------------------------------------------------------- interpreter

def _runtime() -> Any:
    try:
        from tflite_micro import runtime
    except ImportError:
        raise MicroError(f"tflite-micro is not installed (the TFLite Micro interpreter): {INSTALL_HINT}") from None
    return runtime


def tflm_version() -> str:
    """The installed tflite-micro package's version (its git commit is in the suffix)."""
    try:
        from tflite_micro.python.tflite_micro._version import __version__
        return str(__version__)
    except ImportError:
        from importlib.metadata import version
        return version("tflite-micro")


@contextlib.contextmanager
def _native_stderr(lines: list[str]) -> Iterator[None]:
    """Capture what TFLM's C++ writes to fd 2 (MicroPrintf) into ``lines`` instead of the terminal."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real fd 2 (some embedders): let it through
        yield
        return
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            lines.extend(ln.strip() for ln in sink.read().decode("utf-8", "replace").splitlines() if ln.strip())


def _interpreter(model_bytes: bytes, arena_bytes: int, log: list[str] | None = None) -> Any:
    """A TFLM interpreter with an arena of ``arena_bytes``; RuntimeError from TFLM when it cannot allocate."""
    runtime = _runtime()
    with _native_stderr(log if log is not None else []):
        return runtime.Interpreter.from_bytes(bytes(model_bytes), arena_size=int(arena_bytes))


def _fits(model_bytes: bytes, arena_bytes: int) -> bool:
    try:
        _interpreter(model_bytes, arena_bytes)
    except RuntimeError:
        return False
    return True


def _why(log: list[str]) -> str:
    """TFLM's own reason, from what it printed: the line naming a missing op, else the first line."""
    for line in log:
        if re.search(r"didn't find op|failed to get registration|not supported", line, re.I):
            return line
    return log[0] if log else "no message"


# What TFLM prints when the arena is too small (micro_allocator.cc, single_arena_buffer_allocator.cc); the generic
# "TFLM failed to allocate tensors" is the exception's text, not one of these lines.
_ARENA_SHORT = re.compile(r"Failed to (allocate|resize)|failed to allocate (input|output|ancillary)|bytes required|"
                          r"missing: \d+|is too small")


def _refusal(log: list[str]) -> str | None:
    """TFLM's reason, one line, when its log says it refused the model for something other than arena size."""
    if not log or any(_ARENA_SHORT.search(line) for line in log):
        return None
    node = next((ln for ln in log if re.match(r"Node \S+ \(number \d+\) failed", ln)), None)
    rest = [re.sub(r"^tensorflow/lite/micro/", "", ln) for ln in log if ln is not node]
    reason = "; ".join(rest)
    if node:
        reason = re.sub(r" with status \d+$", "", node) + (f" ({reason})" if reason else "")
    return reason


def measure_arena(model_bytes: bytes) -> dict:
    """The smallest tensor arena TFLite Micro runs the model in.

    {"arena_bytes", "tflm_version", "method", "arena_note", "arena_planned_bytes" (activations, planned by
    TFLM's memory planner), "arena_persistent_bytes" (structs and kernel data)}; the last two are the
    RecordingMicroAllocator's head and tail at that size (None if it printed no figures). Their sum can be
    less than ``arena_bytes``: kernels also take temporary space while they prepare.

    Bisection on ``arena_size`` (to the byte) between a size that fails and one
    that works, each step building the real interpreter (AllocateTensors is
    where TFLM plans the arena); the result is then checked by an ``invoke()``
    in an arena of exactly that size. Each failure while growing the arena is read from TFLM's log:
    one that is not about arena size (a float16 or hybrid model's tensor types) raises
    :class:`MicroRefused` with TFLM's reason at once.
    """
    check_micro(model_bytes, "model")
    model_bytes = bytes(model_bytes)
    hi = max(4096, 2 * len(model_bytes))
    while True:
        log: list[str] = []
        try:
            _interpreter(model_bytes, hi, log)
            break
        except RuntimeError as err:
            reason = _refusal(log)
            if reason is not None:
                raise MicroRefused(f"model: TFLite Micro cannot run it: {reason}") from None
            if hi >= ARENA_LIMIT:
                raise MicroError(f"model: TFLite Micro cannot allocate it even in a {ARENA_LIMIT >> 20} MiB arena "
                                 f"({err}: {_why(log)})") from None
        hi = min(2 * hi, ARENA_LIMIT)
    lo = 0  # an empty arena never fits
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _fits(model_bytes, mid):
            hi = mid
        else:
            lo = mid
    log = []
    try:
        interp = _interpreter(model_bytes, hi, log)
        with _native_stderr(log):
            for i, detail in enumerate(_details(interp, model_bytes, "input")):
                interp.set_input(np.zeros(detail["shape"], detail["dtype"]), i)
            interp.invoke()
    except RuntimeError as err:
        raise MicroError(f"model: TFLite Micro allocated a {hi}-byte arena but cannot invoke in it "
                         f"({err}: {_why(log)})") from None
    split = _recorded(interp)
    return {"arena_bytes": hi, "tflm_version": tflm_version(),
            # head: tensors planned by the memory planner (activations); tail: persistent structs and kernel
            # data, the part whose pointer-sized fields shrink on a 32-bit MCU.
            "arena_planned_bytes": split.get("head"), "arena_persistent_bytes": split.get("tail"),
            "method": "bisection on tflite_micro.runtime.Interpreter arena_size (smallest that allocates; "
                      "invoke() checked at that size)",
            "arena_note": ARENA_NOTE}


def _recorded(interp: Any) -> dict[str, int]:
    """The RecordingMicroAllocator's "Arena allocation total/head/tail N bytes" lines, as {"total": N, ...}."""
    log: list[str] = []
    with _native_stderr(log):
        interp.print_allocations()
    found = (re.search(r"Arena allocation (total|head|tail) (\d+) bytes", line) for line in log)
    return {m.group(1): int(m.group(2)) for m in found if m}


def _details(interp: Any, model_bytes: bytes, kind: str) -> list[dict]:
    """TFLM's details of the model's inputs or outputs (how many: the flatbuffer says)."""
    from edgecls.runtime.modelfile import read_model_summary

    count = len(read_model_summary(model_bytes)[kind + "s"])
    get = interp.get_input_details if kind == "input" else interp.get_output_details
    return [get(i) for i in range(count)]


def _quant(detail: dict) -> tuple[float, int]:
    """(scale, zero point) of a tensor's details; (0.0, 0) when not quantized (the runtime's convention)."""
    q = detail.get("quantization_parameters") or {}
    scales, zeros = np.asarray(q.get("scales", [])), np.asarray(q.get("zero_points", []))
    if np.dtype(detail["dtype"]).kind == "f" or not scales.size:
        return 0.0, 0
    return float(scales[0]), int(zeros[0]) if zeros.size else 0


def micro_probs(model_bytes: bytes, pixels: np.ndarray, arena_bytes: int) -> np.ndarray:
    """(N, classes) float32 probabilities of a raw-pixel model (edgecls export) from the TFLite Micro interpreter.

    ``pixels``: uint8 RGB (N, H, W, C) at the model's size. The input is made as
    the runtime's Classifier makes it for LiteRT (pixel table with mean 0, std 1:
    the model normalizes in its graph; quantized with the input tensor's scale
    and zero point), one image per invoke; the first output is dequantized as
    the runtime does and kept as probabilities.
    """
    from edgecls.runtime.quantization import dequantize, pixel_table, prepare_pixels

    pixels = np.asarray(pixels)
    interp = _interpreter(model_bytes, arena_bytes)
    inp, out = _details(interp, model_bytes, "input")[0], _details(interp, model_bytes, "output")[0]
    shape = [int(d) for d in inp["shape"]]
    if pixels.ndim != 4 or list(pixels.shape[1:]) != shape[1:]:
        raise MicroError(f"model: TFLite Micro input is {shape}; got images of shape {list(pixels.shape)}")
    in_scale, in_zero = _quant(inp)
    out_scale, out_zero = _quant(out)
    table = pixel_table((0.0,), (1.0,), inp["dtype"], in_scale, in_zero)
    rows = []
    log: list[str] = []
    with _native_stderr(log):
        try:
            for image in pixels:
                interp.set_input(prepare_pixels(table, image)[None], 0)
                interp.invoke()
                rows.append(dequantize(interp.get_output(0), out_scale, out_zero).reshape(-1))
        except RuntimeError as err:
            raise MicroError(f"model: TFLite Micro invoke failed ({err}: {_why(log)})") from None
    if not rows:
        return np.zeros((0, int(np.prod(out["shape"][1:]))), np.float32)
    return np.stack(rows).astype(np.float32, copy=False)


def micro_record(model_bytes: bytes, pixels: np.ndarray, litert_probs: np.ndarray, labels_int: np.ndarray, *,
                 what: str = "model") -> dict:
    """Check the ops, measure the arena, run ``pixels`` through TFLM; the record export.json keeps.

    {"arena_bytes", "arena_note", "arena_planned_bytes", "arena_persistent_bytes", "tflm_version", "ops",
    "resolver": "MicroMutableOpResolver<N>",
    "tflm_accuracy", "agreement" (top-1 agreement with ``litert_probs``), "max_abs_diff", "images"}.
    """
    from edgecls import metrics

    check_micro(model_bytes, what)
    arena = measure_arena(model_bytes)
    probs = micro_probs(model_bytes, pixels, arena["arena_bytes"])
    litert_probs = np.asarray(litert_probs)
    labels_int = np.asarray(labels_int)
    ops = micro_ops(model_bytes)["ops"]
    n = len(probs)
    return {
        "arena_bytes": arena["arena_bytes"],
        "arena_note": arena["arena_note"],
        "arena_planned_bytes": arena["arena_planned_bytes"],
        "arena_persistent_bytes": arena["arena_persistent_bytes"],
        "tflm_version": arena["tflm_version"],
        "ops": ops,
        "resolver": f"MicroMutableOpResolver<{len(ops)}>",
        "tflm_accuracy": metrics.accuracy(labels_int, probs.argmax(1)) if n else None,
        "agreement": float((probs.argmax(1) == litert_probs.argmax(1)).mean()) if n else None,
        "max_abs_diff": float(np.abs(probs - litert_probs).max()) if n else None,
        "images": n,
    }


def micro_summary(model_bytes: bytes) -> dict:
    """For ``edgecls info``: {"ops_supported", "unsupported", "runs", "reason", "arena_bytes", "arena_note"}.

    ``runs``: True when TFLM allocated and invoked the model, False when it cannot (``reason``: why, one
    line: ops without a kernel, or TFLM's refusal of a float16/hybrid model), None when not checked
    (tflite-micro not installed). ``arena_bytes`` is None when not measured (``arena_note`` says why).
    """
    ops = micro_ops(model_bytes)
    summary: dict[str, Any] = {"ops_supported": not ops["unsupported"], "unsupported": ops["unsupported"],
                               "runs": None, "reason": None, "arena_bytes": None}
    if ops["unsupported"]:
        summary["runs"] = False
        summary["reason"] = "TFLite Micro has no kernel for " + ", ".join(ops["unsupported"])
        summary["arena_note"] = "not measured: " + summary["reason"]
        return summary
    try:
        arena = measure_arena(model_bytes)
    except MicroRefused as err:  # every op has a kernel, yet TFLM will not run it: no arena would help
        summary["runs"] = False
        summary["reason"] = str(err).removeprefix("model: TFLite Micro cannot run it: ")
        summary["arena_note"] = f"not measured: {err}"
        return summary
    except MicroError as err:  # not installed, or no arena up to ARENA_LIMIT: say why instead of a figure
        summary["arena_note"] = f"not measured: {err}"
        if "not installed" not in str(err):
            summary["runs"], summary["reason"] = False, first_line(err)
        return summary
    summary["runs"] = True
    summary["arena_bytes"] = arena["arena_bytes"]
    summary["arena_note"] = f"{ARENA_NOTE}; tflite-micro {arena['tflm_version']}"
    return summary


# ---------------------------------------------------------------------------------------------- C sources

def c_identifier(name: str) -> str:
    """A C identifier from a variant name: lower case, [a-z0-9_], not starting with a digit."""
    ident = re.sub(r"[^0-9a-zA-Z_]+", "_", name).strip("_").lower() or "model"
    return f"m_{ident}" if ident[0].isdigit() else ident


def _c_string(text: str) -> str:
    """A C string literal; anything but printable ASCII as octal escapes (of its UTF-8 bytes)."""
    out = []
    for byte in text.encode("utf-8"):
        ch = chr(byte)
        if ch in '"\\':
            out.append("\\" + ch)
        elif 32 <= byte < 127 and ch != "?":  # '?' escaped: no trigraphs
            out.append(ch)
        else:
            out.append(f"\\{byte:03o}")
    return '"' + "".join(out) + '"'


def _c_float(x: float) -> str:
    return f"{float(np.float32(x))!r}f" if np.isfinite(x) else "0.0f"


def _quant_consts(ident: str, kind: str, tensor: dict) -> list[str]:
    quantized = tensor["scale"] is not None and tensor["dtype"] not in ("float32", "float16")
    scale = float(tensor["scale"]) if quantized else 0.0
    zero = int(tensor["zero_point"]) if quantized else 0
    note = f"{tensor['dtype']} {tensor['shape']}" + ("" if quantized else ", not quantized (scale 0)")
    return [f"// {kind}: {note}; real = (q - zero_point) * scale",
            f"constexpr float g_{ident}_{kind}_scale = {_c_float(scale)};",
            f"constexpr int g_{ident}_{kind}_zero_point = {zero};"]


def c_sources(model_bytes: bytes, name: str, *, arena_bytes: int, labels: Sequence[str]) -> tuple[str, str]:
    """(.cc text, .h text) for a TFLite Micro application: the model array, constants, the op resolver.

    The .h declares ``g_<id>_model`` (aligned ``const unsigned char[]``) and
    ``g_<id>_model_len``, the input/output scale and zero point, the arena size,
    the class count and ``g_<id>_labels``; where TFLM's headers are on the include
    path (``__has_include``) it also defines ``<id>_OpResolver``
    (``tflite::MicroMutableOpResolver<N>`` with N = the model's op count) and
    ``<id>_register_ops(resolver)`` adding exactly the model's ops. The .cc holds
    the data. ``<id>`` is :func:`c_identifier` of ``name``.
    """
    from edgecls.runtime.modelfile import read_model_summary

    check_micro(model_bytes, name)
    data = bytes(model_bytes)
    summary = read_model_summary(data)
    ops = sorted(summary["ops"])
    ident = c_identifier(name)
    guard = f"EDGECLS_{ident.upper()}_H_"
    inp, out = summary["inputs"][0], summary["outputs"][0]
    classes = int(np.prod(out["shape"][1:]))
    labels = [str(label) for label in labels] or [str(i) for i in range(classes)]
    if len(labels) != classes:
        raise MicroError(f"{name}: {len(labels)} labels for a model with {classes} outputs")
    adds = "\n".join(f"  if (r.{MICRO_RESOLVER[op]}() != kTfLiteOk) return kTfLiteError;  // {op}" for op in ops)
    header = "\n".join([
        f"// {name}: TFLite Micro model, generated by edgecls. Do not edit.",
        f"#ifndef {guard}",
        f"#define {guard}",
        "",
        "#include <cstddef>",
        "",
        f"// The .tflite flatbuffer ({len(data)} bytes), 16-byte aligned as TFLM wants it.",
        f"extern const unsigned char g_{ident}_model[];  // alignas(16) in the .cc",
        f"extern const unsigned int g_{ident}_model_len;",
        "",
        *textwrap.wrap(f"Tensor arena: {arena_bytes} bytes, {ARENA_NOTE}.", 100, initial_indent="// ",
                       subsequent_indent="// "),
        f"// Use: alignas(16) static unsigned char tensor_arena[g_{ident}_arena_bytes];",
        f"constexpr std::size_t g_{ident}_arena_bytes = {int(arena_bytes)};",
        "",
        "// The model takes raw RGB pixels 0..255 (normalization is in the graph).",
        *_quant_consts(ident, "input", inp),
        *_quant_consts(ident, "output", out),
        "",
        f"constexpr int g_{ident}_num_classes = {len(labels)};",
        f"extern const char* const g_{ident}_labels[{len(labels)}];",
        "",
        f"// The model's ops: {', '.join(ops)}.",
        f"constexpr int g_{ident}_op_count = {len(ops)};",
        '#if defined(__has_include) && __has_include("tensorflow/lite/micro/micro_mutable_op_resolver.h")',
        '#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"',
        f"using {ident}_OpResolver = tflite::MicroMutableOpResolver<{len(ops)}>;",
        f"inline TfLiteStatus {ident}_register_ops({ident}_OpResolver& r) {{",
        adds,
        "  return kTfLiteOk;",
        "}",
        "#endif",
        "",
        f"#endif  // {guard}",
        "",
    ])
    hexes = [f"0x{b:02x}" for b in data]
    body = ",\n".join("  " + ", ".join(hexes[i:i + 12]) for i in range(0, len(hexes), 12))
    source = "\n".join([
        f"// {name}: TFLite Micro model, generated by edgecls. Do not edit.",
        f'#include "{name}.h"',  # run.micro_sources writes <name>.cc and .h side by side
        "",
        f"alignas(16) const unsigned char g_{ident}_model[] = {{",
        body,
        "};",
        f"const unsigned int g_{ident}_model_len = {len(data)};",
        "",
        f"const char* const g_{ident}_labels[{len(labels)}] = {{",
        *(f"  {_c_string(label)}," for label in labels),
        "};",
        "",
    ])
    return source, header

