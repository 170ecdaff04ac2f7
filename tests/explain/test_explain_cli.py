"""`edgecls explain` end to end on the shared exported digits run (small_cnn, float32 + int8 variants)."""
from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest
from PIL import Image

from edgecls.cli import main
from edgecls.runtime.classifier import Classifier
from tests.bench.exported import copy_run
from tests.helpers import run_cli


@pytest.fixture(scope="module")
def images(run_dir, tmp_path_factory):
    """Three test digits as PNG files: two at the model's 8 px, one at 24 px (the runtime resizes it)."""
    folder = tmp_path_factory.mktemp("digits")
    data = np.load(run_dir / "export" / "test.npz")
    for i in range(3):
        img = Image.fromarray(data["pixels"][i])
        (img.resize((24, 24), Image.Resampling.NEAREST) if i == 2 else img).save(folder / f"d{i}.png")
    return folder


def _json_out(capsys) -> dict:
    return json.loads(capsys.readouterr().out)


def test_occlusion_end_to_end(run_dir, images, tmp_path):
    """The real command in a process, default --out (RUN/explain/ of a copy): panels, records, index."""
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    res = run_cli("explain", str(run), str(images), "--json")
    assert res.returncode == 0, res.stderr[-2000:]
    index = json.loads(res.stdout)
    out = run / "explain"
    assert index["method"] == "occlusion" and index["reference"] == "train" and index["complete"]
    assert list(index["variants"]) == ["train", "float32", "int8"] and index["images"] == 3
    labels = (run / "export" / "labels.txt").read_text().split()
    for i in range(3):
        record = json.loads((out / f"d{i}.json").read_text())
        assert record["image"].endswith(f"d{i}.png") and record["input_size"] == [8, 8]
        for name, v in record["variants"].items():
            assert -1.0 <= v["rank_correlation"] <= 1.0 and 0.0 <= v["top20_iou"] <= 1.0, (name, v)
            assert 0.0 < v["score"] <= 1.0 and v["label"] == labels[v["index"]]
        ref = record["variants"]["train"]
        assert ref["rank_correlation"] == 1.0 and ref["top20_iou"] == 1.0
        # Read and resized as the runtime does: the variant's own classify() of the file says the same.
        top = Classifier.from_file(run / "export" / "int8.tflite").classify(images / f"d{i}.png", top_k=1)[0]
        assert (record["variants"]["int8"]["label"], record["variants"]["int8"]["score"]) == \
            (top.label, pytest.approx(top.score, abs=1e-6))
        # float32 is the same network: the same map up to float rounding.
        assert record["variants"]["float32"]["rank_correlation"] > 0.95
        with Image.open(out / record["panel"]) as panel:
            panel.load()
            assert panel.width > 2.5 * panel.height  # the image and three maps side by side
    for name, mean in index["variants"].items():
        assert -1.0 <= mean["rank_correlation"] <= 1.0 and 0.0 <= mean["top20_iou"] <= 1.0
        assert mean["patch"] == 2 and mean["stride"] == 1  # the runtime's defaults for 8 px
    assert json.loads((out / "index.json").read_text()) == index


def test_gradcam_names_export_variants_by_their_keras_source(run_dir, images, tmp_path, capsys):
    code = main(["explain", str(run_dir), str(images / "d0.png"), "--method", "gradcam",
                 "--variants", "float32,int8", "--out", str(tmp_path), "--json"])
    assert code == 0
    index = _json_out(capsys)
    assert list(index["variants"]) == ["train", "float32", "int8"]
    for v in index["variants"].values():
        assert v["kind"] == "keras" and v["source"] == "train" and v["layer"] == "block3_relu"
        assert v["rank_correlation"] == 1.0  # one Keras model behind all three
    record = json.loads((tmp_path / "d0.json").read_text())
    assert record["variants"]["int8"]["gradient_of"] == "logits"
    assert (tmp_path / "d0.png").is_file()


def test_undecodable_image_is_one_line_and_the_rest_is_written(run_dir, images, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "earlier.json").write_text("{}")
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    code = main(["explain", str(run_dir), str(images / "d1.png"), str(bad), "--out", str(out)])
    assert code == 1
    errors = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "broken.png" in errors[0] and "cannot decode" in errors[0]
    assert (out / "d1.json").is_file() and (out / "d1.png").is_file()
    assert (out / "earlier.json").read_text() == "{}"
    index = json.loads((out / "index.json").read_text())
    assert not index["complete"] and [f["image"] for f in index["failed"]] == [str(bad)]


@pytest.mark.parametrize("args, code, message", [
    (["--method", "gradcam", "--layer", "nope"], 2,
     r"--layer: model '\w+' has no layer named 'nope'; feature layers \(last \d of \d+\): .*block3_relu"),
    (["--method", "gradcam", "--layer", "logits"], 2, "layer 'logits' .* has no 4-D feature map output"),
    (["--layer", "block3_relu"], 2, "--layer .* goes with --method gradcam"),
    (["--variants", "float32,fp8"], 2, "no exported variant named 'fp8'; variants: float32, int8"),
    (["--method", "gradcam", "--variants", "int9"], 2, "'int9' is neither 'train', a compress stage"),
    (["--method", "saliency"], 2, "--method must be one of occlusion, gradcam"),
])
def test_bad_options_are_one_line(run_dir, images, tmp_path, capsys, args, code, message):
    assert main(["explain", str(run_dir), str(images / "d0.png"), "--out", str(tmp_path), *args]) == code
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    assert re.search(message, err[0]), err[0]
    assert not (tmp_path / "index.json").exists()


def test_gradcam_without_the_keras_model(run_dir, images, tmp_path, capsys):
    """A copy of export/ alone (no train/model.keras): Grad-CAM of a variant needs its Keras source."""
    copy = copy_run(run_dir, tmp_path / "copy")
    code = main(["explain", str(copy), str(images / "d0.png"), "--method", "gradcam", "--variants", "int8"])
    assert code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: --method gradcam needs the Keras model {copy / 'train' / 'model.keras'} of variant "
                   "int8 (its source 'train'), and it is missing: Grad-CAM reads a Keras model's gradients"]
    # Occlusion compares with the same float model, so it says so too.
    assert main(["explain", str(copy), str(images / "d0.png")]) == 1
    assert "the float Keras model they came from" in capsys.readouterr().err
    assert not (copy / "explain").exists()
