"""Every mistake in one report, and what a valid recipe points at checked before any work (preflight).

No TensorFlow here: the loader and preflight are cheap by design; a test that trained would be a bug.
"""
from __future__ import annotations

import dataclasses

import pytest

from edgecls.errors import RecipeError
from edgecls.recipe import load_recipe
from edgecls.recipe.preflight import preflight
from edgecls.recipe.schema import Splits, TrainConfig
from edgecls.recipe.typed import FieldError

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

FOLDER = GOOD.replace("  source: digits\n", "  source: folder\n  options: {path: PATH}\n")


def error_of(path, overrides=()) -> RecipeError:
    with pytest.raises(RecipeError) as info:
        load_recipe(path, overrides)
    return info.value


def preflight_error(recipe, **kw) -> RecipeError:
    with pytest.raises(RecipeError) as info:
        preflight(recipe, **kw)
    return info.value


# --- every mistake of a recipe in one report ---------------------------------------------------------------

def test_wrong_key_and_wrong_type_are_both_reported_one_line_each(write_recipe):
    path = write_recipe(GOOD.replace("epochs: 2", "epochs: ten").replace("  channels: 1", "  chanels: 1"))
    err = error_of(path)
    assert str(err).splitlines() == [f"{path}:5: data.chanels: unknown key; did you mean 'channels'?",
                                     f"{path}:9: train.epochs: expected an integer, got 'ten'"]
    assert [e.key for e in err.errors] == ["data.chanels", "train.epochs"]
    # Each line is the very message the mistake gives alone.
    alone = error_of(write_recipe(GOOD.replace("epochs: 2", "epochs: ten"), "alone.yaml"))
    assert str(alone) == f"{alone.source}:9: train.epochs: expected an integer, got 'ten'" and alone.errors == [alone]


def test_mistakes_in_every_section_and_list_item_come_in_file_order(write_recipe):
    path = write_recipe(GOOD.replace("name: small_cnn", "name: small_cnx\n  options: {widht: 2}")
                        + "  optimiser: {name: sgd}\nexport:\n  - {name: a, mode: int9}\n  - {name: b, mode: flot32}\n")
    lines = str(error_of(path)).splitlines()
    assert [ln.split(": ")[0:2] for ln in lines] == [
        [f"{path}:7", "model.name"], [f"{path}:12", "train.optimiser"],
        [f"{path}:14", "export[0].mode"], [f"{path}:15", "export[1].mode"]], lines
    assert "did you mean 'small_cnn'?" in lines[0] and "did you mean 'float32'?" in lines[3]


def test_a_section_with_a_wrong_field_skips_its_cross_field_checks(write_recipe):
    # validation is wrong; "validation + test < 1" would only repeat it on a value that failed.
    path = write_recipe(GOOD.replace("  channels: 1", "  channels: 1\n  splits: {validation: lots, test: 0.95}"))
    assert str(error_of(path)) == f"{path}:6: data.splits.validation: expected a number, got 'lots'"
    # A section whose fields are right still runs its cross-field check beside another section's mistake.
    path = write_recipe(GOOD.replace("  channels: 1", "  channels: 1\n  splits: {validation: 0.5, test: 0.6}")
                        .replace("epochs: 2", "epochs: 0"))
    lines = str(error_of(path)).splitlines()
    assert len(lines) == 2 and lines[0].startswith(f"{path}:6: data.splits.test:") and "sum < 1" in lines[0]
    assert lines[1] == f"{path}:10: train.epochs: must be >= 1, got 0"


def test_set_overrides_keep_their_attribution_beside_file_mistakes(write_recipe):
    path = write_recipe(GOOD.replace("batch_size: 32", "batch_size: many"))
    assert str(error_of(path, ["train.epochs=-3"])).splitlines() == [
        f"{path}:10: train.batch_size: expected an integer, got 'many'",
        "--set train.epochs=-3: train.epochs: must be >= 1, got -3"]


def test_configs_built_in_python_report_every_bad_field():
    with pytest.raises(FieldError) as info:
        TrainConfig(epochs=0, batch_size="x")
    assert str(info.value).splitlines() == ["epochs: must be >= 1, got 0", "batch_size: expected an integer, got 'x'"]
    assert isinstance(info.value, ValueError)
    with pytest.raises(FieldError, match="^test: validation"):  # a single mistake: the message of old
        Splits(validation=0.5, test=0.6)


