"""`edgecls models`: the table a user picks an architecture from."""
from __future__ import annotations

import json

from tests.helpers import run_cli


def test_models_json_has_params_macs_and_qat():
    res = run_cli("models", "lenet5", "--input-size", "32", "--json")
    assert res.returncode == 0, res.stderr
    row = json.loads(res.stdout.splitlines()[0])
    assert row["name"] == "lenet5" and row["input"] == [32, 32, 3] and row["qat"] is True
    assert row["params"] > 10_000 and row["macs"] > row["params"]  # convolutions reuse each weight


def test_models_table_and_unknown_pattern():
    res = run_cli("models", "mobilenet_v3_s*", "--input-size", "64")
    assert res.returncode == 0 and "MACs" in res.stdout and "PTQ only" in res.stdout
    res = run_cli("models", "nosuchnet*")
    assert res.returncode == 1 and res.stderr.strip() == "error: no model matches 'nosuchnet*'"


def test_models_pretrained_column_and_no_tensorflow_without_verify():
    import subprocess
    import sys

    from tests.helpers import ROOT

    code = ("import json, sys; from edgecls.cli import main; assert main(['models', '--json']) == 0; "
            "assert not [m for m in sys.modules if m.startswith('tensorflow')], 'the table built nets'")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    rows = {r["name"]: r for r in map(json.loads, res.stdout.splitlines())}
    assert rows["mobilenet_v2"]["pretrained"] == "MobileNetV2" and rows["lenet5"]["pretrained"] == ""
    table = run_cli("models", "lenet5").stdout.splitlines()
    assert "pretrained" in table[0] and table[1].split()[6] == "-", table


def test_models_verify_builds_the_listed_nets(capsys):
    from edgecls.cli import main
    from edgecls.models.catalog import model_rows

    assert main(["models", "lenet5", "--verify", "--json"]) == 0  # in-process: TensorFlow loads once per session
    row = json.loads(capsys.readouterr().out)
    table = model_rows("lenet5")[0]
    assert row["built"] is True and table["built"] is False  # the net was built, and agrees with the table
    assert (row["params"], row["macs"]) == (table["params"], table["macs"])
    assert main(["models", "lenet5", "--verify"]) == 0
    assert "verified: 1 net(s) built; parameters and MACs match the table" in capsys.readouterr().out
