"""What every device runner does, and the errors they raise.

A runner opens a device (connects, checks its Python and interpreter
package), stages files on it (the runtime zipapp, the models, the test
split), runs the accuracy evaluation and the latency benchmark there, and
cleans up. Commands run through ``subprocess`` with argument lists, never a
local shell string.

Errors: :class:`DeviceError` stops the whole benchmark (the device cannot be
used: unreachable, wrong key, no Python, no interpreter package); its message
is one line naming the device and the step. :class:`StepFailed` fails one
row (a variant that crashes or cannot load) and the benchmark goes on.

A device's answers (the probe, an evaluation report, a latency result) are
data from another machine: :func:`check_answer` checks each against its table
below (keys, types, finite numbers, ranges) before any figure reaches a row,
so a wrong answer fails its row with the reason instead of passing as ``ok``.
"""
from __future__ import annotations

import json
import math
import os
import signal
import subprocess
from typing import Any, Sequence

from edgecls.errors import EdgeclsError, UsageError

from edgecls.devices.schema import MAX_THREADS, DeviceRecipe

RUNTIME_NAME = "edgecls-runtime.pyz"

# Runs on the device's Python before anything else: what is there? Plain syntax, so an old Python
# gets as far as printing its version. Argument: the interpreter modules to try.
PROBE = r"""
import json, os, platform, sys
info = {"python": platform.python_version(), "executable": sys.executable, "machine": platform.machine(),
        "system": platform.system(), "release": platform.release(), "node": platform.node(),
        "cpu_count": os.cpu_count()}
try:
    import numpy
    info["numpy"] = numpy.__version__
except Exception as exc:
    info["numpy"] = None
    info["numpy_error"] = "%s: %s" % (type(exc).__name__, exc)
backends = {}
for name in sys.argv[1:]:
    module, _, version_module = name.partition(":")
    try:
        mod = __import__(module, fromlist=["Interpreter"])
        mod.Interpreter
        top = __import__(version_module or module.split(".")[0])
        backends[module.split(".")[0]] = {"ok": True, "version": getattr(top, "__version__", "?")}
    except Exception as exc:
        text = str(exc).strip().splitlines()
        reason = "%s: %s" % (type(exc).__name__, text[0] if text else "")
        backends[module.split(".")[0]] = {"ok": False, "error": reason}
info["backends"] = backends
try:
    import importlib.util
    info["tensorflow_installed"] = importlib.util.find_spec("tensorflow") is not None
except Exception:
    info["tensorflow_installed"] = False
print("EDGECLS-PROBE " + json.dumps(info))
"""

# runtime (device recipe) -> the module the probe imports; tensorflow is only checked when asked for (slow import).
PROBE_MODULES = {"ai-edge-litert": ["ai_edge_litert.interpreter"], "tflite-runtime": ["tflite_runtime.interpreter"],
                 "tensorflow": ["tensorflow.lite:tensorflow"]}
PROBE_MODULES["auto"] = PROBE_MODULES["ai-edge-litert"] + PROBE_MODULES["tflite-runtime"]
_PACKAGE = {"ai_edge_litert": "ai-edge-litert", "tflite_runtime": "tflite-runtime", "tensorflow": "tensorflow"}


class DeviceError(EdgeclsError):
    """The device cannot be used; ``str()`` is one line: device, how it is reached, the step, the reason."""

    def __init__(self, device: DeviceRecipe, step: str, reason: str):
        self.device, self.step, self.reason = device, step, reason
        super().__init__(f"device '{device.name}' ({device.where}), step '{step}': {reason}")


class StepFailed(DeviceError):
    """One measurement failed (the model crashed or would not load); its row says so, the others go on."""


def setup_hint(device: DeviceRecipe) -> str:
    if device.setup:
        return "; the device recipe's setup steps: " + " && ".join(device.setup)
    return ""


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def failure_reason(returncode: int, stderr: str, stdout: str = "", *, remote_shell: bool = False) -> str:
    """One line for a failed command: its own 'error:' line, else a crash signal, else its last words."""
    lines = [ln.strip() for ln in (stderr or "").splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error:")]
    if errors:
        return errors[-1][len("error:"):].strip()
    crash = None
    if returncode < 0:
        crash = -returncode
    elif remote_shell and 128 < returncode < 160:  # a shell reports death by signal N as 128 + N
        crash = returncode - 128
    tail = next((ln for ln in reversed(lines) if not ln.startswith(("INFO:", "WARNING: All log messages"))), "")
    if not tail:
        out = [ln.strip() for ln in (stdout or "").splitlines() if ln.strip()]
        tail = out[-1] if out else ""
    if crash is not None:
        return f"crashed ({signal_name(crash)})" + (f": {tail[:300]}" if tail else "")
    return f"exit code {returncode}" + (f": {tail[:300]}" if tail else "")


def last_json(stdout: str, prefix: str = "") -> dict | None:
    """The last line of ``stdout`` that is a JSON object (after ``prefix``), or None."""
    for line in reversed((stdout or "").splitlines()):
        line = line.strip()
        if prefix:
            if not line.startswith(prefix):
                continue
            line = line[len(prefix):].strip()
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict):
                return value
    return None


