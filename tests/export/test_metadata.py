"""TFLite metadata: written by edgecls.export.metadata, read back without TensorFlow, loaded by LiteRT and MediaPipe.

The models are built with hand-set weights so that the answer is known: the
input is normalised to [-1, 1] ((pixel - 127.5) / 127.5, the metadata's
NormalizationOptions), a 1x1 convolution passes the channels through, and the
dense layer scores each class by its channel's mean: a red image is "red".
"""
from __future__ import annotations

import dataclasses
import io
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from edgecls._vendor import metadata_schema as mfb
from edgecls._vendor import tflite_schema as fb
from edgecls.export.metadata import add_metadata
from edgecls.errors import EdgeclsError
from edgecls.runtime.metadata import (InvalidMetadata, MetadataError, ModelMetadata, read_associated_files,
                                      read_metadata)
from edgecls.runtime.modelfile import ModelFileError, read_model_summary
from tests.helpers import MEDIAPIPE_VENV_HINT, ROOT, mediapipe_classify, mediapipe_python

LABELS = ("red", "green", "blue")
META = ModelMetadata(
    name="colours", version="3", description="Tells red, green and blue apart.", labels=LABELS,
    mean=(127.5,), std=(127.5,), resize="crop", extra={"recipe": "colours", "mode": "int8", "source": {"seed": 1}},
)
RGB = {"red": (230, 20, 30), "green": (10, 200, 40), "blue": (30, 40, 220), "white": (250, 250, 250), "black": (5, 5, 5)}
VARIANTS = ("float32", "int8")  # int8: full integer, uint8 input and output

# The TF converter warns that uint8 input statistics come from the representative data; that is intended.
pytestmark = pytest.mark.filterwarnings("ignore:Statistics for quantized inputs:UserWarning")


def _convert(tf, model, quantize: bool) -> bytes:
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if quantize:
        shape = (1, *model.input_shape[1:])

        def representative():
            # The extremes pin the input range to [-1, 1]: uint8 pixels p then mean (p - 127.5) / 127.5.
            yield [np.full(shape, -1.0, np.float32)]
            yield [np.full(shape, 1.0, np.float32)]
            rng = np.random.default_rng(0)
            for _ in range(8):
                yield [rng.uniform(-1, 1, shape).astype(np.float32)]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = converter.inference_output_type = tf.uint8
    return converter.convert()


@pytest.fixture(scope="module")
def models() -> dict[str, bytes]:
    from edgecls._tf import keras, tf

    const = keras.initializers.Constant

    def classifier(channels: int, mix: np.ndarray, dense: np.ndarray, softmax: bool):
        inputs = keras.Input((8, 8, channels))
        kernel = const(mix.reshape(1, 1, *mix.shape))
        x = keras.layers.Conv2D(mix.shape[-1], 1, use_bias=False, kernel_initializer=kernel)(inputs)
        x = keras.layers.GlobalAveragePooling2D()(x)
        x = keras.layers.Dense(dense.shape[1], kernel_initializer=const(dense))(x)
        return keras.Model(inputs, keras.layers.Softmax()(x) if softmax else x)

    colours = classifier(3, np.eye(3), 10 * np.eye(3), softmax=True)
    # Grayscale as edgecls exports it for MediaPipe: RGB input, grey computed in the graph; dark/bright by brightness.
    gray_rgb = classifier(3, np.array([[0.299], [0.587], [0.114]]), np.array([[-10.0, 10.0]]), softmax=False)
    gray_1ch = classifier(1, np.ones((1, 1)), np.array([[-10.0, 10.0]]), softmax=False)
    return {
        "float32": _convert(tf, colours, quantize=False),
        "int8": _convert(tf, colours, quantize=True),
        "gray_rgb": _convert(tf, gray_rgb, quantize=False),
        "gray_1ch": _convert(tf, gray_1ch, quantize=False),
    }


def _run(model: bytes, inputs: list[np.ndarray]) -> list[np.ndarray]:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=model)
    interpreter.allocate_tensors()
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    results = []
    for x in inputs:
        interpreter.set_tensor(inp["index"], x.astype(inp["dtype"]))
        interpreter.invoke()
        results.append(interpreter.get_tensor(out["index"]).copy())
    return results


def _image(rgb: tuple[int, int, int], dtype) -> np.ndarray:
    pixels = np.full((1, 8, 8, 3), rgb, np.float32)
    return pixels.astype(np.uint8) if dtype == np.uint8 else (pixels - 127.5) / 127.5


# --- round trip --------------------------------------------------------------------------


