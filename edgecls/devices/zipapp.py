"""A device that runs the edgecls runtime zipapp with its own Python (this host, or one over ssh).

Subclasses say how a command reaches the device (:meth:`ZipappRunner.exec`)
and where staged files are (:meth:`ZipappRunner.path`). On the device:

    PYTHON edgecls-runtime.pyz eval  models/V.tflite --data test.npz --json    (accuracy, all cores)
    PYTHON edgecls-runtime.pyz bench models/V.tflite --threads N --runs R --warmup W --json

each in a fresh process, so peak memory is that of one model.
"""
from __future__ import annotations

import subprocess
from typing import Sequence

from edgecls.devices.base import (PROBE, PROBE_MODULES, RUNTIME_NAME, DeviceError, DeviceRunner, check_probe,
                                  failure_reason, last_json)

PYTHON_HINT = ("set python: in the device recipe to the device's Python 3.10+ (with numpy and ai-edge-litert or "
               "tflite-runtime)")


def model_name(variant: str) -> str:
    return f"models/{variant}.tflite"


class ZipappRunner(DeviceRunner):
    latency_source = "edgecls-runtime bench"
    remote_shell = False  # True: exit codes come from a shell (128 + N is death by signal N)
    default_python = "python3"

    @property
    def python(self) -> str:
        return self.device.python or self.default_python

    # -- what subclasses provide
    def exec(self, step: str, argv: Sequence[str], *, timeout: float | None = None,
             stdin=None) -> subprocess.CompletedProcess:
        raise NotImplementedError

    def path(self, name: str) -> str:
        raise NotImplementedError

    def connect(self) -> None:
        """Reach the device (ssh: log in once); local: nothing."""

    # -- the steps
    def open(self) -> dict:
        self.connect()
        modules = PROBE_MODULES[self.device.runtime]
        proc = self.exec("python", [self.python, "-c", PROBE, *modules], timeout=min(self.device.timeout, 300))
        info = last_json(proc.stdout, "EDGECLS-PROBE ")
        if info is None:
            text = f"{proc.stderr}\n{proc.stdout}".lower()
            if proc.returncode in (126, 127) or "not found" in text or "no such file" in text:
                raise DeviceError(self.device, "python", f"{self.python}: not found on the device; {PYTHON_HINT}")
            why = failure_reason(proc.returncode, proc.stderr, proc.stdout, remote_shell=self.remote_shell)
            raise DeviceError(self.device, "python", f"{self.python} did not run: {why}")
        self.info = check_probe(self.device, info, self.python)
        return self.info

    def _runtime_options(self, delegate: str | None) -> list[str]:
        out = []
        if self.device.runtime != "auto":
            out += ["--backend", self.device.runtime]
        if delegate and delegate != "xnnpack":
            out += ["--delegate", delegate]
        return out

    def _run_json(self, step: str, argv: list[str], *, passes: int = 1) -> dict:
        # ``passes``: how many times the command goes over the test split (clean + each corruption and severity)
        proc = self.exec(step, argv, timeout=self.device.timeout * passes)
        data = last_json(proc.stdout)
        if proc.returncode != 0 or data is None:
            reason = failure_reason(proc.returncode, proc.stderr, proc.stdout, remote_shell=self.remote_shell) \
                if proc.returncode else "the runtime printed no JSON result"
            raise self.fail(step, reason)
        return data

    def run_evaluation(self, step: str, variant: str, *, delegate: str | None, corruptions: tuple[str, ...] = (),
                       severities: tuple[int, ...] = ()) -> dict:
        argv = [self.python, self.path(RUNTIME_NAME), "eval", self.path(model_name(variant)), "--data",
                self.path("test.npz"), "--json", *self._runtime_options(delegate)]
        if self.device.eval_threads:
            argv += ["--threads", str(self.device.eval_threads)]
        if corruptions:
            argv += ["--corruptions", ",".join(corruptions), "--severities", ",".join(map(str, severities))]
        return self._run_json(step, argv, passes=1 + len(corruptions) * len(severities))

    def run_latency(self, step: str, variant: str, *, threads: int, runs: int, warmup: int,
                    delegate: str | None) -> dict:
        argv = [self.python, self.path(RUNTIME_NAME), "bench", self.path(model_name(variant)), "--threads",
                str(threads), "--runs", str(runs), "--warmup", str(warmup), "--json", *self._runtime_options(delegate)]
        return self._run_json(step, argv)  # the runtime's whole answer: DeviceRunner.latency checks it