def run_command(device: DeviceRecipe, step: str, argv: Sequence[str], *, timeout: float, input: bytes | None = None,
                stdin: Any = None, env: dict | None = None, cwd: str | None = None,
                missing_hint: str = "") -> subprocess.CompletedProcess:
    """``subprocess.run(argv)`` with text output; a missing program or a timeout is a DeviceError for ``step``."""
    try:
        proc = subprocess.run(list(argv), input=input, stdin=stdin, capture_output=True, timeout=timeout, env=env,
                              cwd=cwd)
    except FileNotFoundError:
        raise DeviceError(device, step, f"{argv[0]}: command not found{'; ' + missing_hint if missing_hint else ''}") \
            from None
    except PermissionError:
        raise DeviceError(device, step, f"{argv[0]}: not executable") from None
    except subprocess.TimeoutExpired:
        raise StepFailed(device, step, f"timed out after {timeout:g} s (the device recipe's timeout)") from None
    return subprocess.CompletedProcess(proc.args, proc.returncode, _text(proc.stdout), _text(proc.stderr))


def _text(data: bytes | str | None) -> str:
    if data is None:
        return ""
    return data if isinstance(data, str) else data.decode("utf-8", "replace")


# What a device's answers may hold: key -> (kind, lowest, highest), bounds None where open. A key may be
# absent or null unless the answer's REQUIRED names it; whatever is there must have its kind and range.
NUMBER, INTEGER, TEXT, FLAG = "a number", "an integer", "a string", "true or false"
MAPPING, MATRIX = "a JSON object", "a square matrix of counts"
_MS = (NUMBER, 0, None)
LATENCY_ANSWER = {
    "p50_ms": _MS, "p90_ms": _MS, "p99_ms": _MS, "mean_ms": _MS, "min_ms": _MS, "max_ms": _MS, "std_ms": _MS,
    "init_ms": _MS, "peak_rss_mb": _MS, "backend": (TEXT, None, None), "backend_version": (TEXT, None, None),
    "threads": (INTEGER, 1, MAX_THREADS), "delegate": (TEXT, None, None), "runs": (INTEGER, 1, None),
    "warmup": (INTEGER, 0, None), "input_dtype": (TEXT, None, None),
    "first_inference_ms": _MS, "warmup_avg_ms": _MS,  # benchmark_model's (adb)
}
TIMINGS = ("p50_ms", "mean_ms")  # a latency answer needs one of these (benchmark_model gives no p50)
_SHARE = (NUMBER, 0, 1)
EVALUATION_ANSWER = {
    "accuracy": _SHARE, "top5_accuracy": _SHARE, "macro_precision": _SHARE, "macro_recall": _SHARE,
    "macro_f1": _SHARE, "ece": _SHARE, "num_examples": (INTEGER, 1, None), "per_class": (MAPPING, None, None),
    "confusion_matrix": (MATRIX, None, None), "backend": (TEXT, None, None), "backend_version": (TEXT, None, None),
    "delegate": (TEXT, None, None), "workers": (INTEGER, 1, None), "batch": (INTEGER, 1, None),
    "seconds": (NUMBER, 0, None), "images_per_second": (NUMBER, 0, None), "cpu_count": (INTEGER, 1, None),
}
EVALUATION_ANSWER.update({
    "mean_average_precision": _SHARE, "average_precision": (MAPPING, None, None), "reliability": (MAPPING, None, None),
    "pr_curve": (MAPPING, None, None), "slices": (MAPPING, None, None), "corruptions": (MAPPING, None, None),
    "mean_corruption_accuracy": _SHARE, "corruption_drop": (NUMBER, -1, 1), "worst_slice_gap": (NUMBER, -1, 1),
})
EVALUATION_REQUIRED = ("accuracy", "macro_f1", "ece", "num_examples")  # what a row and the log line print

