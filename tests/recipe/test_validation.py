"""Recipe values a user (or an attacker's file) can get wrong: numbers out of range, alias bombs, names
that would escape the run directory, class names that would break labels.txt; and configs built in Python,
which are checked as YAML is (Recipe.load, Recipe.from_dict, TrainConfig(...))."""
from __future__ import annotations

import dataclasses
import time
import tracemalloc

import pytest

from edgecls import cli
from edgecls.errors import RecipeError
from edgecls.recipe import Recipe, load_recipe
from edgecls.recipe.schema import (
    CompressStage,
    DataConfig,
    ExportVariant,
    Optimizer,
    ShapesOptions,
    Splits,
    TfrecordOptions,
    TrainConfig,
)
from edgecls.recipe.typed import ALIAS_LIMIT, FieldError, to_plain
from tests.helpers import RECIPES

from tests.recipe.test_loader import GOOD  # the same small valid recipe
GOOD_DICT = {"name": "tiny", "data": {"source": "digits", "image_size": 8, "channels": 1},
             "model": {"name": "small_cnn"}, "train": {"epochs": 2, "batch_size": 32}}


def error_of(path, overrides=()) -> str:
    with pytest.raises(RecipeError) as info:
        load_recipe(path, overrides)
    return str(info.value)


def validate(path, capsys, *overrides: str) -> tuple[int, list[str]]:
    """``edgecls validate PATH`` in this process: (exit code, stderr lines)."""
    args = ["validate", str(path)] + [a for o in overrides for a in ("--set", o)]
    code = cli.main(args)
    return code, capsys.readouterr().err.strip().splitlines()


# --- numbers ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("old, new, expected", [
    ("epochs: 2", "epochs: 100000000000000000000", ":9: train.epochs: must be <= 100000, got 100000000000000000000"),
    ("epochs: 2", "epochs: 100001", ":9: train.epochs: must be <= 100000, got 100001"),
    ("batch_size: 32", "batch_size: 99999999999", ":10: train.batch_size: must be <= 1000000, got 99999999999"),
    ("name: tiny", "name: tiny\nseed: 100000000000000000000", ":2: seed: must be <= 4294967295, got 100000000000000000000"),
    ("name: tiny", "name: tiny\nseed: 4294967296", ":2: seed: must be <= 4294967295, got 4294967296"),
    ("batch_size: 32", "batch_size: 32\n  optimizer: {learning_rate: .inf}",
     ":11: train.optimizer.learning_rate: must be a finite number, got inf"),
    ("batch_size: 32", "batch_size: 32\n  optimizer: {learning_rate: .nan}",
     ":11: train.optimizer.learning_rate: must be a finite number, got nan"),
    ("batch_size: 32", "batch_size: 32\n  label_smoothing: -.inf",
     ":11: train.label_smoothing: must be a finite number, got -inf"),
    ("batch_size: 32", "batch_size: 32\n  class_weights: {'0': .inf}",
     ":11: train.class_weights.0: must be a finite number, got inf"),
    ("name: small_cnn", "name: small_cnn\n  options: {dropout: .nan}",
     ":8: model.options.dropout: must be a finite number, got nan"),
    ("name: small_cnn", "name: small_cnn\n  options: {width: 100000000000000000000}",
     ":8: model.options.width: 100000000000000000000 is too large (more than 64 bits)"),
    ("source: digits", "source: shapes\n  options: {seed: 100000000000000000000}",
     ":4: data.options.seed: must be <= 4294967295, got 100000000000000000000"),
    ("source: digits", "source: shapes\n  options: {count: 100000000000}",
     ":4: data.options.count: must be <= 1000000, got 100000000000"),
    ("image_size: 8", "image_size: [100000000000000000000, 8]",
     ":4: data.image_size[0]: 100000000000000000000 is too large (more than 64 bits)"),
])
def test_numbers_out_of_range_are_one_line_exit_2(write_recipe, capsys, old, new, expected):
    path = write_recipe(GOOD.replace(old, new))
    assert error_of(path) == f"{path}{expected}"
    code, lines = validate(path, capsys)
    assert code == 2 and lines == [f"error: {path}{expected}"]


