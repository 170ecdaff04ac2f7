"""Classifier: the same answers as TensorFlow's interpreter, settings from metadata/labels.txt/code, batches."""
from __future__ import annotations

import io
import shutil

import numpy as np
import pytest

from edgecls.runtime import Classifier, Prediction
from edgecls.runtime.errors import DependencyMissing, ImageError, LabelsMissing, RuntimeModelError, UsageError
from tests.runtime.conftest import NORM
from tests.runtime.fixtures import CLASSES, INPUT_HW


def _check_against_tf(clf: Classifier, rows: dict, images, *, exact: bool) -> None:
    for fname, row in rows.items():
        preds = clf.classify(images / fname, top_k=len(CLASSES))
        assert preds[0].index == row["top1"], fname
        scores = np.zeros(len(CLASSES))
        for p in preds:
            scores[p.index] = p.score
        np.testing.assert_allclose(scores, row["scores"], atol=1e-6 if exact else 1e-2, err_msg=fname)


@pytest.mark.parametrize("name", ["float", "int8", "logits", "gray"])
def test_same_answers_as_tensorflow_interpreter(rt, name):
    clf = Classifier.from_file(getattr(rt, name), num_threads=1, **NORM)
    rows = rt.expected["models"][f"{name}.tflite"]
    assert clf.labels == CLASSES  # from labels.txt beside the model
    # Quantized outputs may differ by one step between XNNPACK versions; floats agree to float precision.
    _check_against_tf(clf, rows, rt.images, exact=name != "int8")
    truth = rt.expected["truth"]
    assert sum(CLASSES[r["top1"]] == truth[f] for f, r in rows.items()) >= len(rows) - 1  # the model is right


def test_int8_raw_outputs_match_exactly_on_the_same_backend_family(rt):
    clf = Classifier.from_file(rt.int8, num_threads=1, **NORM)
    rows = rt.expected["models"]["int8.tflite"]
    assert clf.input_dtype == np.uint8 and clf.runner.output.dtype == np.int8
    for fname, row in rows.items():
        raw = clf.runner.run(clf.preprocess(rt.images / fname))[0]
        assert np.abs(raw.astype(int) - np.asarray(row["raw"])).max() <= 1, fname


@pytest.mark.parametrize("name", ["meta", "meta_logits"])
def test_metadata_gives_labels_normalization_resize_and_output_kind(meta, name):
    model = meta.folder / f"{name}.tflite"
    alone = meta.folder / "alone"
    alone.mkdir(exist_ok=True)
    shutil.copy(model, alone / model.name)  # no labels.txt beside it: everything comes from the metadata
    clf = Classifier.from_file(alone / model.name, num_threads=1)
    assert clf.metadata is not None and clf.labels == CLASSES
    assert clf.mean == (127.5,) * 3 and clf.std == (127.5,) * 3
    assert (clf.resize, clf.output_kind) == (("crop", "probabilities") if name == "meta" else ("stretch", "logits"))
    _check_against_tf(clf, meta.expected["models"][f"{name}.tflite"], meta.images, exact=name != "meta")


def test_metadata_without_flatbuffers_says_what_to_install(rt, has_meta, monkeypatch):
    if not has_meta:
        pytest.skip("no metadata test models")
    import sys

    for mod in [m for m in sys.modules if m.startswith(("edgecls.runtime.metadata", "edgecls.runtime.modelfile",
                                                         "edgecls._vendor", "flatbuffers"))]:
        monkeypatch.delitem(sys.modules, mod)
    import edgecls.runtime

    for attr in ("metadata", "modelfile"):  # `from edgecls.runtime import metadata` looks here first
        monkeypatch.delattr(edgecls.runtime, attr, raising=False)
    monkeypatch.setitem(sys.modules, "flatbuffers", None)  # import flatbuffers -> ImportError
    with pytest.raises(DependencyMissing, match=r"meta\.tflite: the model carries TFLite metadata; reading it "
                                                r"needs the flatbuffers package \(pip install flatbuffers\)"):
        Classifier.from_file(rt.folder / "meta.tflite")
    # A model without metadata does not need it.
    assert Classifier.from_file(rt.float, **NORM).classify(rt.images / "blob_0.jpg", top_k=1)[0].label == "blob"


