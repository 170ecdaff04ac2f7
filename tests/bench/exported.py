"""One small exported run shared by the bench and device tests, made with the real CLI once per session.

The digits recipe with 3 epochs and two variants (float32, and int8 with uint8
input/output): ``edgecls train`` then ``edgecls export``. Both test folders'
conftests call :func:`exported_run`; it builds the run in the session's base
temporary folder the first time and returns the same folder after that.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.helpers import DIGITS_DATA, ROOT, run_cli

RECIPE = """\
name: digits
description: digits, 3 epochs, two export variants (bench tests)
seed: 0
""" + DIGITS_DATA + """model:
  name: small_cnn
train:
  epochs: 3
  batch_size: 32
  optimizer: {name: adam, learning_rate: 0.003}
export:
  - {name: float32, source: train, mode: float32}
  - {name: int8, source: train, mode: int8, input_type: uint8, output_type: uint8}
"""

RT_LITERT = ROOT / ".venv-rt-litert" / "bin" / "python"  # a device's Python: numpy + ai-edge-litert, no TensorFlow
RT_TFLITE = ROOT / ".venv-rt-tflite" / "bin" / "python"  # numpy 1.x + tflite-runtime 2.14, as on Raspberry Pi OS


def exported_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.getbasetemp() / "bench-digits"
    run = base / "run"
    if (run / "export" / "export.json").exists():
        return run
    base.mkdir(parents=True, exist_ok=True)
    (base / "digits.yaml").write_text(RECIPE)
    res = run_cli("train", str(base / "digits.yaml"), "--run-dir", str(run))
    assert res.returncode == 0, res.stderr[-3000:]
    res = run_cli("export", str(run))
    assert res.returncode == 0, res.stderr[-3000:]
    return run


def copy_run(run: Path, dest: Path) -> Path:
    """A copy of the run (recipe, split, export) a test may break without touching the shared one."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("recipe.yaml", "split.json"):
        shutil.copy2(run / name, dest / name)
    shutil.copytree(run / "export", dest / "export")
    return dest


def device_python() -> Path:
    if not RT_LITERT.exists():
        pytest.skip(f"{RT_LITERT} is missing: `make side-envs` builds it (the device's Python in these tests)")
    return RT_LITERT


def write_crashing_python(folder: Path, real: str | os.PathLike, when: str = "--threads 2") -> Path:
    """A 'python' that dies of SIGSEGV when its arguments contain ``bench`` and ``when``; else runs ``real``."""
    path = folder / "crashing-python"
    path.write_text(f"""#!/bin/sh
case " $* " in
  *" bench "*"{when}"*) kill -SEGV $$ ;;
esac
exec {real} "$@"
""")
    path.chmod(0o755)
    return path


__all__ = ["RECIPE", "RT_LITERT", "RT_TFLITE", "copy_run", "device_python", "exported_run",
           "write_crashing_python"]
