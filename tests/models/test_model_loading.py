"""No code from model files: a Lambda that would create a marker file is refused on every path edgecls loads a
Keras model by (backbone, model.weights, train/model.keras, compress/<stage>, export), in one line and before
Keras runs it; plain tf_keras does run it (so these tests can fail); real models still load."""
from __future__ import annotations

import json
import shutil
import warnings
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from edgecls.cli import main
from edgecls.models import ModelError, create, get_info, list_models
from edgecls.models.loading import check_config, load_keras_model
from tests.helpers import RECIPES

LAMBDA = "layer 'boom' is a Lambda (Python code); edgecls loads no code from model files"


def _save(model, path: Path) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "HDF5 is legacy"
        model.save(str(path))
    return path


@pytest.fixture(scope="module")
def keras():
    from edgecls._tf import keras

    return keras


@pytest.fixture(scope="module")
def evil(tmp_path_factory, keras):
    """A digits-shaped model whose Lambda touches a marker file when Keras rebuilds it, as .h5 and .keras."""
    folder = tmp_path_factory.mktemp("evil")
    marker = folder / "marker"
    # The path is a constant of the lambda's code, so it survives marshalling into the file.
    touch = eval(f"lambda x: __import__('pathlib').Path({str(marker)!r}).touch() or x")  # noqa: S307
    image = keras.Input((8, 8, 1), name="image")
    x = keras.layers.Lambda(touch, name="boom")(keras.layers.Flatten()(image))
    model = keras.Model(image, keras.layers.Dense(10, activation="softmax", name="logits")(x))
    h5, zipped = _save(model, folder / "evil.h5"), _save(model, folder / "evil.keras")
    marker.unlink()  # building the model ran the lambda once
    return SimpleNamespace(marker=marker, h5=h5, keras=zipped)


@pytest.fixture
def marker(evil):
    """The marker is absent before each test; the test asserts it still is."""
    evil.marker.unlink(missing_ok=True)
    yield evil.marker
    evil.marker.unlink(missing_ok=True)


def test_plain_tf_keras_runs_the_lambda_in_hdf5(evil, marker, keras):
    """What edgecls must not do: tf_keras' legacy HDF5 path has no safe_mode and runs the marshalled code."""
    keras.models.load_model(evil.h5, compile=False)
    assert marker.exists()


@pytest.mark.parametrize("source, name", [("h5", "evil.h5"), ("keras", "evil.keras"),
                                          ("h5", "model.keras"), ("keras", "model.h5")])
def test_load_keras_model_refuses_a_lambda_whatever_the_file_is_named(evil, marker, tmp_path, source, name):
    path = tmp_path / name
    shutil.copyfile(getattr(evil, source), path)
    with pytest.raises(ModelError) as err:
        load_keras_model(path, what="model.backbone")
    assert str(err.value).startswith(f"model.backbone: {path}: {LAMBDA}") and "\n" not in str(err.value)
    assert not marker.exists()


# --- every loading path, through the CLI --------------------------------------------------------------


@pytest.fixture
def run_dir(tmp_path, evil):
    """A digits run made by hand: recipe, split, and the Lambda model as every model file a stage reads."""
    from edgecls.data.sources import load_source
    from edgecls.data.splits import save_split, stratified_split

    run = tmp_path / "run"
    (run / "train").mkdir(parents=True)
    (run / "compress").mkdir()
    shutil.copyfile(RECIPES / "digits.yaml", run / "recipe.yaml")
    examples = load_source("digits", {})
    save_split(run / "split.json", stratified_split(examples.labels, validation=0.1, test=0.2, seed=0), examples)
    shutil.copyfile(evil.h5, run / "train" / "model.keras")  # an HDF5 file under the .keras name
    shutil.copyfile(evil.h5, run / "compress" / "pruned.keras")
    shutil.copyfile(evil.h5, run / "compress" / "pruned_qat.h5")
    # Records that hold for these files, so the stages get as far as loading them.
    from edgecls.recipe import load_recipe
    from edgecls.run import Run, StageRecord, sha256_file

    r, recipe = Run(run), load_recipe(run / "recipe.yaml")
    records = {}
    for i, stage in enumerate(recipe.compress):
        out, source = r.stage_model(stage.name, stage.kind), recipe.stage_source(i)
        records[stage.name] = StageRecord(
            name=stage.name, kind=stage.kind, source=source, path=r.rel(out), metrics={"accuracy": 0.9},
            output_sha256=sha256_file(out),
            made_from=r.made_from(Run.stage_sections(recipe, stage), [r.model_file(recipe, source), r.split]))
    r.save_stages(records)
    return run


def _one_line_error(capsys, code: int, expected: int, text: str) -> None:
    err = capsys.readouterr().err
    assert code == expected, err[-2000:]
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and text in errors[0], err[-2000:]
    assert "Traceback" not in err