def test_numbers_out_of_range_from_the_command_line(write_recipe, capsys):
    path = write_recipe(GOOD)
    code, lines = validate(path, capsys, "train.optimizer.learning_rate=.inf")
    assert code == 2 and lines == ["error: --set train.optimizer.learning_rate=.inf: train.optimizer.learning_rate: "
                                   "must be a finite number, got inf"]
    code, lines = validate(path, capsys, "seed=100000000000000000000")
    assert code == 2 and len(lines) == 1 and "seed: must be <= 4294967295" in lines[0]
    assert validate(path, capsys, "seed=4294967295", "train.epochs=100000")[0] == 0  # the bounds themselves are fine


# --- YAML aliases -------------------------------------------------------------------------------------

def billion_laughs(levels: int = 9) -> str:
    """The classic bomb: each level lists the previous one 9 times, 9**levels strings in all."""
    text = 'name: tiny\nl0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n'
    for i in range(1, levels):
        text += f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]\n"
    return text


def test_alias_bomb_is_refused_fast_and_small(write_recipe, capsys):
    path = write_recipe(billion_laughs())
    tracemalloc.start()
    start = time.perf_counter()
    try:
        msg = error_of(path)
        seconds = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert msg == (f"{path}:6: YAML aliases expand to more than {ALIAS_LIMIT} values (alias *l3); "
                   "write the values out or use fewer aliases")
    assert seconds < 1.0 and peak < 5 * 2**20, (seconds, peak)
    code, lines = validate(path, capsys)
    assert code == 2 and lines == [f"error: {msg}"]


def test_alias_bomb_in_a_set_value(write_recipe):
    bomb = "[" + ", ".join(["*a"] * 9) + "]"
    value = "{a: &a [" + ", ".join(["x"] * 200) + "], b: &b " + bomb + ", c: " + bomb.replace("*a", "*b") + "}"
    msg = error_of(write_recipe(GOOD), [f"model.options={value}"])
    assert msg.startswith("--set model.options=") and "YAML aliases expand to more than" in msg


def test_recursive_alias_is_one_line(write_recipe):
    path = write_recipe(GOOD + "x: &x [1, *x]\n")
    assert error_of(path) == f"{path}:11: alias *x refers to a list or mapping that contains it; write the values out"


def test_ordinary_anchors_still_work(write_recipe):
    text = GOOD.replace("  channels: 1", "  channels: 1\n  augment: &aug {rotation: 0.1, zoom: 0.1}")
    text += "compress:\n  - {name: p, kind: prune}\nexport:\n  - {name: f, mode: float32}\n"
    recipe = load_recipe(write_recipe(text))
    assert recipe.data.augment.rotation == 0.1


# --- names that become files ----------------------------------------------------------------------------

@pytest.mark.parametrize("old, new, key", [
    ("name: tiny", "name: ../../x", ":1: name"),
    ("name: tiny", "name: .", ":1: name"),
    ("name: tiny", "name: 'a b'", ":1: name"),
    ("name: tiny", "name: ''", ":1: name"),
    ("batch_size: 32", "batch_size: 32\ncompress:\n  - {name: ../../x, kind: prune}", ":12: compress[0].name"),
    ("batch_size: 32", "batch_size: 32\ncompress:\n  - {name: '..', kind: prune}", ":12: compress[0].name"),
    ("batch_size: 32", "batch_size: 32\ncompress:\n  - {name: p, kind: prune, source: a/b}", ":12: compress[0].source"),
    ("batch_size: 32", "batch_size: 32\nexport:\n  - {name: a\\b, mode: float32}", ":12: export[0].name"),
    ("batch_size: 32", "batch_size: 32\nexport:\n  - {name: f, mode: float32, source: /etc}", ":12: export[0].source"),
])
def test_names_that_would_leave_the_run_are_refused(write_recipe, capsys, old, new, key):
    path = write_recipe(GOOD.replace(old, new))
    msg = error_of(path)
    assert msg.startswith(f"{path}{key}: must be a plain name (letters, digits, '_', '-', '.'"), msg
    code, lines = validate(path, capsys)
    assert code == 2 and lines == [f"error: {msg}"]