def test_arguments_override_metadata(meta):
    clf = Classifier.from_file(meta.folder / "meta_logits.tflite", labels=list("abcd"), resize="crop",
                               mean=[0.0], std=[1.0])
    assert clf.labels == tuple("abcd") and clf.resize == "crop" and clf.mean == (0.0,) * 3
    assert clf.output_kind == "logits"  # not given: still the metadata's


def test_labels_from_code_and_from_a_file(rt, tmp_path):
    lone = tmp_path / "m.tflite"
    shutil.copy(rt.float, lone)
    clf = Classifier.from_file(lone, labels=["a", "b", "c", "d"], **NORM)
    assert clf.classify(rt.images / "blob_0.jpg", top_k=1)[0].label == "d"
    (tmp_path / "names.txt").write_text("w\nx\ny\nz\n\n")
    assert Classifier.from_file(lone, labels=tmp_path / "names.txt").labels == tuple("wxyz")


def test_no_labels_anywhere_is_one_clear_error(rt, tmp_path):
    lone = tmp_path / "m.tflite"
    shutil.copy(rt.float, lone)
    with pytest.raises(LabelsMissing, match=r"m\.tflite: no labels.*labels\.txt.*--labels"):
        Classifier.from_file(lone)
    clf = Classifier.from_file(lone, require_labels=False)
    assert clf.labels == ("0", "1", "2", "3")


def test_wrong_number_of_labels(rt, tmp_path):
    with pytest.raises(RuntimeModelError, match="3 labels for a model with 4 outputs"):
        Classifier.from_file(rt.float, labels=["a", "b", "c"])


def test_every_kind_of_input_gives_the_same_answer(rt):
    from PIL import Image

    clf = Classifier.from_file(rt.float, **NORM)
    path = rt.images / "checker_0.jpg"
    data = path.read_bytes()
    pil = Image.open(io.BytesIO(data))
    arr = np.asarray(Image.open(path).convert("RGB"))
    answers = [clf.classify(src, top_k=2) for src in (path, str(path), data, pil, arr)]
    assert all(a == answers[0] for a in answers)
    assert answers[0][0] == Prediction("checker", 2, answers[0][0].score)


def test_batches_resize_the_input_tensor(rt):
    clf = Classifier.from_file(rt.int8, **NORM)
    files = sorted(p for p in rt.images.iterdir())
    singles = [clf.classify(f, top_k=2) for f in files]
    assert clf.classify_batch(files, top_k=2) == singles
    assert clf.runner._engine._shape[0] == len(files)
    assert clf.classify_batch(files, top_k=2, batch_size=5) == singles
    assert clf.classify(files[0], top_k=2) == singles[0]  # back to a batch of one
    probs = clf.predict(np.concatenate([clf.preprocess(f) for f in files[:3]]))
    assert probs.shape == (3, 4) and np.allclose(probs.sum(1), 1, atol=0.02)