# The nested figures of an evaluation (plots and tables read them), checked to the leaf: a dict maps keys to
# specs ("*": any key), ["list", spec] is a JSON array of spec, a tuple is a leaf as in the tables above,
# ("null", leaf) a leaf that may be null (an empty reliability bin has no accuracy).
_CURVE = ["list", _SHARE]
_GAP = (NUMBER, -1, 1)
EVALUATION_PARTS = {
    "average_precision": {"macro": _SHARE, "per_class": {"*": _SHARE}},
    "reliability": {"bins": (INTEGER, 1, 1000), "count": ["list", (INTEGER, 0, None)],
                    "accuracy": ["list", ("null", _SHARE)], "confidence": ["list", ("null", _SHARE)]},
    "pr_curve": {"recall": _CURVE, "macro": _CURVE, "precision": {"*": _CURVE}},
    "slices": {"attributes": {"*": {"*": {"n": (INTEGER, 1, None), "accuracy": _SHARE, "macro_f1": _SHARE}}},
               "worst": {"attribute": (TEXT, None, None), "value": (TEXT, None, None), "n": (INTEGER, 1, None),
                         "accuracy": _SHARE, "macro_f1": _SHARE, "gap": _GAP}},
    "corruptions": {"severities": ["list", (INTEGER, 1, 5)], "accuracy": {"*": {"*": _SHARE}},
                    "mean_accuracy": _SHARE, "drop": _GAP},
}


def _check_part(value: Any, spec: Any, where: str) -> str | None:
    """Where and why ``value`` does not fit ``spec`` (see EVALUATION_PARTS), or None when it does."""
    if isinstance(spec, dict):
        if not isinstance(value, dict):
            return f"{where}={_short(value)} (expected {MAPPING})"
        for key, item in value.items():
            sub = spec.get(key, spec.get("*"))
            if sub is None:
                return f"{where}.{key} (not a key it may have: {', '.join(k for k in spec if k != '*')})"
            if item is not None:  # null: the figure is absent (no worst slice when every slice is small)
                why = _check_part(item, sub, f"{where}.{key}")
                if why:
                    return why
        return None
    if isinstance(spec, list):
        if not isinstance(value, list):
            return f"{where}={_short(value)} (expected a JSON array)"
        return next((w for i, item in enumerate(value) if (w := _check_part(item, spec[1], f"{where}[{i}]"))), None)
    if spec[0] == "null":
        return None if value is None else _check_part(value, spec[1], where)
    why = _wrong(value, *spec)
    return f"{where}={_short(value)} ({why})" if why else None


def _check_lengths(answer: dict) -> str | None:
    """The arrays that go together are equally long (a plot zips them)."""
    rel = answer.get("reliability")
    if isinstance(rel, dict) and any(len(rel.get(k) or []) != rel.get("bins") for k in ("count", "accuracy",
                                                                                       "confidence")):
        return f"reliability has arrays whose length is not bins={rel.get('bins')}"
    curve = answer.get("pr_curve")
    if isinstance(curve, dict):
        n = len(curve.get("recall") or [])
        if len(curve.get("macro") or []) != n or any(len(c) != n for c in (curve.get("precision") or {}).values()):
            return f"pr_curve has precision arrays whose length is not that of recall ({n})"
    return None
PROBE_ANSWER = {
    "python": (TEXT, None, None), "executable": (TEXT, None, None), "machine": (TEXT, None, None),
    "system": (TEXT, None, None), "release": (TEXT, None, None), "node": (TEXT, None, None),
    "cpu_count": (INTEGER, 1, None), "numpy": (TEXT, None, None), "numpy_error": (TEXT, None, None),
    "backends": (MAPPING, None, None), "tensorflow_installed": (FLAG, None, None),
}
PROBE_REQUIRED = ("python", "backends")