def test_plain_names_pass():
    text_names = ("run-1", "a_b.c", "int8", "x" * 128)
    for name in text_names:
        assert ExportVariant(name=name, mode="float32").name == name
    with pytest.raises(FieldError, match="name: must be a plain name"):
        ExportVariant(name="x" * 129, mode="float32")


# --- class names --------------------------------------------------------------------------------------

def test_class_names_with_control_characters_are_refused(write_recipe, capsys):
    options = 'source: tfrecord\n  options: {path: x.tfrecord, class_names: [cat, "do\\ng"]}'
    path = write_recipe(GOOD.replace("source: digits", options))
    expected = (f"{path}:4: data.options.class_names[1]: class name 'do\\ng' contains the control character "
                "'\\n'; rename it")
    assert error_of(path) == expected
    code, lines = validate(path, capsys)
    assert code == 2 and lines == [f"error: {expected}"]
    path = write_recipe(GOOD + '  class_weights: {"a\\u2028b": 2.0}\n')
    assert error_of(path) == (f"{path}:11: train.class_weights: class name 'a\\u2028b' contains the control "
                              "character '\\u2028'; rename it")
    with pytest.raises(FieldError, match="class name '' is empty"):
        TfrecordOptions(path="x", class_names=("a", ""))


# --- configs built in Python ----------------------------------------------------------------------------

@pytest.mark.parametrize("build, message", [
    (lambda: TrainConfig(epochs=-5), "epochs: must be >= 1, got -5"),
    (lambda: TrainConfig(epochs=10**20), "epochs: must be <= 100000, got 100000000000000000000"),
    (lambda: TrainConfig(epochs=3.0), "epochs: expected an integer, got 3.0"),
    (lambda: TrainConfig(epochs="3"), "epochs: expected an integer, got '3'"),
    (lambda: TrainConfig(strategy="mirored"), "strategy: must be one of 'auto', 'default', 'one_device', "
                                               "'mirrored', 'multi_worker', 'tpu', got 'mirored'; did you mean 'mirrored'?"),
    (lambda: TrainConfig(optimizer={"name": "sgd", "learning_rate": float("inf")}),
     "optimizer.learning_rate: must be a finite number, got inf"),
    (lambda: TrainConfig(optimizer="adam"), "optimizer: expected a mapping, got 'adam'"),
    (lambda: Optimizer(learning_rate=float("nan")), "learning_rate: must be a finite number, got nan"),
    (lambda: Splits(validation=0.5, test=0.6), "test: validation + test must leave data to train on (sum < 1)"),
    (lambda: CompressStage(name="../x", kind="prune"), "name: must be a plain name"),
    (lambda: DataConfig(source="folder", image_size=8), "options.path: required key is missing"),
    (lambda: DataConfig(source="shapes", image_size=8, options=TfrecordOptions(path="x")),
     "options: expected ShapesOptions for source 'shapes', got TfrecordOptions("),
    (lambda: ShapesOptions(classes=["circle", "blob"]), "classes: unknown shape 'blob'"),
])
def test_configs_built_in_python_check_their_fields(build, message):
    with pytest.raises(FieldError) as info:
        build()
    assert str(info.value).startswith(message), str(info.value)
    assert isinstance(info.value, ValueError)  # what Python code expects of a bad argument
    assert "\n" not in str(info.value)


