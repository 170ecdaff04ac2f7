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
