"""The model table behind `edgecls models`: true to the built nets, and answered without TensorFlow."""
from __future__ import annotations

import subprocess
import sys
import time

import pytest

from edgecls.models import ModelError, list_models
from edgecls.models import catalog
from edgecls.models.catalog import TABLE, model_rows

KEYS = ["name", "family", "params", "macs", "input", "qat", "qat_note", "pretrained", "description", "built"]
# Quick to build (~1-4 s each on 2 cores); the whole sweep takes minutes and is marked slow.
SMALL = ("lenet5", "small_cnn", "resnet8", "vgg_small", "densenet_small", "inception_small", "mobilenet_v3_small")


def test_every_registered_model_is_in_the_table() -> None:
    assert sorted(TABLE) == [info.name for info in list_models()]
    for info in list_models():
        assert TABLE[info.name]["input"] == list(info.default_input)


def test_listing_loads_no_tensorflow_and_is_quick() -> None:
    code = ("import sys, time; t = time.perf_counter(); from edgecls.models.catalog import model_rows; "
            "rows = model_rows(); rows3 = model_rows('mobilenet*', classes=3); "
            "print(len(rows), round(time.perf_counter() - t, 3)); "
            "assert 'tensorflow' not in sys.modules and not any(r['built'] for r in rows + rows3)")
    start = time.perf_counter()
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    wall = time.perf_counter() - start
    assert res.returncode == 0, res.stderr
    count, seconds = res.stdout.split()
    assert int(count) == len(TABLE)
    assert float(seconds) < 1.0 and wall < 3.0, (seconds, wall)  # the interpreter's start included


def test_rows_say_which_nets_have_imagenet_weights() -> None:
    rows = {r["name"]: r for r in model_rows("*")}
    assert [key for key in rows["mobilenet_v3_small"]] == KEYS
    assert rows["mobilenet_v3_small"]["pretrained"] == "MobileNetV3Small" and rows["resnet18"]["pretrained"] == ""
    assert rows["efficientnet_lite0"]["pretrained"] == "" and rows["efficientnet_b0"]["pretrained"] == "EfficientNetB0"
    assert rows["mobilenet_v3_small"]["qat"] is False and "minimalistic" in rows["mobilenet_v3_small"]["qat_note"]
    assert rows["resnet50"]["input"] == [224, 224, 3] and not rows["resnet50"]["built"]


@pytest.mark.parametrize("name", SMALL)
def test_table_is_true_for_quick_nets(name: str) -> None:
    """verify builds the net; 3 classes also checks how the table scales the logits layer."""
    for classes in (10, 3):
        [row] = model_rows(name, classes=classes, verify=True)
        assert row["built"]


@pytest.mark.slow
def test_table_is_true_for_every_net() -> None:
    """Every registered net built at its default input (about 55 s on 2 cores)."""
    rows = model_rows("*", classes=7, verify=True)
    assert len(rows) == len(TABLE) and all(r["built"] for r in rows)


def test_another_input_size_is_built() -> None:
    [row] = model_rows("lenet5", input_size=28)
    assert row["built"] and row["input"] == [28, 28, 3]
    assert row["macs"] < TABLE["lenet5"]["macs"]  # 28 px is less work than the table's 32 px


def test_verify_finds_a_wrong_figure(monkeypatch: pytest.MonkeyPatch) -> None:
    wrong = dict(TABLE["lenet5"], params=TABLE["lenet5"]["params"] + 1)
    monkeypatch.setitem(catalog.TABLE, "lenet5", wrong)
    [row] = model_rows("lenet5")
    assert row["params"] == wrong["params"] and not row["built"]  # without verify, the table is believed
    with pytest.raises(ModelError) as err:
        model_rows("lenet5", verify=True)
    message = str(err.value)
    assert "\n" not in message and message.startswith("the model table is out of date")
    assert f"lenet5 params {wrong['params']:,} and MACs {wrong['macs']:,} in the table, " \
           f"{wrong['params'] - 1:,} and {wrong['macs']:,} built" in message


def test_a_net_missing_from_the_table_is_built(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(catalog.TABLE, "lenet5")
    [row] = model_rows("lenet5")
    assert row["built"] and row["params"] > 10_000


def test_bad_arguments() -> None:
    with pytest.raises(ModelError, match=r"^no model matches 'nosuchnet\*'$"):
        model_rows("nosuchnet*")
    with pytest.raises(ModelError, match=r"^classes must be an integer >= 2, got 1$"):
        model_rows(classes=1)
    with pytest.raises(ModelError, match=r"^input size must be an integer >= 1, got 0$"):
        model_rows(input_size=0)