def test_backbone_file(evil, marker, tmp_path, capsys):
    code = main(["train", str(RECIPES / "transfer-fewshot.yaml"), "--set", f"model.backbone={evil.h5}",
                 "--run-dir", str(tmp_path / "r")])
    _one_line_error(capsys, code, 1, f"model.backbone: {evil.h5}: {LAMBDA}")
    assert not marker.exists() and not (tmp_path / "r" / "train" / "model.keras").exists()


def test_backbone_run_whose_model_is_a_renamed_hdf5(run_dir, marker, tmp_path, capsys):
    code = main(["train", str(RECIPES / "transfer-fewshot.yaml"), "--set", f"model.backbone={run_dir}",
                 "--run-dir", str(tmp_path / "r")])
    _one_line_error(capsys, code, 1, f"model.backbone: {run_dir / 'train' / 'model.keras'}: {LAMBDA}")
    assert not marker.exists()


@pytest.mark.parametrize("kind", ["h5", "keras"])
def test_weights_from_a_file_read_as_arrays_only(evil, marker, tmp_path, capsys, kind):
    """model.weights is read with h5py (a .keras: its model.weights.h5), weights only: the Lambda is never rebuilt."""
    code = main(["train", str(RECIPES / "digits.yaml"), "--set", f"model.weights={getattr(evil, kind)}",
                 "--run-dir", str(tmp_path / "r")])
    _one_line_error(capsys, code, 1, "no layer of small_cnn matches a layer name and shape in the file")
    assert not marker.exists()


@pytest.mark.parametrize("command, only, file", [
    ("compress", ["--stage", "pruned", "--force"], "train/model.keras"),  # the trained model, an HDF5 renamed
    ("compress", ["--stage", "pruned_qat", "--force"], "compress/pruned.keras"),  # an earlier stage's model
    ("export", ["--variant", "float32"], "train/model.keras"),
    ("export", ["--variant", "pruned_qat_int8"], "compress/pruned_qat.h5"),  # a QAT stage, loaded in tfmot's scope
])
def test_run_models_read_by_compress_and_export(run_dir, marker, capsys, command, only, file):
    code = main([command, str(run_dir), *only])
    _one_line_error(capsys, code, 1, f"{run_dir / file}: {LAMBDA}")
    assert not marker.exists()
    assert not list(run_dir.glob("export/*.tflite"))


@pytest.mark.parametrize("name, file", [("train", "train/model.keras"), ("pruned_qat", "compress/pruned_qat.h5")])
def test_run_load_model(run_dir, marker, name, file):
    from edgecls.recipe import load_recipe
    from edgecls.run import Run

    with pytest.raises(ModelError, match=LAMBDA.replace("(", r"\(").replace(")", r"\)")) as err:
        Run(run_dir).load_model(load_recipe(run_dir / "recipe.yaml"), name)
    assert f"{run_dir / file}: layer 'boom'" in str(err.value)
    assert not marker.exists()


# --- other code carriers and bad files: each refused in one line --------------------------------------


def _config(keras, model, keras_format: bool) -> dict:
    return keras.saving.serialize_keras_object(model) if keras_format else json.loads(model.to_json())


@pytest.mark.parametrize("keras_format", [False, True], ids=["h5", "keras"])
def test_a_lambda_deep_inside_nested_models_and_wrappers(keras, keras_format):
    inner = keras.Sequential([keras.layers.TimeDistributed(keras.layers.Lambda(lambda t: t * 2, name="deep"))],
                             name="inner")
    seq = keras.Input((4, 3))
    model = keras.Model(seq, keras.layers.Dense(2)(keras.layers.Flatten()(inner(seq))))
    with pytest.raises(ModelError, match="x: layer 'deep' is a Lambda"):
        check_config(_config(keras, model, keras_format), what="x", keras_format=keras_format)


def test_a_tf_op_layer_is_refused(keras, tmp_path):
    """TFOpLambda holds no bytecode but calls the TF function its config names (tf.io.gfile.makedirs would do)."""
    from edgecls._tf import tf

    image = keras.Input((4,))
    model = keras.Model(image, tf.math.abs(image))
    path = _save(model, tmp_path / "op.h5")
    with pytest.raises(ModelError, match=r"layer 'tf.math.abs' is a TFOpLambda \(calls a TensorFlow function"):
        load_keras_model(path, what="model.backbone")


def test_a_custom_layer_class_is_refused(keras, tmp_path):
    @keras.saving.register_keras_serializable(package="edgecls_tests")
    class Doubler(keras.layers.Layer):
        def call(self, x):
            return x * 2

    image = keras.Input((4,))
    path = _save(keras.Model(image, Doubler(name="twice")(image)), tmp_path / "custom.keras")
    with pytest.raises(ModelError, match="layer 'twice' is a Doubler, not a tf_keras built-in or tfmot layer"):
        load_keras_model(path, what="model.backbone")


