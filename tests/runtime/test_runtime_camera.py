"""``classify --camera picamera2`` against a stand-in Picamera2 module, through the real runtime CLI.

The stand-in behaves as Picamera2 does with the "RGB888" format: each pixel is [B, G, R] in memory. The
model tells colours apart (classes red, green, blue; the mean colour through a fixed dense layer), so a
frame whose channels the runtime failed to reverse is classified as the wrong colour.
"""
from __future__ import annotations

import json
import os
import re
import textwrap

import numpy as np
import pytest

from tests.runtime.conftest import ROOT, run_runtime

COLOURS = ("red", "green", "blue")

FAKE_PICAMERA2 = textwrap.dedent('''
    """A stand-in for picamera2.Picamera2: solid red, green, blue frames, [B, G, R] per pixel like "RGB888"."""
    import os
    import numpy as np

    RGB = [(210, 40, 30), (30, 200, 50), (40, 30, 220)]


    class Picamera2:
        def __init__(self):
            if os.environ.get("FAKE_PICAM") == "none":
                raise IndexError("list index out of range")  # what Picamera2() raises with no camera
            self.count, self.size, self.started = 0, None, False

        def create_preview_configuration(self, main=None, **kwargs):
            return {"main": dict(main or {})}

        def configure(self, config):
            main = config["main"]
            if main.get("format") != "RGB888":
                raise ValueError(f"this stand-in knows only RGB888, got {main.get('format')}")
            self.size = tuple(main["size"])

        def start(self):
            if os.environ.get("FAKE_PICAM") == "busy":
                raise RuntimeError("Failed to start camera: Device or resource busy")
            self.started = True

        def capture_array(self, name="main"):
            assert self.started and name == "main"
            w, h = self.size
            rgb = RGB[self.count % 3]
            self.count += 1
            frame = np.empty((h, w, 3), np.uint8)
            frame[...] = rgb[::-1]  # B, G, R in memory
            return frame

        def stop(self):
            self.started = False

        def close(self):
            pass
''')


@pytest.fixture(scope="module")
def colour_model(tmp_path_factory) -> str:
    """A float .tflite (32x40 RGB, raw pixels) whose top-1 is the frame's dominant colour; labels.txt beside it."""
    pytest.importorskip("tensorflow", reason="builds its test model with TensorFlow (the main .venv)")
    from edgecls._tf import keras, tf

    folder = tmp_path_factory.mktemp("colour-model")
    inputs = keras.Input((32, 40, 3))
    mean = keras.layers.GlobalAveragePooling2D()(inputs)
    dense = keras.layers.Dense(3, activation="softmax")
    model = keras.Model(inputs, dense(mean))
    # logit_c = (channel c - mean of the other two) / 20: the dominant channel wins.
    dense.set_weights([(np.eye(3, dtype=np.float32) * 1.5 - 0.5) / 20, np.zeros(3, np.float32)])
    (folder / "colour.tflite").write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    (folder / "labels.txt").write_text("\n".join(COLOURS) + "\n")
    return str(folder / "colour.tflite")


@pytest.fixture
def fake_picamera2(tmp_path):
    (tmp_path / "picamera2").mkdir()
    (tmp_path / "picamera2" / "__init__.py").write_text(FAKE_PICAMERA2)
    return {"PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"}


def _one_error_line(proc, pattern: str) -> None:
    assert proc.returncode != 0, proc.stdout
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in proc.stderr, proc.stderr
    assert re.search(pattern, lines[0]), lines[0]


def test_picamera2_frames_are_classified_in_rgb_order(colour_model, fake_picamera2):
    proc = run_runtime("classify", colour_model, "--camera", "picamera2", "--frames", "3", env=fake_picamera2)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert [ln.split()[2] for ln in lines] == list(COLOURS), proc.stdout  # frame N  LABEL  SCORE  FPS fps
    assert all(ln.endswith("fps") for ln in lines) and proc.stderr == ""
    proc = run_runtime("classify", colour_model, "--camera", "picamera2", "--frames", "4", "--json",
                       env=fake_picamera2)
    rows = [json.loads(ln) for ln in proc.stdout.splitlines()]
    assert [r["label"] for r in rows] == [*COLOURS, "red"] and [r["frame"] for r in rows] == [1, 2, 3, 4]


@pytest.mark.parametrize("mode, pattern", [
    ("busy", r"^error: camera picamera2: cannot open it \(Failed to start camera: Device or resource busy\); "
             r"is the Camera Module connected"),
    ("none", r"^error: camera picamera2: cannot open it \(list index out of range\)"),
])
def test_picamera2_that_does_not_open(colour_model, fake_picamera2, mode, pattern):
    proc = run_runtime("classify", colour_model, "--camera", "picamera2", "--frames", "2",
                       env={**fake_picamera2, "FAKE_PICAM": mode})
    _one_error_line(proc, pattern)
    assert proc.returncode == 1 and proc.stdout == ""


@pytest.mark.parametrize("missing", ["picamera2", "libcamera"])
def test_picamera2_missing_names_the_install(colour_model, tmp_path, missing):
    # picamera2 itself missing, or installed by pip without libcamera's bindings (its first import).
    (tmp_path / "picamera2").mkdir()
    (tmp_path / "picamera2" / "__init__.py").write_text(f"raise ModuleNotFoundError(\"No module named '{missing}'\")\n")
    proc = run_runtime("classify", colour_model, "--camera", "picamera2",
                       env={"PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"})
    _one_error_line(proc, rf"--camera picamera2 needs Picamera2 \(No module named '{missing}'\): on Raspberry Pi OS "
                          r"`sudo apt install python3-picamera2`.* pip install edgecls\[picamera\]")
    assert proc.returncode == 1


def test_picamera2_that_does_not_import(colour_model, tmp_path):
    """apt's picamera2 stack against pip's numpy 2 fails at import with a ValueError, not an ImportError."""
    (tmp_path / "picamera2").mkdir()
    (tmp_path / "picamera2" / "__init__.py").write_text(
        "raise ValueError('numpy.dtype size changed, may indicate binary incompatibility')\n")
    proc = run_runtime("classify", colour_model, "--camera", "picamera2",
                       env={"PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"})
    _one_error_line(proc, r"--camera picamera2: Picamera2 is installed but does not import \(numpy.dtype size "
                          r"changed.*keep the system's numpy")
    assert proc.returncode == 1


def test_camera_sources_in_process(fake_picamera2, monkeypatch):
    import sys

    from edgecls.runtime.camera import OpenCVFrames, Picamera2Frames, camera_frames

    monkeypatch.syspath_prepend(fake_picamera2["PYTHONPATH"].split(os.pathsep)[0])
    monkeypatch.delitem(sys.modules, "picamera2", raising=False)
    with camera_frames(" PiCamera2 ") as cam:
        assert isinstance(cam, Picamera2Frames)
        frames = [cam.read() for _ in range(3)]
    assert [f.shape for f in frames] == [(480, 640, 3)] * 3 and all(f.dtype == np.uint8 for f in frames)
    assert [tuple(f[0, 0]) for f in frames] == [(210, 40, 30), (30, 200, 50), (40, 30, 220)]
    assert cam._cam is None  # closed
    if "cv2" in sys.modules or _has_cv2():
        assert isinstance(camera_frames(0), OpenCVFrames)


def _has_cv2() -> bool:
    import importlib.util

    return importlib.util.find_spec("cv2") is not None
