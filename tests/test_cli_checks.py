"""The CLI checks before work: every mistake on its own `error:` line, exit 2, and nothing written.

In-process (edgecls.cli.main) and without TensorFlow: each of these stops before anything trains; a
test that found itself training would take minutes and fail.
"""
from __future__ import annotations

import textwrap

import pytest

from edgecls import api
from edgecls.cli import main
from edgecls.errors import RecipeError

RECIPE = """
name: tiny
data:
  source: folder
  options: {path: PHOTOS}
  image_size: 8
  channels: 1
model:
  name: small_cnn
train:
  epochs: 1
export:
  - {name: float32, mode: float32}
"""


def _edgecls(capsys, *args: str) -> tuple[int, str, str]:
    code = main([*args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def photos(tmp_path):
    """A valid folder recipe: two classes of one tiny PNG each (preflight lists files; it decodes none)."""
    from PIL import Image

    for name in ("cat", "dog"):
        (tmp_path / "photos" / name).mkdir(parents=True)
        Image.new("L", (8, 8)).save(tmp_path / "photos" / name / "a.png")
    path = tmp_path / "r.yaml"
    path.write_text(textwrap.dedent(RECIPE).lstrip().replace("PHOTOS", str(tmp_path / "photos")))
    return path


def test_run_with_a_device_typo_fails_before_training(capsys, tmp_path):
    # The digits recipe trains, compresses and exports (a minute or more) before bench would read the device.
    code, out, err = _edgecls(capsys, "run", "digits", "--set", "train.epochs=1", "--run-dir", str(tmp_path / "run"),
                              "--device", "raspbery-pi-5")
    assert code == 2 and out == ""
    assert len(err.splitlines()) == 1, err
    assert err.startswith("error: --device: no device recipe named 'raspbery-pi-5'; did you mean 'raspberry-pi-5'?")
    assert not (tmp_path / "run").exists()  # no train/, no lock, nothing


def test_every_mistake_is_its_own_error_line(capsys, photos, tmp_path):
    bad = photos.read_text().replace("epochs: 1", "epochs: one").replace("channels: 1", "chanels: 1")
    photos.write_text(bad.replace(str(tmp_path / "photos"), str(tmp_path / "gone")))
    code, out, err = _edgecls(capsys, "train", str(photos), "--run-dir", str(tmp_path / "run"))
    assert code == 2 and out == ""
    assert err.splitlines() == [f"error: {photos}:4: data.options.path: folder source: {tmp_path / 'gone'} is not "
                                "a folder; point 'path' at a folder with one sub-folder per class",
                                f"error: {photos}:6: data.chanels: unknown key; did you mean 'channels'?",
                                f"error: {photos}:10: train.epochs: expected an integer, got 'one'"], err
    # Once the recipe is right, the missing folder is the one line left, and train stops on it.
    photos.write_text(bad.replace("epochs: one", "epochs: 1").replace("chanels: 1", "channels: 1")
                      .replace(str(tmp_path / "photos"), str(tmp_path / "gone")))
    code, out, err = _edgecls(capsys, "train", str(photos), "--run-dir", str(tmp_path / "run"))
    assert code == 2 and len(err.splitlines()) == 1, err
    assert err.startswith(f"error: {photos}:4: data.options.path: ") and str(tmp_path / "gone") in err
    assert not (tmp_path / "run").exists()


def test_validate_checks_what_the_recipe_points_at(capsys, photos, tmp_path):
    code, out, err = _edgecls(capsys, "validate", str(photos), "--device", "local")
    assert code == 0 and out.startswith("ok: "), err
    code, out, err = _edgecls(capsys, "validate", str(photos), "--set", f"data.options.path={tmp_path / 'gone'}",
                              "--set", "model.weights=imagenet")
    lines = err.splitlines()
    assert code == 2 and out == "" and len(lines) == 2, err
    assert lines[0].startswith(f"error: --set data.options.path={tmp_path / 'gone'}: data.options.path: ")
    assert lines[1].startswith("error: --set model.weights=imagenet: model.weights: imagenet: small_cnn")


def test_validate_suggests_a_recipe_name(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = _edgecls(capsys, "validate", "digitz")
    assert code == 2 and err == ("error: digitz: no such file, and no recipe named 'digitz'; did you mean 'digits'? "
                                 "(edgecls recipes lists them)\n")


def test_api_train_and_run_all_check_first(photos, tmp_path):
    gone = [f"data.options.path={tmp_path / 'gone'}"]
    with pytest.raises(RecipeError, match="data.options.path: "):
        api.train(photos, tmp_path / "run", overrides=gone)
    with pytest.raises(RecipeError, match="^--device: no device recipe named 'nope'"):
        api.run_all(photos, tmp_path / "run", device="nope")
    assert not (tmp_path / "run").exists()


def test_quiet_turns_progress_bars_off(capsys, monkeypatch):
    from edgecls import progress

    calls = []
    monkeypatch.setattr(progress, "set_quiet", calls.append)
    code, out, _ = _edgecls(capsys, "--quiet", "validate", "digits")
    assert code == 0 and out.startswith("ok: ") and calls == [True]
    _edgecls(capsys, "validate", "digits")
    assert calls == [True]  # without --quiet, left alone


def test_recipe_mistakes_and_what_it_points_at_in_one_report(capsys, photos, tmp_path):
    """A key mistake does not hide a missing folder, a missing weights file or a device typo: one pass shows all."""
    text = photos.read_text().replace(str(tmp_path / "photos"), str(tmp_path / "gone"))
    text = text.replace("  name: small_cnn\n", "  name: small_cnn\n  weights: nope.h5\n").replace("epochs: 1", "epoch: 1")
    photos.write_text(text)
    code, out, err = _edgecls(capsys, "validate", str(photos), "--set", "train.batch_size=0", "--device", "pi5x")
    lines = err.splitlines()
    assert code == 2 and out == "" and len(lines) == 5, err
    assert lines[0].startswith(f"error: {photos}:4: data.options.path: folder source: {tmp_path / 'gone'} is not a folder")
    assert lines[1] == f"error: {photos}:9: model.weights: nope.h5: no such file"
    assert lines[2] == f"error: {photos}:11: train.epoch: unknown key; did you mean 'epochs'?"
    assert lines[3] == "error: --set train.batch_size=0: train.batch_size: must be >= 1, got 0"
    assert lines[4].startswith("error: --device: no device recipe named 'pi5x'")
