"""Fixtures of the runtime tests.

The same test files run in three environments: the main .venv (with
TensorFlow), and the two no-TensorFlow environments that ``make test`` builds
(.venv-rt-litert, .venv-rt-tflite). The main session trains and converts the
test models once (``fixtures.build_models``), packs the zipapp next to them, and
passes that folder to the other environments in ``EDGECLS_RT_MODELS``; there,
nothing needs TensorFlow.
"""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.runtime.fixtures import META_FILES, MEAN, STD, Models, build_models, load_models

ROOT = Path(__file__).resolve().parents[2]
INNER = os.environ.get("EDGECLS_RT_INNER") == "1"  # running inside a no-TensorFlow environment


@pytest.fixture(scope="session")
def rt(tmp_path_factory: pytest.TempPathFactory) -> Models:
    """The test models, images, expected answers and the zipapp (built once per session)."""
    given = os.environ.get("EDGECLS_RT_MODELS")
    if given:
        return load_models(given)
    folder = tmp_path_factory.mktemp("rt-models")
    models = build_models(folder)
    from edgecls.runtime.pack import build_zipapp

    build_zipapp(models.pyz)
    return models


@pytest.fixture(scope="session")
def has_meta(rt: Models) -> bool:
    return all((rt.folder / name).exists() for name in META_FILES)


@pytest.fixture
def meta(rt: Models, has_meta: bool) -> Models:
    """The models with metadata, where this environment can read metadata (it needs flatbuffers)."""
    if not has_meta:
        pytest.skip("edgecls.export.metadata / edgecls.runtime.metadata are not there: no metadata test models")
    if importlib.util.find_spec("flatbuffers") is None:
        pytest.skip("no flatbuffers package here (as with tflite-runtime alone): the zipapp, which carries it, "
                    "reads metadata in this environment; test_runtime_pack covers that")
    return rt


# Normalization of the test models when given in code (they have no metadata).
NORM = {"mean": (MEAN,), "std": (STD,)}


def run_runtime(*args: str, cwd: Path | None = None, env: dict | None = None,
                timeout: float = 120) -> subprocess.CompletedProcess:
    """``python -m edgecls.runtime ARGS`` in a fresh process of this environment's Python."""
    return subprocess.run([sys.executable, "-m", "edgecls.runtime", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd or ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})