def test_a_missing_recipe_name_suggests_the_close_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    err = error_of("digitz")
    assert str(err) == "digitz: no such file, and no recipe named 'digitz'; did you mean 'digits'? " \
                       "(edgecls recipes lists them)"
    assert "did you mean" not in str(error_of("zzzzzz"))
    assert str(error_of("nope.yaml")) == "nope.yaml: file not found"  # a path stays a path


# --- preflight: what the recipe points at -------------------------------------------------------------------

def test_a_missing_data_folder_is_named_at_its_line(write_recipe, tmp_path):
    path = write_recipe(FOLDER.replace("PATH", str(tmp_path / "no-photos")))
    err = preflight_error(load_recipe(path))
    assert str(err).startswith(f"{path}:4: data.options.path: ") and "no-photos" in str(err), str(err)
    assert len(err.errors) == 1


def test_weights_file_missing_and_imagenet_for_a_family_without(write_recipe, tmp_path):
    path = write_recipe(GOOD.replace("name: small_cnn", f"name: small_cnn\n  weights: {tmp_path / 'gone.h5'}"))
    assert str(preflight_error(load_recipe(path))) == f"{path}:8: model.weights: {tmp_path / 'gone.h5'}: no such file"
    path = write_recipe(GOOD.replace("name: small_cnn", "name: lenet5\n  weights: imagenet"))
    err = preflight_error(load_recipe(path))
    assert str(err).startswith(f"{path}:8: model.weights: ") and "lenet5" in str(err) and "\n" not in str(err)


def test_backbone_run_without_a_model(write_recipe, tmp_path):
    (tmp_path / "base").mkdir()
    path = write_recipe(GOOD.replace("name: small_cnn", f"backbone: {tmp_path / 'base'}"))
    err = preflight_error(load_recipe(path))
    assert str(err).startswith(f"{path}:7: model.backbone: {tmp_path / 'base'} holds no train/model.keras"), str(err)


def test_every_problem_in_one_report_with_the_device(write_recipe, tmp_path):
    path = write_recipe(FOLDER.replace("PATH", str(tmp_path / "no-photos"))
                        .replace("name: small_cnn", "name: lenet5\n  weights: imagenet")
                        .replace("  channels: 1", f"  channels: 1\n  slices: {tmp_path / 'slices.csv'}"))
    err = preflight_error(load_recipe(path), device="pi5x")
    keys = [e.key for e in err.errors]
    assert keys == ["data.options.path", "data.slices", "model.weights", None], str(err)
    assert str(err).splitlines()[-1].startswith("--device: no device recipe named 'pi5x'")
    assert f"{path}:7: data.slices: {tmp_path / 'slices.csv'}: no such file" in str(err).splitlines()


def test_set_overrides_and_python_recipes_name_the_key(write_recipe, tmp_path):
    recipe = load_recipe(write_recipe(GOOD), [f"model.weights={tmp_path / 'w.h5'}"])
    assert str(preflight_error(recipe)) == \
        f"--set model.weights={tmp_path / 'w.h5'}: model.weights: {tmp_path / 'w.h5'}: no such file"
    built = dataclasses.replace(recipe, model=dataclasses.replace(recipe.model, weights=str(tmp_path / "x.keras")))
    assert str(preflight_error(built)) == f"model.weights: {tmp_path / 'x.keras'}: no such file"


def test_a_good_recipe_passes(write_recipe):
    preflight(load_recipe(write_recipe(GOOD)), device="local")


def test_recipes_listing_keeps_one_line_for_a_recipe_with_several_mistakes(tmp_path, monkeypatch):
    from edgecls.recipe import list_recipes

    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / "broken.yaml").write_text(GOOD.replace("epochs: 2", "epochs: 0").replace("channels: 1",
                                                                                                        "channels: 2"))
    monkeypatch.chdir(tmp_path)
    desc = {name: d for name, _, d in list_recipes()}["broken"]
    assert desc.startswith("INVALID: ") and desc.endswith("(and 1 more)") and "\n" not in desc, desc