def _short(value: Any, limit: int = 40) -> str:
    """A value as the device wrote it (JSON), cut: a message is one line, and an answer may be huge."""
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _keys(answer: dict) -> str:
    names = sorted(str(k) for k in answer)
    return ", ".join(names[:12]) + (f", ... ({len(names)} in all)" if len(names) > 12 else "") if names else "none"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _wrong(value: Any, kind: str, lo: float | None, hi: float | None) -> str | None:
    """Why ``value`` is not ``kind`` within lo..hi, or None when it is."""
    if kind == TEXT:
        return None if isinstance(value, str) else f"expected {kind}"
    if kind == FLAG:
        return None if isinstance(value, bool) else f"expected {kind}"
    if kind == MAPPING:
        return None if isinstance(value, dict) else f"expected {kind}"
    if kind == MATRIX:
        ok = isinstance(value, list) and value and all(
            isinstance(r, list) and len(r) == len(value) and all(isinstance(c, int) and not isinstance(c, bool)
                                                                 and c >= 0 for c in r) for r in value)
        return None if ok else f"expected {kind}"
    if not _is_number(value) or (kind == INTEGER and not isinstance(value, int)):
        return f"expected {kind}"
    try:
        finite = math.isfinite(value)  # JSON's NaN and Infinity; an int of 400 digits overflows a float
    except OverflowError:
        finite = False
    if not finite:
        return "expected a finite number"
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        return f"expected {kind} >= {lo}" if hi is None else f"expected {kind} in {lo}..{hi}"
    return None


def check_answer(device: DeviceRecipe, step: str, answer: Any, table: dict, required: Sequence[str] = (), *,
                 error: type[DeviceError] = StepFailed) -> dict:
    """``answer`` if it fits ``table`` (keys, kinds, ranges) and has every ``required`` key, else ``error``
    whose reason names the key and what was wrong: "the device's answer has accuracy="high" (expected ...)"."""
    if not isinstance(answer, dict):
        raise error(device, step, f"the device's answer is not a JSON object ({_short(answer)})")
    missing = [k for k in required if answer.get(k) is None]
    if missing:
        raise error(device, step, f"the device's answer has no {', '.join(missing)} (keys: {_keys(answer)})")
    for key, (kind, lo, hi) in table.items():
        value = answer.get(key)
        why = None if value is None else _wrong(value, kind, lo, hi)
        if why:
            raise error(device, step, f"the device's answer has {key}={_short(value)} ({why})")
    return answer


def check_latency(device: DeviceRecipe, step: str, answer: Any, threads: int) -> dict:
    """A latency answer with timings, for the thread count asked for (else StepFailed)."""
    check_answer(device, step, answer, LATENCY_ANSWER)
    if all(answer.get(k) is None for k in TIMINGS):
        raise StepFailed(device, step, f"the device's answer has no timings (keys: {_keys(answer)})")
    if answer.get("threads") is not None and answer["threads"] != threads:
        raise StepFailed(device, step, f"the device's answer is for threads={answer['threads']}, not the "
                         f"{threads} asked for")
    return answer


def check_evaluation(device: DeviceRecipe, step: str, answer: Any) -> dict:
    """An evaluation report with its metrics, whose confusion matrix counts its images (else StepFailed)."""
    check_answer(device, step, answer, EVALUATION_ANSWER, EVALUATION_REQUIRED)
    for key, spec in EVALUATION_PARTS.items():
        why = _check_part(answer[key], spec, key) if answer.get(key) is not None else None
        if why:
            raise StepFailed(device, step, f"the device's answer has {why}")
    why = _check_lengths(answer)
    if why:
        raise StepFailed(device, step, f"the device's answer's {why}")
    matrix = answer.get("confusion_matrix")
    if matrix is not None and sum(map(sum, matrix)) != answer["num_examples"]:
        raise StepFailed(device, step, f"the device's answer counts {sum(map(sum, matrix))} images in "
                         f"confusion_matrix but num_examples={answer['num_examples']}")
    return answer


def check_threads(threads: Any) -> int:
    """A thread count to send to a device: an integer in 1..MAX_THREADS (an interpreter asked for 100000
    threads crashes), else a UsageError."""
    if not isinstance(threads, int) or isinstance(threads, bool) or not 1 <= threads <= MAX_THREADS:
        raise UsageError(f"threads: expected an integer from 1 to {MAX_THREADS}, got {_short(threads)}")
    return threads


