"""This host as a device: the runtime zipapp in a fresh process of a local Python per measurement.

``python:`` in the device recipe picks the Python (another venv, say one
without TensorFlow); by default it is the Python running edgecls. Files are
used where they are: nothing is copied.
"""
from __future__ import annotations

import os
import subprocess
import sys
from typing import Sequence

from edgecls.devices.base import RUNTIME_NAME, run_command
from edgecls.devices.zipapp import PYTHON_HINT, ZipappRunner, model_name


class LocalRunner(ZipappRunner):
    kind = "local"

    def __init__(self, device):
        super().__init__(device)
        self._files: dict[str, str] = {}

    @property
    def python(self) -> str:
        return os.path.expanduser(self.device.python) if self.device.python else sys.executable

    def exec(self, step: str, argv: Sequence[str], *, timeout: float | None = None,
             stdin=None) -> subprocess.CompletedProcess:
        return run_command(self.device, step, argv, timeout=timeout or self.device.timeout, stdin=stdin,
                           missing_hint=PYTHON_HINT if argv and argv[0] == self.python else "")

    def path(self, name: str) -> str:
        return self._files.get(name, name)

    def stage(self, models, data, runtime) -> None:
        for variant, file in models.items():
            self._files[model_name(variant)] = os.path.abspath(file)
        if data is not None:
            self._files["test.npz"] = os.path.abspath(data)
        if runtime is not None:
            self._files[RUNTIME_NAME] = os.path.abspath(runtime)
