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
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
from typing import Any, Sequence

from edgecls.errors import EdgeclsError

from edgecls.devices.schema import DeviceRecipe

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


def check_probe(device: DeviceRecipe, info: dict, python: str) -> dict:
    """The probe's answer as a device summary, or a DeviceError saying what is missing and how to add it."""
    version = tuple(int(p) for p in info.get("python", "0.0").split(".")[:2] if p.isdigit())
    if version < (3, 10):
        raise DeviceError(device, "python", f"{python} is Python {info.get('python')}; the runtime needs 3.10 or "
                          f"newer: set python: in the device recipe to a newer one{setup_hint(device)}")
    if not info.get("numpy"):
        raise DeviceError(device, "python packages", f"{python} cannot import numpy ({info.get('numpy_error')}): "
                          f"install it for that Python (pip install numpy){setup_hint(device)}")
    backends = info.get("backends", {})
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


class Runner:
    """A device: ``with make_runner(device) as r: r.open(); r.stage(...); r.evaluate(...); r.latency(...)``."""

    kind = "base"
    evaluates_on_device = True  # False: accuracy is computed on this host (adb: no Python on a phone)

    def __init__(self, device: DeviceRecipe):
        self.device = device
        self.info: dict = {}

    def open(self) -> dict:
        raise NotImplementedError

    def stage(self, models: dict[str, os.PathLike], data: os.PathLike | None, runtime: os.PathLike | None) -> None:
        """Put the models (name -> local file), the test split and the runtime zipapp on the device."""
        raise NotImplementedError

    def evaluate(self, variant: str, *, delegate: str | None = None) -> dict:
        raise NotImplementedError

    def latency(self, variant: str, *, threads: int, runs: int, warmup: int, delegate: str | None = None) -> dict:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self) -> "Runner":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def fail(self, step: str, reason: str) -> StepFailed:
        return StepFailed(self.device, step, reason)
