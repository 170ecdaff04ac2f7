"""The runtime's tests again, in environments with no TensorFlow (``make test`` builds them).

* ``.venv-rt-litert``: numpy 2, Pillow, ai-edge-litert (tests/runtime/requirements-litert.txt);
* ``.venv-rt-tflite``: numpy<2, Pillow, tflite-runtime 2.14, what Raspberry Pi OS users install
  (tests/runtime/requirements-tflite.txt).

Each runs every test of tests/runtime on the models this session exported,
so each classifies them with TensorFlow's interpreter's top-1, and runs the
zipapp. A missing environment fails (``make test`` creates it) unless
EDGECLS_SKIP_RUNTIME_ENVS=1.
"""
from __future__ import annotations

import importlib.util
import os
import subprocess

import pytest

from tests.runtime.conftest import INNER, ROOT

ENVS = {"litert": "ai-edge-litert", "tflite": "tflite-runtime"}


@pytest.mark.skipif(INNER, reason="runs the suite in the other environments, from the main one")
@pytest.mark.parametrize("env", sorted(ENVS))
def test_runtime_suite_in_an_environment_without_tensorflow(rt, env):
    venv = ROOT / f".venv-rt-{env}"
    python = venv / "bin" / "python"
    if not python.exists():
        if os.environ.get("EDGECLS_SKIP_RUNTIME_ENVS") == "1":
            pytest.skip(f"{venv.name} is missing and EDGECLS_SKIP_RUNTIME_ENVS=1")
        pytest.fail(f"{venv} is missing: `make test` creates it from tests/runtime/requirements-{env}.txt "
                    "(or set EDGECLS_SKIP_RUNTIME_ENVS=1 to skip these tests)")
    env_vars = {**os.environ, "PYTHONPATH": str(ROOT), "EDGECLS_RT_INNER": "1", "EDGECLS_RT_MODELS": str(rt.folder),
                "EDGECLS_RT_EXPECT_BACKEND": ENVS[env]}
    env_vars.pop("VIRTUAL_ENV", None)
    proc = subprocess.run([str(python), "-m", "pytest", "tests/runtime", "-q", "-p", "no:cacheprovider", "-m",
                           "not slow", "-rfEs"], cwd=ROOT, env=env_vars, capture_output=True, text=True, timeout=900)
    tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-40:])
    assert proc.returncode == 0, f"the runtime tests failed in {venv.name}:\n{tail}"
    assert " passed" in proc.stdout and " failed" not in proc.stdout, tail


@pytest.mark.skipif(not INNER, reason="checks the environment it runs in: only inside .venv-rt-*")
def test_this_environment_has_no_tensorflow_and_uses_its_interpreter(rt):
    from edgecls.runtime import Classifier
    from tests.runtime.conftest import NORM

    assert importlib.util.find_spec("tensorflow") is None
    assert Classifier.from_file(rt.float, **NORM).backend == os.environ["EDGECLS_RT_EXPECT_BACKEND"]
