"""Pruning and QAT fine-tune under MirroredStrategy over two logical CPU devices, like training."""
from __future__ import annotations

import json

from tests.helpers import RECIPES, run_cli


def test_prune_and_qat_under_mirrored(tmp_path):
    text = (RECIPES / "digits.yaml").read_text()
    text = text.replace("epochs: 40", "epochs: 3").replace("epochs: 6\n    options", "epochs: 1\n    options")
    text = text.replace("epochs: 3\n    options", "epochs: 1\n    options")
    (tmp_path / "r.yaml").write_text(text)
    run = tmp_path / "run"
    mirrored = ["--set", "train.strategy=mirrored", "--set", "train.cpu_replicas=2"]
    res = run_cli("train", str(tmp_path / "r.yaml"), "--run-dir", str(run), *mirrored)
    assert res.returncode == 0, res.stderr[-3000:]
    res = run_cli("compress", str(run))
    assert res.returncode == 0, res.stderr[-3000:]
    assert "strategy MirroredStrategy: 2 replica(s); global batch 32, 16 per replica" in res.stderr
    m = json.loads((run / "compress" / "metrics.json").read_text())
    assert abs(m["pruned"]["sparsity"] - 0.5) < 0.02 and abs(m["pruned_qat"]["sparsity"] - 0.5) < 0.02
    assert m["pruned_qat"]["accuracy"] > 0.8