def test_classify_iter_decodes_ahead_and_reports_bad_inputs(rt, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    clf = Classifier.from_file(rt.float, **NORM)
    files = sorted(rt.images.iterdir())
    srcs = files[:3] + [bad] + files[3:]
    out = list(clf.classify_iter(srcs, top_k=1, workers=2, errors="return"))
    assert [s for s, _ in out] == srcs
    assert isinstance(out[3][1], ImageError) and "bad.jpg: cannot decode image" in str(out[3][1])
    assert [r for _, r in out[:3]] == [clf.classify(f, top_k=1) for f in files[:3]]
    with pytest.raises(ImageError):
        list(clf.classify_iter(srcs, top_k=1))


@pytest.mark.parametrize("model", ["float", "int8"])
def test_parallel_interpreters_give_the_same_answers_in_order(rt, tmp_path, model):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    clf = Classifier.from_file(getattr(rt, model), num_threads=2, **NORM)
    files = sorted(rt.images.iterdir())
    srcs = (files[:2] + [bad] + files[2:]) * 3
    out = list(clf.classify_iter(srcs, top_k=3, interpreters=2, errors="return"))
    assert [s for s, _ in out] == srcs
    assert all(isinstance(r, ImageError) for s, r in out if s == bad)
    want = {f: clf.classify(f, top_k=3) for f in files}
    for s, r in out:
        if s != bad:  # the same interpreter arithmetic on every copy: equal scores, not just labels
            assert [(p.index, p.label) for p in r] == [(p.index, p.label) for p in want[s]]
            np.testing.assert_allclose([p.score for p in r], [p.score for p in want[s]], atol=1e-6)
    with pytest.raises(ImageError):
        list(clf.classify_iter(srcs, interpreters=2))
    for bad in (0, 100000):
        with pytest.raises(UsageError, match=rf"interpreters must be a whole number from 1 to 256, got {bad}"):
            list(clf.classify_iter(srcs, interpreters=bad))
    with pytest.raises(UsageError, match="workers must be a whole number from 1 to 256"):
        list(clf.classify_iter(srcs, workers=257))


def test_predict_checks_the_tensor(rt):
    clf = Classifier.from_file(rt.int8, **NORM)
    h, w = INPUT_HW
    with pytest.raises(ImageError, match=r"takes \(N, 32, 40, 3\) uint8"):
        clf.predict(np.zeros((1, w, h, 3), np.uint8))
    with pytest.raises(ImageError, match="dtype int32"):
        clf.predict(np.zeros((1, h, w, 3), np.int32))
    # Normalized floats are quantized for a quantized model; a (H, W, C) tensor is a batch of one.
    x = clf.preprocess(rt.images / "blob_1.png")
    floats = (x.astype(np.float32) - clf.runner.input.zero_point) * clf.runner.input.scale
    np.testing.assert_allclose(clf.predict(floats[0]), clf.predict(x), atol=1e-6)


def test_top_k_order_and_bounds(rt):
    clf = Classifier.from_file(rt.float, **NORM)
    probs = np.array([0.1, 0.4, 0.4, 0.1], np.float32)
    assert [p.index for p in clf.top_k(probs, 3)] == [1, 2, 0]  # ties: lower index first
    assert len(clf.top_k(probs, 99)) == 4
    with pytest.raises(UsageError):
        clf.top_k(probs, 0)


def test_output_kind_auto_softmaxes_logits(rt):
    clf = Classifier.from_file(rt.logits, **NORM)
    assert clf.output_kind == "auto"
    probs = clf.predict(clf.preprocess(rt.images / "blob_0.jpg"))
    assert probs.min() >= 0 and abs(probs.sum() - 1) < 1e-5
    forced = Classifier.from_file(rt.logits, output_kind="probabilities", **NORM)
    raw = forced.predict(forced.preprocess(rt.images / "blob_0.jpg"))
    assert abs(raw.sum() - 1) > 0.1  # taken as they are


def test_normalization_table_matches_the_formula(rt):
    clf = Classifier.from_file(rt.int8, mean=[10.0, 20.0, 30.0], std=[2.0, 3.0, 4.0])
    px = np.random.default_rng(0).integers(0, 256, (*INPUT_HW, 3), dtype=np.uint8)
    info = clf.runner.input
    x = (px.astype(np.float32) - np.array([10, 20, 30], np.float32)) / np.array([2, 3, 4], np.float32)
    q = x / np.float32(info.scale)
    want = np.clip(np.sign(q) * np.floor(np.abs(q) + 0.5) + info.zero_point, 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(clf.normalize(px)[0], want)
    with pytest.raises(UsageError, match="mean has 2 values"):
        Classifier.from_file(rt.float, mean=[1.0, 2.0], require_labels=False)


def test_gray_model_takes_one_channel(rt):
    clf = Classifier.from_file(rt.gray, **NORM)
    assert clf.channels == 1
    rgb = np.asarray(np.random.default_rng(1).integers(0, 256, (50, 60, 3)), np.uint8)
    assert clf.preprocess(rgb).shape == (1, *INPUT_HW, 1)
