"""Backends in order of preference, a clear error when none is there, threads and delegates."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from edgecls.runtime import Classifier, backends
from edgecls.runtime.errors import BackendMissing, DelegateError, UsageError
from edgecls.runtime.runner import Runner
from tests.runtime.conftest import NORM


def test_first_installed_backend_is_used(rt):
    installed = backends.installed_backends()
    assert installed, "the runtime tests need one interpreter package"
    assert installed == [b for b in backends.BACKENDS if b in installed]  # listed in the order of preference
    assert backends.load_backend().name == installed[0]
    assert Classifier.from_file(rt.float, **NORM).backend == installed[0]


def test_forcing_a_backend(rt):
    name = backends.installed_backends()[0]
    alias = {"ai-edge-litert": "litert", "tflite-runtime": "tflite", "tensorflow": "tf"}[name]
    assert Classifier.from_file(rt.float, backend=alias, **NORM).backend == name
    with pytest.raises(UsageError, match="unknown backend 'onnx'"):
        backends.load_backend("onnx")


def test_a_forced_backend_that_is_not_installed(monkeypatch):
    missing = [b for b in ("tflite-runtime", "ai-edge-litert") if b not in backends.installed_backends()]
    if not missing:
        pytest.skip("both interpreter packages are installed here")
    with pytest.raises(BackendMissing, match=rf"backend {missing[0]} is unusable \(not installed\): pip install"):
        backends.load_backend(missing[0])


def test_no_backend_lists_what_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(backends, "_cache", {})
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in ("ai_edge_litert", "tflite_runtime", "tensorflow")
                        else real(name, *a))
    with pytest.raises(BackendMissing) as info:
        backends.load_backend()
    msg = str(info.value)
    assert "\n" not in msg
    for hint in ("pip install ai-edge-litert", "pip install tflite-runtime", "pip install tensorflow"):
        assert hint in msg


def test_a_backend_that_fails_to_import_is_skipped(monkeypatch):
    monkeypatch.setattr(backends, "_cache", {})
    first = backends.installed_backends()[0]

    def broken() -> backends.Backend:
        raise ImportError("numpy.core.multiarray failed to import")

    monkeypatch.setitem(backends._IMPORTERS, first, broken)
    with pytest.raises(BackendMissing, match="installed but fails to import .numpy.core.multiarray"):
        backends.load_backend(first)


def test_threads(rt):
    r = Runner(rt.float.read_bytes(), num_threads=2)
    assert r.num_threads == 2
    assert Runner(rt.float.read_bytes()).num_threads >= 1
    assert Runner(rt.float.read_bytes(), num_threads=256).num_threads == 256
    # Refused before the interpreter sees them: 100000 threads segfaulted it.
    for bad in (0, -1, 257, 100000, 2.0, True, "2"):
        with pytest.raises(UsageError, match=r"num_threads must be a whole number from 1 to 256"):
            Runner(rt.float.read_bytes(), num_threads=bad)
    with pytest.raises(UsageError, match=r"num_threads must be a whole number from 1 to 256, got 100000"):
        Classifier.from_file(rt.float, num_threads=100000, **NORM)


def test_reference_kernels_without_xnnpack_give_the_same_answer(rt):
    fast = Classifier.from_file(rt.float, **NORM)
    ref = Classifier.from_file(rt.float, delegate="none", **NORM)
    assert ref.runner.delegate == "none"
    x = fast.preprocess(rt.images / "hstripes_0.jpg")
    np.testing.assert_allclose(fast.predict(x), ref.predict(x), atol=1e-5)


def test_external_delegate_that_cannot_load(rt, tmp_path):
    with pytest.raises(DelegateError, match=r"cannot load the delegate library '.*libnope\.so'"):
        Classifier.from_file(rt.float, delegate=str(tmp_path / "libnope.so"), **NORM)
    fake = tmp_path / "libfake.so"
    fake.write_bytes(b"not a shared library")
    with pytest.raises(DelegateError, match="libfake.so"):
        Classifier.from_file(rt.float, delegate=fake, **NORM)


def test_edgetpu_without_a_coral(rt):
    with pytest.raises(DelegateError, match=r"libedgetpu.*install the Edge TPU runtime"):
        Classifier.from_file(rt.int8, delegate="edgetpu", **NORM)


def test_gpu_where_there_is_none_is_one_clear_error(rt):
    # No GPU on this machine: LiteRT's GPU accelerator (ai-edge-litert) or the GPU delegate library
    # (other backends) cannot start; either way one line, a DelegateError.
    with pytest.raises(DelegateError) as info:
        Classifier.from_file(rt.float, delegate="gpu", **NORM)
    assert "\n" not in str(info.value) and "GPU" in str(info.value)


def test_delegate_names():
    assert backends.delegate_kind(None) == "xnnpack"
    assert backends.delegate_kind("XNNPACK") == "xnnpack"
    assert backends.delegate_kind("none") == "none"
    assert backends.delegate_kind("/usr/lib/libedgetpu.so.1") == "library"
    with pytest.raises(UsageError):
        backends.delegate_kind("")
