"""Occlusion sensitivity in the runtime: the map points at the region the model reads, the command writes a panel
and the heatmap per image (also from the zipapp), and bad input is one line."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from edgecls.errors import UsageError
from edgecls.runtime.errors import ImageError, RuntimeModelError
from edgecls.runtime.explain import occlusion_map, overlay, panel
from tests.runtime.conftest import INNER, run_runtime

SIDE = 16  # the region model's input: it reads only the top-left 8 x 8 quadrant


@pytest.fixture(scope="module")
def region_model(tmp_path_factory):
    """A real .tflite model whose output depends only on the top-left quadrant: mean brightness there -> class 0."""
    if INNER:
        pytest.skip("builds a model with TensorFlow: in the main environment only")
    from edgecls._tf import keras, tf

    inputs = keras.Input((SIDE, SIDE, 3))
    z = keras.layers.Cropping2D(((0, SIDE // 2), (0, SIDE // 2)))(inputs)
    z = keras.layers.GlobalAveragePooling2D()(z)
    dense = keras.layers.Dense(2)
    z = keras.layers.Softmax()(dense(z))
    dense.set_weights([np.array([[0.01, 0.0]] * 3, np.float32), np.array([-4.0, 0.0], np.float32)])
    blob = tf.lite.TFLiteConverter.from_keras_model(keras.Model(inputs, z)).convert()
    path = tmp_path_factory.mktemp("region") / "region.tflite"
    path.write_bytes(blob)
    return path


def _image(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 80, (SIDE, SIDE, 3), dtype=np.uint8)
    img[:SIDE // 2, :SIDE // 2] = rng.integers(180, 255, (SIDE // 2, SIDE // 2, 3), dtype=np.uint8)
    return img


def test_the_map_points_at_the_region_a_real_model_reads(region_model):
    from edgecls.runtime import Classifier

    clf = Classifier.from_file(region_model, num_threads=1, require_labels=False)
    for seed in range(3):
        img = _image(seed)
        occ = occlusion_map(lambda x: clf.predict_pixels(x, 64), img, patch=3, stride=1)
        assert occ.target == 0 and 0.6 < occ.score < 0.99 and occ.heatmap.shape == (SIDE, SIDE)
        assert occ.heatmap.dtype == np.float32 and (occ.patch, occ.stride) == (3, 1)
        y, x = np.unravel_index(occ.heatmap.argmax(), occ.heatmap.shape)
        assert y < SIDE // 2 and x < SIDE // 2, (y, x)
        # Patches that never touch the quadrant change nothing: far from it the map is exactly zero.
        assert np.all(occ.heatmap[SIDE // 2 + 2:, :] == 0) and np.all(occ.heatmap[:, SIDE // 2 + 2:] == 0)
        assert occ.heatmap[:SIDE // 2, :SIDE // 2].min() > 0


def test_occlusion_with_a_numpy_predict_defaults_and_batches():
    """Any predict works; every pixel is covered (the last positions touch the far edges); batches do not matter."""
    calls = []

    def predict(x):
        calls.append(len(x))
        s = x[:, 20:30, 5:15].astype(float).mean(axis=(1, 2, 3)) / 255  # reads one box of a 40 x 34 image
        return np.stack([s, 1 - s], axis=1)

    img = np.full((40, 34, 3), 30, np.uint8)
    img[20:30, 5:15] = 220  # the fill (the mean colour) is darker: hiding the box lowers class 0
    occ = occlusion_map(predict, img, batch=7)
    assert occ.patch == round(34 / 6) == 6 and occ.stride == 3 and occ.target == 0
    assert max(calls[1:]) == 7 and calls[0] == 1
    again = occlusion_map(predict, img, batch=1000)
    assert np.array_equal(occ.heatmap, again.heatmap)
    y, x = np.unravel_index(occ.heatmap.argmax(), occ.heatmap.shape)
    assert 20 - 6 < y < 30 + 6 and 5 - 6 < x < 15 + 6
    assert occ.heatmap[:10].max() == 0 and occ.heatmap[-5:].max() == 0  # rows whose patches miss the box
    other = occlusion_map(predict, img, target=1, patch=4, stride=4)
    assert other.target == 1 and other.heatmap.max() <= 1e-7 < -other.heatmap.min()  # hiding helps class 1

    def one_at_a_time(x):  # a model whose batch cannot grow (a fixed Reshape): the interpreter refuses
        if len(x) > 1:
            raise RuntimeModelError("cannot resize the input to a batch")
        return predict(x)

    calls.clear()
    single = occlusion_map(one_at_a_time, img, batch=7)
    assert np.array_equal(single.heatmap, occ.heatmap) and calls.count(7) == 0 and set(calls) == {1}


def test_bad_arguments():
    img = np.zeros((12, 12, 3), np.uint8)

    def predict(x):
        return np.full((len(x), 2), 0.5)

    for kwargs, words in (({"patch": 13}, "--patch must be a whole number from 1 to 12"),
                          ({"patch": 0}, "--patch"), ({"patch": 4, "stride": 5}, "--stride must be"),
                          ({"target": 2}, "target")):
        with pytest.raises(UsageError, match=words):
            occlusion_map(predict, img, **kwargs)
    with pytest.raises(ImageError, match="uint8"):
        occlusion_map(predict, img.astype(np.float32))
    with pytest.raises(ImageError, match="heatmap"):
        overlay(img, np.zeros((5, 5)))


def test_overlay_and_panel():
    img = np.zeros((8, 10, 1), np.uint8)
    heat = np.zeros((8, 10), np.float32)
    heat[2, 3] = 1.0
    over = overlay(img, heat)
    assert over.shape == (8, 10, 3) and over.dtype == np.uint8
    assert over[2, 3].sum() > over[0, 0].sum()  # the hot pixel is brighter than a cold one
    assert np.array_equal(overlay(img, heat * 5), over)  # scaled to the map's maximum
    p = panel(img, heat, min_height=64)
    assert p.shape[0] == 64 and p.shape[2] == 3 and p.shape[1] == 8 * (10 + 1 + 10)


# ---------------------------------------------------------------------------------------------- command

def _bad_file(folder):
    bad = folder / "broken.jpg"
    bad.write_bytes(b"not an image")
    return bad


def test_explain_command_end_to_end(rt, tmp_path):
    bad = _bad_file(tmp_path)
    out = tmp_path / "maps"
    images = [str(rt.images / "blob_0.jpg"), str(rt.images / "hstripes_1.png"), str(bad),
              str(rt.images / "vstripes_2.npy")]
    proc = run_runtime("explain", str(rt.float), *images, "--out", str(out), "--json", "--mean", "127.5",
                       "--std", "127.5", "--labels", str(rt.labels_txt), "--stride", "2")
    assert proc.returncode == 1
    errors = proc.stderr.strip().splitlines()
    assert len(errors) == 1 and errors[0].startswith("error: ") and str(bad) in errors[0], proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    truth = rt.expected["models"]["float.tflite"]
    assert [os.path.basename(r["image"]) for r in rows] == ["blob_0.jpg", "hstripes_1.png", "vstripes_2.npy"]
    for row in rows:
        assert row["index"] == truth[os.path.basename(row["image"])]["top1"]
        assert row["patch"] == 5 and row["stride"] == 2  # 32 x 40 input: round(32 / 6)
        heat = np.load(row["npy"])
        assert heat.shape == (32, 40) and heat.dtype == np.float32
        if row["png"]:
            from PIL import Image

            with Image.open(row["png"]) as im:
                assert im.size[1] >= 192 and im.size[0] > 2 * im.size[1]
    assert sorted(os.listdir(out)) == sorted(f"{s}-occlusion.{e}" for s in ("blob_0", "hstripes_1", "vstripes_2")
                                             for e in ("npy", "png"))
    text = run_runtime("explain", str(rt.float), str(rt.images / "blob_0.jpg"), "--out", str(out),
                       "--mean", "127.5", "--std", "127.5", "--labels", str(rt.labels_txt))
    assert text.returncode == 0 and "blob" in text.stdout and "blob_0-occlusion.png" in text.stdout, text.stderr


def test_explain_bad_patch_and_stride_are_usage_errors(rt, tmp_path):
    for args, words in ((["--patch", "33"], "--patch must be a whole number from 1 to 32"),
                        (["--patch", "0"], "--patch"), (["--patch", "4", "--stride", "5"], "--stride")):
        proc = run_runtime("explain", str(rt.float), str(rt.images / "blob_0.jpg"), "--out", str(tmp_path), *args)
        assert proc.returncode == 2 and proc.stderr.startswith("error: ") and words in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
    assert not list(tmp_path.iterdir())


def test_explain_from_the_zipapp(rt, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "-I", str(rt.pyz), "explain", str(rt.int8), str(rt.images / "blob_1.png"),
                           str(rt.images / "blob_1.png"), "--json", "--out", "maps"], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [os.path.basename(r["npy"]) for r in rows] == ["blob_1-occlusion.npy", "blob_1-2-occlusion.npy"]
    assert all((tmp_path / r["npy"]).exists() for r in rows)