@pytest.mark.parametrize("variant", VARIANTS)
def test_metadata_round_trips(models, variant):
    model = add_metadata(models[variant], META)
    assert read_metadata(model) == META
    assert read_associated_files(model) == {"labels.txt": b"red\ngreen\nblue\n"}


@pytest.mark.parametrize("meta", [
    ModelMetadata(name="imagenet-style", mean=(123.675, 116.28, 103.53), std=(58.395, 57.12, 57.375), output_kind="logits"),
    ModelMetadata(name="g", labels=("dark", "bright"), color_space="GRAYSCALE", mean=(0.0,), std=(255.0,),
                  output_kind="logits"),
], ids=["rgb-3-values-no-labels", "grayscale-1-channel"])
def test_every_field_round_trips(models, meta):
    # float32 storage of 123.675 and friends reads back as the decimal that was written.
    model = add_metadata(models["gray_1ch" if meta.color_space == "GRAYSCALE" else "float32"], meta)
    assert read_metadata(model) == meta
    assert read_associated_files(model) == ({"labels.txt": b"dark\nbright\n"} if meta.labels else {})


def test_metadata_is_laid_out_as_mediapipe_reads_it(models):
    model = add_metadata(models["int8"], META)
    m = fb.Model.GetRootAs(model, 0)
    entries = {m.Metadata(i).Name(): m.Metadata(i).Buffer() for i in range(m.MetadataLength())}
    raw = m.Buffers(entries[b"TFLITE_METADATA"]).DataAsNumpy().tobytes()
    assert mfb.ModelMetadata.ModelMetadataBufferHasIdentifier(raw, 0)
    mm = mfb.ModelMetadataT.InitFromPackedBuf(raw, 0)
    assert mm.minParserVersion == b"1.5.0"  # CustomMetadata is a 1.5.0 field
    (sg,) = mm.subgraphMetadata
    (image,), (output,) = sg.inputTensorMetadata, sg.outputTensorMetadata
    assert image.content.contentPropertiesType == mfb.ContentProperties.ImageProperties
    assert image.content.contentProperties.colorSpace == mfb.ColorSpaceType.RGB
    assert list(image.processUnits[0].options.mean) == [127.5]
    assert output.name == b"probabilities"  # MediaPipe's head name
    assert output.content.contentPropertiesType == mfb.ContentProperties.FeatureProperties
    assert not any(u.optionsType == mfb.ProcessUnitOptions.ScoreCalibrationOptions for u in output.processUnits or [])
    (labels,) = output.associatedFiles
    assert (labels.name, labels.type) == (b"labels.txt", mfb.AssociatedFileType.TENSOR_AXIS_LABELS)
    # The zip after the flatbuffer: stored, offsets from the start of the file (MetadataPopulator's layout).
    with zipfile.ZipFile(io.BytesIO(model)) as zf:
        (info,) = zf.infolist()
    assert info.compress_type == zipfile.ZIP_STORED
    assert model[info.header_offset:info.header_offset + 4] == b"PK\x03\x04"
    # schema.fbs asks for 16-byte aligned buffer data; the repack keeps it.
    for i in range(m.BuffersLength()):
        buf = m.Buffers(i)
        if not buf.DataIsNone():
            assert buf._tab.Vector(buf._tab.Offset(4)) % 16 == 0


@pytest.mark.parametrize("variant", VARIANTS)
def test_model_runs_as_before(models, variant):
    raw = models[variant]
    model = add_metadata(raw, META)
    dtype = np.uint8 if variant == "int8" else np.float32
    rng = np.random.default_rng(1)
    inputs = [_image(RGB[c], dtype) for c in LABELS] + [
        _image(tuple(rng.integers(0, 256, 3)), dtype) for _ in range(3)
    ]
    before, after = _run(raw, inputs), _run(model, inputs)
    for b, a in zip(before, after):
        np.testing.assert_array_equal(a, b)
    assert [int(np.argmax(out)) for out in after[:3]] == [0, 1, 2]  # the model is right: red, green, blue
    summary_before, summary_after = read_model_summary(raw), read_model_summary(model)
    for key in ("inputs", "outputs", "ops", "float_ops", "subgraphs"):
        assert summary_after[key] == summary_before[key]


def test_adding_metadata_again_replaces_it(models):
    first = add_metadata(models["int8"], dataclasses.replace(META, name="old", labels=("a", "b", "c"), extra={"old": 1}))
    again = add_metadata(first, META)
    assert read_metadata(again) == META
    assert read_associated_files(again) == {"labels.txt": b"red\ngreen\nblue\n"}
    assert read_model_summary(again)["metadata"].count("TFLITE_METADATA") == 1
    assert again == add_metadata(models["int8"], META)  # nothing of the first metadata is left