def check_probe(device: DeviceRecipe, info: dict, python: str) -> dict:
    """The probe's answer as a device summary, or a DeviceError saying what is missing and how to add it."""
    check_answer(device, "python", info, PROBE_ANSWER, PROBE_REQUIRED, error=DeviceError)
    for name, state in info["backends"].items():
        if not isinstance(state, dict) or not isinstance(state.get("ok"), bool):
            raise DeviceError(device, "python", f"the device's answer has backends.{name}={_short(state)} "
                              "(expected a JSON object with ok: true or false)")
    version = tuple(int(p) for p in info["python"].split(".")[:2] if p.isdigit())
    if version < (3, 10):
        raise DeviceError(device, "python", f"{python} is Python {info.get('python')}; the runtime needs 3.10 or "
                          f"newer: set python: in the device recipe to a newer one{setup_hint(device)}")
    if not info.get("numpy"):
        raise DeviceError(device, "python packages", f"{python} cannot import numpy ({info.get('numpy_error')}): "
                          f"install it for that Python (pip install numpy){setup_hint(device)}")
    backends = info["backends"]
    usable = {_PACKAGE.get(k, k): v.get("version") for k, v in backends.items() if v.get("ok")}
    if not usable:
        if device.runtime == "auto" and info.get("tensorflow_installed"):
            usable = {"tensorflow": "?"}  # the runtime falls back to tf.lite (slow to import, but it works)
        else:
            tried = "; ".join(f"{_PACKAGE.get(k, k)}: {v.get('error')}" for k, v in backends.items())
            want = device.runtime if device.runtime != "auto" else "ai-edge-litert or tflite-runtime"
            pip = "ai-edge-litert" if device.runtime == "auto" else device.runtime
            raise DeviceError(device, "interpreter package", f"{python} has no usable TFLite interpreter package "
                              f"({tried}): install {want} for it (pip install {pip}){setup_hint(device)}")
    chosen = next(iter(usable))
    return {"python": info.get("python"), "python_path": info.get("executable"), "numpy": info.get("numpy"),
            "backend": chosen, "backend_version": usable[chosen], "backends": usable,
            "machine": info.get("machine"), "system": f"{info.get('system')} {info.get('release')}",
            "hostname": info.get("node"), "cpu_count": info.get("cpu_count")}


class DeviceRunner:
    """A device: ``with make_runner(device) as r: r.open(); r.stage(...); r.evaluate(...); r.latency(...)``.

    Subclasses measure (:meth:`run_evaluation`, :meth:`run_latency`); :meth:`evaluate` and
    :meth:`latency` are the same for all: they refuse a thread count no device should get, and check
    the device's answer before it reaches a row.
    """

    kind = "base"
    evaluates_on_device = True  # False: accuracy is computed on this host (adb: no Python on a phone)
    latency_source = "?"  # what timed a latency answer, for the report

    def __init__(self, device: DeviceRecipe):
        self.device = device
        self.info: dict = {}

    def open(self) -> dict:
        raise NotImplementedError

    def stage(self, models: dict[str, os.PathLike], data: os.PathLike | None, runtime: os.PathLike | None) -> None:
        """Put the models (name -> local file), the test split and the runtime zipapp on the device."""
        raise NotImplementedError

    def evaluate(self, variant: str, *, delegate: str | None = None, corruptions: Sequence[str] = (),
                 severities: Sequence[int] = ()) -> dict:
        """The device's evaluation report of ``variant`` (checked: :data:`EVALUATION_ANSWER`), with accuracy
        under each of ``corruptions`` at each of ``severities`` when asked (the runtime corrupts on the device)."""
        step = f"accuracy {variant}"
        answer = check_evaluation(self.device, step, self.run_evaluation(
            step, variant, delegate=delegate, corruptions=tuple(corruptions), severities=tuple(severities)))
        if corruptions and not isinstance(answer.get("corruptions"), dict):
            raise self.fail(step, "the device's answer has no corruptions (its runtime is older than this edgecls)")
        return answer

    def latency(self, variant: str, *, threads: int, runs: int, warmup: int, delegate: str | None = None) -> dict:
        """The device's timing of ``variant`` (checked: :data:`LATENCY_ANSWER`, with timings)."""
        check_threads(threads)
        step = f"latency {variant} threads={threads}"
        answer = self.run_latency(step, variant, threads=threads, runs=runs, warmup=warmup, delegate=delegate)
        return {**check_latency(self.device, step, answer, threads), "source": self.latency_source}

    def run_evaluation(self, step: str, variant: str, *, delegate: str | None, corruptions: tuple[str, ...] = (),
                       severities: tuple[int, ...] = ()) -> dict:
        raise NotImplementedError

    def run_latency(self, step: str, variant: str, *, threads: int, runs: int, warmup: int,
                    delegate: str | None) -> dict:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self) -> "DeviceRunner":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def fail(self, step: str, reason: str) -> StepFailed:
        return StepFailed(self.device, step, reason)