def _dense_model(keras):
    image = keras.Input((4,), name="image")
    return keras.Model(image, keras.layers.Dense(2, name="fc")(image))


@pytest.mark.parametrize("edit, text", [
    (lambda fc: fc["config"]["kernel_initializer"].update(module="os"), "layer 'fc' names the Python module 'os'"),
    (lambda fc: fc["config"].update(activation={"module": "builtins", "class_name": "function", "config": "eval",
                                                "registered_name": "function"}),
     "layer 'fc' names the Python builtin 'eval'"),
    (lambda fc: fc["config"].update(function=["4wEAAAA=", None, None], function_type="lambda"),
     "layer 'fc' holds a serialized Python lambda"),
    (lambda fc: fc["config"].update(activation={"class_name": "__lambda__", "config": {"code": "4wEAAAA="}}),
     "layer 'fc' holds a serialized Python lambda"),
])
def test_code_anywhere_in_a_keras_config_is_refused(keras, edit, text):
    config = _config(keras, _dense_model(keras), True)
    edit(next(layer for layer in config["config"]["layers"] if layer["config"]["name"] == "fc"))
    with pytest.raises(ModelError, match=text):
        check_config(config, what="x", keras_format=True)


def test_bad_files_get_one_line(keras, tmp_path):
    junk = tmp_path / "junk.keras"
    junk.write_bytes(b"not a model")
    weights = tmp_path / "only.weights.h5"
    _dense_model(keras).save_weights(str(weights))
    no_config = tmp_path / "empty.keras"
    with zipfile.ZipFile(no_config, "w") as zf:
        zf.writestr("metadata.json", "{}")
    broken = tmp_path / "broken.keras"
    with zipfile.ZipFile(broken, "w") as zf:
        zf.writestr("config.json", "{not json")
    cases = {junk: "neither a .keras zip nor HDF5", weights: "an HDF5 file of weights only",
             no_config: "a zip without config.json", broken: "its config is not JSON",
             tmp_path: "cannot be read: Is a directory"}
    for path, text in cases.items():
        with pytest.raises(ModelError) as err:
            load_keras_model(path, what="model.backbone")
        assert str(err.value).startswith(f"model.backbone: {path}: not a loadable Keras model (") and text in str(
            err.value), str(err.value)
        assert "\n" not in str(err.value)


# --- real models still load -------------------------------------------------------------------------------


def test_every_registered_model_passes_the_check(keras):
    """No false positives: each registered architecture's config, as HDF5 and as .keras hold it."""
    for info in list_models():
        options = {"width": 0.25} if "width" in info.options else {}
        if "depth" in info.options:  # fewer blocks build faster; the layer classes are the same
            options["depth"] = 1 if info.family in ("small_cnn", "vgg", "vit") else 0.1  # a count or a multiplier
        keras.backend.clear_session()  # names and graph state of earlier models slow each build down
        model = create(info.name, 3, (32, 32, 3), **options)
        for keras_format in (False, True):
            check_config(_config(keras, model, keras_format), what=info.name, keras_format=keras_format)


def test_a_keras_zip_named_h5_loads_by_its_content(keras, tmp_path):
    model = create("lenet5", 3, (8, 8, 1))
    path = tmp_path / "model.h5"
    shutil.copyfile(_save(model, tmp_path / "model.keras"), path)
    loaded = load_keras_model(path, what="model.backbone")
    x = np.random.default_rng(0).random((4, 8, 8, 1), dtype=np.float32)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6)


def test_a_qat_h5_saved_as_compress_saves_it_loads_quantized(keras, tmp_path):
    from edgecls._tf import tfmot
    from edgecls.compress import quantize
    from edgecls.recipe.schema import QuantizeOptions

    assert get_info("small_cnn").qat
    qat, _ = quantize.apply(create("small_cnn", 3, (8, 8, 1)), QuantizeOptions(preserve="sparsity"), total_steps=1)
    path = tmp_path / "qat.h5"
    with tfmot().quantization.keras.quantize_scope(), warnings.catch_warnings():  # as compress/stages.py saves it
        warnings.simplefilter("ignore")
        qat.save(str(path), include_optimizer=False)
    loaded = load_keras_model(path, what="compress/qat.h5", quantized=True)
    assert {"QuantizeLayer", "QuantizeWrapperV2"} <= {type(layer).__name__ for layer in loaded.layers}
    x = np.random.default_rng(0).random((4, 8, 8, 1), dtype=np.float32)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), qat.predict(x, verbose=0), atol=1e-6)
    with pytest.raises(ModelError, match=r"compress/qat.h5: .*: not a loadable Keras model \(.*QuantizeLayer"):
        load_keras_model(path, what="compress/qat.h5")  # outside tfmot's scope: one line, not a traceback