def test_model_without_metadata(models):
    assert read_metadata(models["float32"]) is None
    assert read_associated_files(models["float32"]) == {}
    assert "TFLITE_METADATA" not in read_model_summary(models["float32"])["metadata"]


def test_model_summary(models, tmp_path):
    path = tmp_path / "m.tflite"
    path.write_bytes(add_metadata(models["int8"], META))
    summary = read_model_summary(path)
    assert summary["size"] == path.stat().st_size and summary["subgraphs"] == 1
    (inp,), (out,) = summary["inputs"], summary["outputs"]
    assert inp["shape"] == [1, 8, 8, 3] and inp["shape_signature"] == [-1, 8, 8, 3]
    assert inp["dtype"] == "uint8" and inp["scale"] == pytest.approx(2 / 255, rel=1e-3) and inp["zero_point"] in (127, 128)
    assert out["dtype"] == "uint8" and out["shape"] == [1, 3]
    assert {"CONV_2D", "MEAN", "FULLY_CONNECTED", "SOFTMAX"} <= set(summary["ops"])
    assert summary["float_ops"] == {}
    assert "TFLITE_METADATA" in summary["metadata"]
    floats = read_model_summary(models["float32"])
    assert floats["inputs"][0]["dtype"] == "float32" and floats["inputs"][0]["scale"] is None
    assert floats["float_ops"] == floats["ops"]


# --- errors ------------------------------------------------------------------------------


def test_damaged_models_raise_one_error_naming_the_file(models, tmp_path):
    good = add_metadata(models["float32"], META)
    with zipfile.ZipFile(io.BytesIO(good)) as zf:
        flatbuffer_size = zf.infolist()[0].header_offset  # the labels zip starts where the flatbuffer ends
    noise = np.random.default_rng(2).integers(0, 256, 4000).astype(np.uint8).tobytes()
    cases = {"empty": b"", "text": b"not a model at all", "random": noise,
             "random-with-tflite-id": noise[:4] + b"TFL3" + noise[8:]}
    cases.update({f"cut-at-{n}": good[:n] for n in [*range(0, len(good), 97), flatbuffer_size + 10, len(good) - 1]})
    for name, data in cases.items():
        path = tmp_path / f"{name}.tflite"
        path.write_bytes(data)
        # A cut in the labels zip leaves the flatbuffer whole: the summary still reads, the metadata does not.
        readers = (read_metadata, read_associated_files) + ((read_model_summary,) if len(data) < flatbuffer_size else ())
        for read in readers:
            # read_model_summary raises ModelFileError, of which MetadataError is a kind.
            with pytest.raises(ModelFileError if read is read_model_summary else MetadataError) as err:
                read(path)
            assert str(path) in str(err.value), (name, read.__name__)
        with pytest.raises(MetadataError, match="<model: "):
            read_metadata(data)


def test_metadata_error_is_a_one_line_user_error():
    with pytest.raises(MetadataError) as err:
        read_metadata(b"\0" * 64)
    assert isinstance(err.value, ValueError) and isinstance(err.value, EdgeclsError)
    assert "\n" not in str(err.value)
    with pytest.raises(MetadataError, match="model file not found"):
        read_metadata(Path("/nonexistent/model.tflite"))


@pytest.mark.parametrize("kwargs, message", [
    ({"color_space": "BGR"}, "color_space must be one of RGB, GRAYSCALE"),
    ({"output_kind": "scores"}, "output_kind must be one of"),
    ({"resize": "pad"}, "resize must be one of stretch, crop"),
    ({"mean": (1.0, 2.0), "std": (1.0, 1.0)}, "1 or 3 values"),
    ({"mean": (1.0,), "std": (1.0, 2.0, 3.0)}, "1 or 3 values"),
    ({"std": (0.0,)}, "non-zero"),
    ({"labels": ("a", "b\nc")}, "one-line"),
])
def test_model_metadata_validates(kwargs, message):
    with pytest.raises(InvalidMetadata, match=message) as err:
        ModelMetadata(name="x", **kwargs)
    # The project's own error (the CLI prints it as one line, exit 1), still a ValueError for older callers.
    assert isinstance(err.value, EdgeclsError) and isinstance(err.value, ValueError)
    assert "\n" not in str(err.value)


