"""Recipes: every bundled one validates; every kind of mistake names file:line:key and exits 2."""
from __future__ import annotations

import pytest

from edgecls.errors import RecipeError
from edgecls.recipe import list_recipes, load_recipe, recipe_to_yaml, save_recipe
from tests.helpers import RECIPES, run_cli

GOOD = """
name: tiny
data:
  source: digits
  image_size: 8
  channels: 1
model:
  name: small_cnn
train:
  epochs: 2
  batch_size: 32
"""


def error_of(path, overrides=()) -> str:
    with pytest.raises(RecipeError) as info:
        load_recipe(path, overrides)
    return str(info.value)


@pytest.mark.parametrize("path", sorted(RECIPES.glob("*.yaml")), ids=lambda p: p.name)
def test_bundled_recipes_validate(path):
    recipe = load_recipe(path)
    assert recipe.name and recipe.description


def test_defaults_and_types(write_recipe):
    r = load_recipe(write_recipe(GOOD))
    assert r.data.image_size == (8, 8)
    assert r.train.epochs == 2 and r.train.optimizer.name == "adam"
    assert r.data.splits.test == "official"  # the source's own test split where it has one
    with pytest.raises(Exception):  # frozen
        r.train.epochs = 3  # type: ignore[misc]


def test_unknown_key_names_line_and_suggests(write_recipe):
    path = write_recipe(GOOD.replace("  batch_size: 32", "  batch_size: 32\n  optimiser: {name: sgd}"))
    assert error_of(path) == f"{path}:11: train.optimiser: unknown key; did you mean 'optimizer'?"


def test_wrong_type(write_recipe):
    path = write_recipe(GOOD.replace("epochs: 2", "epochs: ten"))
    assert error_of(path) == f"{path}:9: train.epochs: expected an integer, got 'ten'"


def test_out_of_range(write_recipe):
    path = write_recipe(GOOD.replace("epochs: 2", "epochs: 0"))
    assert error_of(path) == f"{path}:9: train.epochs: must be >= 1, got 0"
    path = write_recipe(GOOD + "  label_smoothing: 1.5\n")
    assert "train.label_smoothing: must be < 1.0" in error_of(path)


def test_cross_field_check_names_the_key(write_recipe):
    path = write_recipe(GOOD.replace("  channels: 1", "  channels: 1\n  splits: {validation: 0.5, test: 0.6}"))
    msg = error_of(path)
    assert msg.startswith(f"{path}:6: data.splits.test:") and "sum < 1" in msg


def test_bad_choice_suggests(write_recipe):
    path = write_recipe(GOOD.replace("source: digits", "source: digit"))
    assert error_of(path) == (f"{path}:3: data.source: must be one of 'digits', 'shapes', 'folder', 'csv', "
                              f"'tfrecord', 'keras', 'tfds', got 'digit'; did you mean 'digits'?")


def test_missing_required_key(write_recipe):
    path = write_recipe(GOOD.replace("  image_size: 8\n", ""))
    assert error_of(path) == f"{path}:3: data.image_size: required key is missing"


def test_source_options_are_typed_by_source(write_recipe):
    path = write_recipe(GOOD.replace("source: digits", "source: shapes\n  options: {count: 10, colour: red}"))
    assert "data.options.colour: unknown key" in error_of(path)
    path = write_recipe(GOOD.replace("source: digits", "source: folder"))
    assert "data.options.path: required key is missing" in error_of(path)
    path = write_recipe(GOOD.replace("source: digits", "source: shapes\n  options: {classes: [circle, blob]}"))
    assert "data.options.classes: unknown shape 'blob'" in error_of(path)


def test_unknown_model_and_option(write_recipe):
    path = write_recipe(GOOD.replace("name: small_cnn", "name: mobilenetv2"))
    assert error_of(path).startswith(f"{path}:7: model.name: unknown model 'mobilenetv2'; did you mean 'mobilenet_v2'?")
    path = write_recipe(GOOD.replace("name: small_cnn", "name: small_cnn\n  options: {widht: 2}"))
    assert f"{path}:8: model.options.widht: unknown option of small_cnn; did you mean 'width'?" in error_of(path)


def test_missing_file(tmp_path):
    path = tmp_path / "nope.yaml"
    assert error_of(path) == f"{path}: file not found"


def test_malformed_yaml(write_recipe):
    path = write_recipe("name: x\ndata:\n  source: [digits\nmodel: {}\n")
    msg = error_of(path)
    assert msg.startswith(f"{path}:") and "malformed YAML" in msg


def test_duplicate_key(write_recipe):
    path = write_recipe(GOOD + "train:\n  epochs: 3\n")
    assert error_of(path).startswith(f"{path}:11:") and "duplicate key 'train'" in error_of(path)


def test_overrides_are_typed(write_recipe):
    path = write_recipe(GOOD)
    r = load_recipe(path, ["train.epochs=5", "train.optimizer.learning_rate=0.01", "data.augment.flip=horizontal"])
    assert r.train.epochs == 5 and r.train.optimizer.learning_rate == 0.01 and r.data.augment.flip == "horizontal"
    assert error_of(path, ["train.epochs=abc"]) == "--set train.epochs=abc: train.epochs: expected an integer, got 'abc'"
    assert "did you mean 'epochs'" in error_of(path, ["train.epoch=3"])
    assert "expected KEY=VALUE" in error_of(path, ["train.epochs"])


def test_resolved_recipe_round_trips(write_recipe, tmp_path):
    r = load_recipe(write_recipe(GOOD), ["train.epochs=7"])
    out = save_recipe(r, tmp_path / "run" / "recipe.yaml")
    again = load_recipe(out)
    assert again == r and "epochs: 7" in recipe_to_yaml(again)


def test_list_recipes_has_bundled():
    names = {name for name, _, _ in list_recipes()}
    assert {"digits", "shapes", "folder-template"} <= names


def test_cli_recipe_error_is_one_line_exit_2_no_run_dir(write_recipe, tmp_path):
    path = write_recipe(GOOD.replace("epochs: 2", "epochs: -1"))
    res = run_cli("train", str(path), "--run-dir", str(tmp_path / "run"))
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert lines == [f"error: {path}:9: train.epochs: must be >= 1, got -1"], res.stderr
    assert not (tmp_path / "run").exists()


def test_cli_validate_and_recipes():
    res = run_cli("validate", str(RECIPES / "digits.yaml"))
    assert res.returncode == 0 and res.stdout.startswith("ok:")
    res = run_cli("recipes")
    assert res.returncode == 0 and "digits" in res.stdout and "shapes" in res.stdout
    res = run_cli("validate", "digits", "--set", "train.epochs=x")
    assert res.returncode == 2 and "train.epochs" in res.stderr and "Traceback" not in res.stderr