def test_configs_built_in_python_are_normalized_like_yaml():
    data = DataConfig(source="shapes", image_size=16, normalize={"mean": [0.5], "std": [0.25]})
    assert data.options == ShapesOptions() and data.image_size == (16, 16) and data.normalize.std == (0.25,)
    train = TrainConfig(devices=["/cpu:0"], finetune=[{"epochs": 2}], optimizer={"learning_rate": 1})
    assert train.devices == ("/cpu:0",) and train.finetune[0].epochs == 2
    assert train.optimizer.learning_rate == 1.0 and isinstance(train.optimizer.learning_rate, float)
    assert dataclasses.replace(train, epochs=4).epochs == 4
    with pytest.raises(FieldError, match="epochs: must be >= 1"):
        dataclasses.replace(train, epochs=0)


# --- Recipe.load / Recipe.from_dict -----------------------------------------------------------------------

def test_recipe_load_by_name_or_path_with_overrides():
    by_name = Recipe.load("digits", overrides=["train.epochs=3"])
    assert by_name == load_recipe(RECIPES / "digits.yaml", ["train.epochs=3"]) and by_name.train.epochs == 3
    assert Recipe.load(RECIPES / "digits.yaml", "seed=7").seed == 7  # one override given as a string


def test_recipe_from_dict_matches_the_file(write_recipe):
    from_file = load_recipe(write_recipe(GOOD))
    assert Recipe.from_dict(GOOD_DICT) == from_file
    assert Recipe.from_dict(to_plain(from_file)) == from_file
    again = Recipe.from_dict(GOOD_DICT, overrides=["train.epochs=5"])
    assert again.train.epochs == 5 and GOOD_DICT["train"]["epochs"] == 2  # the caller's dict is not changed


@pytest.mark.parametrize("change, message", [
    ({"train": {"epochs": 0}}, "<dict>: train.epochs: must be >= 1, got 0"),
    ({"train": {"optimiser": {}}}, "<dict>: train.optimiser: unknown key; did you mean 'optimizer'?"),
    ({"seed": float("inf")}, "<dict>: seed: expected an integer, got inf"),
    ({"data": {"source": "digits", "image_size": 8, "splits": {"test": float("nan")}}},
     "<dict>: data.splits.test: must be a finite number, got nan"),
    ({"name": "../x"}, "<dict>: name: must be a plain name"),
    ({"model": {"name": "mobilenetv2"}}, "<dict>: model.name: unknown model 'mobilenetv2'; did you mean 'mobilenet_v2'?"),
    ({"data": {"source": "digits", "image_size": 8, "channels": 1, "augment": {"hue": 0.1}}},
     "<dict>: data.augment.hue: colour shifts need channels: 3 (channels is 1)"),
    ({"data": {"source": "digits", "image_size": 8, "augment": {"perspective": 0.5}}},
     "<dict>: data.augment.perspective: must be < 0.5, got 0.5"),
    ({"export": [{"name": "f", "mode": "float32", "calibrate": "platt"}]},
     "<dict>: export[0].calibrate: must be one of 'none', 'temperature', got 'platt'"),
])
def test_recipe_from_dict_errors_name_the_key(change, message):
    with pytest.raises(RecipeError) as info:
        Recipe.from_dict({**GOOD_DICT, **change})
    assert str(info.value).startswith(message), str(info.value)


def test_recipe_from_dict_needs_a_mapping():
    with pytest.raises(RecipeError, match="<dict>: a recipe is a mapping of sections, got list"):
        Recipe.from_dict([GOOD_DICT])
    with pytest.raises(RecipeError, match="<dict>: data: required key is missing"):
        Recipe.from_dict({"name": "x"})


def test_an_error_inside_a_list_set_on_the_command_line_names_the_set(write_recipe):
    msg = error_of(write_recipe(GOOD), ["export=[{name: ../x, mode: float32}]"])
    assert msg.startswith("--set export=[{name: ../x, mode: float32}]: export[0].name: must be a plain name"), msg