def test_writer_refuses_what_does_not_fit_the_model(models):
    cases = {"2 labels given but output .* has 3 classes": dataclasses.replace(META, labels=("a", "b")),
             "3 channels but color_space GRAYSCALE needs 1": dataclasses.replace(META, color_space="GRAYSCALE"),
             "ModelMetadata.extra must be JSON-serialisable": dataclasses.replace(META, extra={"when": object()})}
    for message, meta in cases.items():
        with pytest.raises(InvalidMetadata, match=message) as err:
            add_metadata(models["float32"], meta)
        assert isinstance(err.value, EdgeclsError) and "\n" not in str(err.value)
    with pytest.raises(ModelFileError, match="not a TFLite model"):
        add_metadata(b"PK\x03\x04 a zip, not a model", META)


def test_reader_and_writer_import_no_tensorflow(models, tmp_path):
    path = tmp_path / "m.tflite"
    path.write_bytes(models["int8"])
    code = (
        "import sys; from pathlib import Path\n"
        "from edgecls.export.metadata import add_metadata\n"
        "from edgecls.runtime.metadata import ModelMetadata, read_metadata, read_model_summary\n"
        f"p = Path({str(path)!r})\n"
        "p.write_bytes(add_metadata(p.read_bytes(), ModelMetadata(name='x', labels=('r', 'g', 'b'))))\n"
        "assert read_metadata(p).labels == ('r', 'g', 'b'); read_model_summary(p)\n"
        "heavy = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'tf_keras', 'keras', 'jax')]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=120)


# --- MediaPipe Tasks ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def mediapipe(models, tmp_path_factory) -> dict:
    python = mediapipe_python()
    if python is None:
        pytest.skip(MEDIAPIPE_VENV_HINT)
    folder = tmp_path_factory.mktemp("mediapipe")
    gray = ModelMetadata(name="gray", labels=("dark", "bright"), mean=(127.5,), std=(127.5,), output_kind="logits")
    files = {
        "float32": add_metadata(models["float32"], META),
        "int8": add_metadata(models["int8"], META),
        "float32-no-metadata": models["float32"],
        "int8-no-metadata": models["int8"],
        # uint8 input is fed raw pixels: the NormalizationOptions should not matter.
        "int8-other-normalization": add_metadata(models["int8"], dataclasses.replace(META, mean=(0.0,), std=(1.0,))),
        "gray-rgb-input": add_metadata(models["gray_rgb"], gray),
        "gray-1ch-grayscale": add_metadata(models["gray_1ch"], dataclasses.replace(gray, color_space="GRAYSCALE")),
    }
    for name, data in files.items():
        (folder / f"{name}.tflite").write_bytes(data)
    colours = {"float32": LABELS, "int8": LABELS, "int8-other-normalization": LABELS, "int8-no-metadata": ("red",),
               "float32-no-metadata": ("red",), "gray-rgb-input": ("white", "black"), "gray-1ch-grayscale": ("white",)}
    cases = {f"{name}:{c}": (str(folder / f"{name}.tflite"), RGB[c]) for name, cs in colours.items() for c in cs}
    return mediapipe_classify(python, cases)


@pytest.mark.parametrize("variant", VARIANTS)
def test_mediapipe_image_classifier_names_the_class(mediapipe, variant):
    for colour in LABELS:
        result = mediapipe[f"{variant}:{colour}"]
        assert "error" not in result, result
        assert (result["label"], result["head"]) == (colour, "probabilities")
        assert result["score"] > 0.9


def test_mediapipe_needs_normalization_for_float_input_only(mediapipe):
    assert "requires specifying NormalizationOptions" in mediapipe["float32-no-metadata:red"]["error"]
    # uint8 input without metadata runs, with no label names; with any NormalizationOptions it is the same.
    assert (mediapipe["int8-no-metadata:red"]["index"], mediapipe["int8-no-metadata:red"]["label"]) == (0, None)
    for colour in LABELS:
        assert mediapipe[f"int8-other-normalization:{colour}"]["label"] == colour


def test_mediapipe_grayscale_models_need_rgb_input(mediapipe):
    # RGB input with the grey conversion in the graph, metadata saying RGB: works.
    assert mediapipe["gray-rgb-input:white"]["label"] == "bright"
    assert mediapipe["gray-rgb-input:black"]["label"] == "dark"
    assert mediapipe["gray-rgb-input:white"]["head"] == "logits"
    # GRAYSCALE metadata (on a 1-channel input) is refused outright.
    assert "Only RGB color space is supported" in mediapipe["gray-1ch-grayscale:white"]["error"]
