"""The export stage refuses a TFLite Micro variant whose int8 model has an op TFLite Micro lacks, through the
real CLI: one `error:` line naming the op, and the export as it was (no .tflite/.cc/.h for that variant).

A tiny ViT (vit_tiny, 8x8 digits, one block): its MLP's GELU converts to a GELU op, which has no TFLM kernel.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.helpers import DIGITS_DATA, run_cli

pytest.importorskip("tflite_micro", reason="tflite-micro is not installed (pip install 'edgecls[micro]')")

RECIPE = """\
name: digits-vit-micro
seed: 0
""" + DIGITS_DATA + """model:
  name: vit_tiny
  options: {width: 0.25, depth: 1, patch_size: 4, heads: 1, mlp_ratio: 1.0}
train:
  epochs: 1
  batch_size: 64
export:
  - {name: float32, source: train, mode: float32}
  - {name: int8_micro, source: train, mode: int8, target: micro}
"""


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_an_op_tflite_micro_lacks_stops_the_export_and_leaves_it_as_it_was(tmp_path):
    (tmp_path / "r.yaml").write_text(RECIPE)
    run = tmp_path / "run"
    res = run_cli("train", str(tmp_path / "r.yaml"), "--run-dir", str(run))
    assert res.returncode == 0, res.stderr[-3000:]
    res = run_cli("export", str(run), "--variant", "float32")
    assert res.returncode == 0, res.stderr[-3000:]
    out = run / "export"
    before = {p.name: _digest(p) for p in (out / "export.json", out / "float32.tflite")}

    res = run_cli("export", str(run))
    assert res.returncode != 0
    errors = [ln for ln in (res.stderr + res.stdout).splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, res.stderr[-3000:]
    assert "int8_micro" in errors[0] and "TFLite Micro has no kernel for op(s) GELU" in errors[0], errors[0]
    assert {p.name: _digest(p) for p in (out / "export.json", out / "float32.tflite")} == before
    assert not [p.name for p in out.iterdir() if p.name.startswith("int8_micro")]
