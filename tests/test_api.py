"""The public API: a short, lazy re-export list, and the README's example, run as it is."""
from __future__ import annotations

import re
import subprocess
import sys

from tests.helpers import ROOT


def test_import_is_light_and_the_list_is_short():
    code = ("import sys, edgecls; names = edgecls.__all__; edgecls.Run; edgecls.Recipe; edgecls.status; "
            "assert callable(edgecls.train) and callable(edgecls.export); "
            "import edgecls.train.strategy; assert callable(edgecls.train), 'the package shadowed the function'; "
            "bad = [m for m in sys.modules if m.startswith(('tensorflow', 'tf_keras'))]; "
            "assert not bad, bad; print(len(names))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 0, res.stderr
    assert int(res.stdout) <= 20


def test_readme_python_example_runs(tmp_path):
    text = (ROOT / "README.md").read_text()
    section = text.split("## Python API", 1)[1].split("\n## ", 1)[0]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    out = res.stdout
    accuracy = float(re.search(r"trained: test accuracy ([0-9.]+)", out).group(1))
    assert accuracy > 0.8  # 3 epochs of the digits CNN
    int8 = re.search(r"int8 +[0-9,]+ bytes  accuracy ([0-9.]+)  agreement ([0-9.]+)", out)
    assert int8 and abs(float(int8.group(1)) - accuracy) < 0.03 and float(int8.group(2)) > 0.95
    row = re.search(r"int8 +threads 1  p50 [0-9.]+ ms  mAP ([0-9.]+)  corrupted ([0-9.]+)  ok", out)
    assert row and 0.8 < float(row.group(1)) <= 1 and 0.1 < float(row.group(2)) < accuracy + 0.05
    drift = re.search(r"int8 vs float32: ECE [-+][0-9.]+, explanations agree \(rho\) ([-0-9.]+)", out)
    assert drift and float(drift.group(1)) > 0.5  # int8 looks where float32 looks
    assert "train train done" in out and "variant int8 done" in out and "bench local done" in out
    assert re.search(r"first test image: \d", out)
    assert "'train': 1.0" in out and (tmp_path / "runs/api-demo/explain/first.png").is_file()


def test_a_recipe_is_checked_once_inside_checked(monkeypatch):
    """run_all and `edgecls train` check the recipe's data, weights and backbone once, not once per stage."""
    import edgecls.recipe.preflight as pre
    from edgecls import api

    calls = []
    real = pre.preflight
    monkeypatch.setattr(pre, "preflight", lambda recipe, device=None: calls.append(device) or real(recipe,
                                                                                                  device=device))
    with api.checked("digits") as rec:
        n_entered = len(calls)
        assert api._checked(rec) is rec  # what api.train does inside the block
        assert api._checked(rec) is rec
        assert len(calls) == n_entered
    api._checked(rec)  # outside, a Recipe object is checked again: its data may have changed since
    assert len(calls) == n_entered + 1
