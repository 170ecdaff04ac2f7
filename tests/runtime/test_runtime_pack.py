"""The runtime as one file (a zipapp) that runs with only numpy and an interpreter package."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile

from edgecls.runtime.pack import build_zipapp, packed_files
from tests.runtime.conftest import ROOT


def _run_pyz(pyz, *args, cwd):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([sys.executable, "-I", str(pyz), *args], capture_output=True, text=True, timeout=120,
                          cwd=cwd, env=env)


def test_contents_and_reproducible(tmp_path):
    a = build_zipapp(tmp_path / "a.pyz")
    b = build_zipapp(tmp_path / "b" / "edgecls-runtime.pyz")
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes().startswith(b"#!/usr/bin/env python3\n") and os.access(a, os.X_OK)
    names = set(zipfile.ZipFile(a).namelist())
    for required in ("__main__.py", "edgecls/__init__.py", "edgecls/errors.py", "edgecls/metrics.py",
                     "edgecls/runtime/cli.py", "edgecls/runtime/classifier.py", "edgecls/runtime/image.py"):
        assert required in names
    assert not any(n.startswith(("edgecls/data", "edgecls/train", "edgecls/_tf")) for n in names)
    assert set(packed_files()) == names
    assert a.stat().st_size < 2 * 2**20


def test_zipapp_classifies_and_benches_here(rt, tmp_path):
    """Runs from a folder outside the repository, without PYTHONPATH (in each runtime environment)."""
    proc = _run_pyz(rt.pyz, "classify", str(rt.int8), str(rt.images), "--json", "--top-k", "1",
                    "--mean", "127.5", "--std", "127.5", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    expected = rt.expected["models"]["int8.tflite"]
    assert len(rows) == len(expected)
    for row in rows:
        top1 = expected[os.path.basename(row["image"])]["top1"]
        assert row["predictions"][0]["index"] == top1, row
    bench = _run_pyz(rt.pyz, "bench", str(rt.float), "--threads", "2", "--runs", "10", "--warmup", "2", "--json",
                     cwd=tmp_path)
    assert bench.returncode == 0, bench.stderr
    result = json.loads(bench.stdout)
    assert result["runs"] == 10 and result["threads"] == 2 and result["p99_ms"] > 0


def test_zipapp_reads_metadata_even_without_flatbuffers_installed(rt, has_meta, tmp_path):
    if not has_meta:
        import pytest

        pytest.skip("no metadata test models")
    proc = _run_pyz(rt.pyz, "classify", str(rt.folder / "meta.tflite"), str(rt.images / "vstripes_0.jpg"),
                    "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["predictions"][0]["label"] == "vstripes"


def test_zipapp_errors_are_one_line(rt, tmp_path):
    proc = _run_pyz(rt.pyz, "classify", str(tmp_path / "none.tflite"), "x.jpg", cwd=tmp_path)
    assert proc.returncode == 1 and proc.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'none.tflite'}: model file not found"]


def test_pack_command(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "edgecls.runtime.pack", str(tmp_path / "x.pyz")],
                          capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0 and (tmp_path / "x.pyz").exists() and "KiB" in proc.stdout
