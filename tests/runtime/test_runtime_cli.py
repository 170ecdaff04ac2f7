"""The runtime's command line: a table or JSON lines; every bad input is one line and a non-zero exit code."""
from __future__ import annotations

import io
import json
import os
import re
import shutil
import textwrap

import numpy as np
import pytest

from edgecls.runtime.cli import classify_paths, expand_inputs
from edgecls.runtime.errors import LabelsMissing, RuntimeModelError
from tests.runtime.conftest import ROOT, run_runtime
from tests.runtime.fixtures import CLASSES

NORM_ARGS = ["--mean", "127.5", "--std", "127.5"]


def _one_error_line(proc, pattern: str) -> None:
    assert proc.returncode != 0, proc.stdout
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ") and "Traceback" not in proc.stderr
    assert re.search(pattern, lines[0]), lines[0]


def test_classify_table_and_json(rt):
    proc = run_runtime("classify", str(rt.int8), str(rt.images), "--top-k", "2", "--threads", "1", *NORM_ARGS)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["IMAGE", "RANK", "INDEX", "SCORE", "LABEL"]
    files = sorted(rt.expected["truth"])
    assert len(lines) == 1 + 2 * len(files)
    firsts = [ln.split() for ln in lines[1::2]]
    assert [f[0].rsplit("/", 1)[-1] for f in firsts] == files
    truth = rt.expected["truth"]
    assert sum(f[4] == truth[f[0].rsplit("/", 1)[-1]] for f in firsts) >= len(files) - 1
    assert proc.stderr == ""  # the interpreters' INFO lines are hidden

    proc = run_runtime("classify", str(rt.float), str(rt.images / "blob_0.jpg"), str(rt.images / "hstripes_2.npy"),
                       "--json", "--top-k", "3", *NORM_ARGS)
    rows = [json.loads(ln) for ln in proc.stdout.splitlines()]
    assert [r["image"].rsplit("/", 1)[-1] for r in rows] == ["blob_0.jpg", "hstripes_2.npy"]
    assert [r["predictions"][0]["label"] for r in rows] == ["blob", "hstripes"]
    assert set(rows[0]["predictions"][0]) == {"label", "index", "score"} and len(rows[0]["predictions"]) == 3


def test_classify_with_parallel_interpreters_prints_the_same(rt, tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8 not a jpeg")
    args = ["classify", str(rt.int8), str(rt.images), str(bad), "--json", "--threads", "2", *NORM_ARGS]
    one, two = run_runtime(*args), run_runtime(*args, "--interpreters", "2")
    assert one.returncode == two.returncode == 1  # the broken file, in both
    assert one.stdout == two.stdout and len(two.stdout.splitlines()) == len(rt.expected["truth"])
    _one_error_line(two, r"broken\.jpg: cannot decode image")


def test_classify_with_metadata_needs_no_options(meta):
    proc = run_runtime("classify", str(meta.folder / "meta_logits.tflite"), str(meta.images / "checker_1.png"),
                       "--json")
    assert json.loads(proc.stdout)["predictions"][0]["label"] == "checker", proc.stderr


def test_missing_model(rt, tmp_path):
    _one_error_line(run_runtime("classify", str(tmp_path / "nope.tflite"), str(rt.images)), r"model file not found")


def test_truncated_model(rt, tmp_path):
    bad = tmp_path / "cut.tflite"
    bad.write_bytes(rt.float.read_bytes()[:3000])
    _one_error_line(run_runtime("classify", str(bad), str(rt.images)), r"cut\.tflite: corrupt or truncated")


def test_not_a_tflite_file(rt, tmp_path):
    bad = tmp_path / "model.tflite"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    _one_error_line(run_runtime("classify", str(bad), str(rt.images)), r"not a TFLite model")


def test_model_without_metadata_or_labels(rt, tmp_path):
    shutil.copy(rt.float, tmp_path / "m.tflite")
    _one_error_line(run_runtime("classify", str(tmp_path / "m.tflite"), str(rt.images)),
                    r"m\.tflite: no labels: .* --labels FILE")
    (tmp_path / "names.txt").write_text("\n".join(CLASSES))
    ok = run_runtime("classify", str(tmp_path / "m.tflite"), str(rt.images / "blob_0.jpg"), "--labels",
                     str(tmp_path / "names.txt"), "--json", *NORM_ARGS)
    assert json.loads(ok.stdout)["predictions"][0]["label"] == "blob"


def test_image_that_cannot_be_decoded(rt, tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes((rt.images / "blob_0.jpg").read_bytes()[:200])
    proc = run_runtime("classify", str(rt.float), str(bad), *NORM_ARGS)
    _one_error_line(proc, r"broken\.jpg: cannot decode image")
    assert proc.returncode == 1
    # Among good ones: the others are classified, the bad one is one line, the exit code says so.
    proc = run_runtime("classify", str(rt.float), str(rt.images / "blob_0.jpg"), str(bad), "--json", *NORM_ARGS)
    assert proc.returncode == 1 and len(proc.stdout.splitlines()) == 1
    _one_error_line(proc, r"broken\.jpg")


def test_wrong_channel_count(rt, tmp_path):
    np.save(tmp_path / "two.npy", np.zeros((20, 20, 2), np.uint8))
    _one_error_line(run_runtime("classify", str(rt.float), str(tmp_path / "two.npy"), *NORM_ARGS),
                    r"two\.npy|array of shape \(20, 20, 2\): expected an image")


def test_missing_image_and_empty_folder(rt, tmp_path):
    _one_error_line(run_runtime("classify", str(rt.float), str(tmp_path / "gone.png"), *NORM_ARGS),
                    r"gone\.png: no such file")
    (tmp_path / "empty").mkdir()
    _one_error_line(run_runtime("classify", str(rt.float), str(tmp_path / "empty"), *NORM_ARGS),
                    r"no image files in this folder")


def test_usage_errors_exit_2(rt):
    proc = run_runtime("classify", str(rt.float))
    _one_error_line(proc, "give at least one image")
    assert proc.returncode == 2
    proc = run_runtime("classify", str(rt.float), "x.jpg", "--top-k", "0")
    _one_error_line(proc, r"--top-k must be a whole number of 1 or more, got 0$")
    assert proc.returncode == 2


@pytest.mark.parametrize("command", ["classify", "info", "bench", "eval"])
@pytest.mark.parametrize("threads", ["100000", "0", "257", "two"])
def test_threads_out_of_range_exit_2_before_loading(rt, command, threads):
    # 100000 interpreter threads segfaulted the interpreter: refused before it is built, in every command.
    extra = {"classify": [str(rt.images)], "eval": ["--data", "none.npz"]}.get(command, [])
    proc = run_runtime(command, str(rt.float), *extra, "--threads", threads)
    _one_error_line(proc, rf"--threads must be a whole number from 1 to 256, got '?{threads}'?$")
    assert proc.returncode == 2 and proc.stdout == ""


def test_classify_paths_in_process(rt):
    out, err = io.StringIO(), io.StringIO()
    code = classify_paths(str(rt.float), [str(rt.images)], top_k=1, as_json=True, out=out, err=err,
                          mean=(127.5,), std=(127.5,))
    assert code == 0 and err.getvalue() == ""
    assert len(out.getvalue().splitlines()) == len(rt.expected["truth"])
    with pytest.raises(RuntimeModelError):
        classify_paths(str(rt.folder / "missing.tflite"), [str(rt.images)])
    lone = rt.folder / "lonely"
    lone.mkdir(exist_ok=True)
    shutil.copy(rt.float, lone / "m.tflite")
    with pytest.raises(LabelsMissing):
        classify_paths(str(lone / "m.tflite"), [str(rt.images)])


def test_expand_inputs_walks_folders_sorted(tmp_path):
    for name in ("b/2.png", "b/1.JPG", "a.npy", "notes.txt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    assert [p[len(str(tmp_path)) + 1:] for p in expand_inputs([str(tmp_path)])] == ["a.npy", "b/1.JPG", "b/2.png"]


def test_bench_json(rt):
    proc = run_runtime("bench", str(rt.float), "--threads", "1", "--runs", "20", "--warmup", "2", "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["runs"] == 20 and result["warmup"] == 2 and result["threads"] == 1
    assert 0 < result["p50_ms"] <= result["p90_ms"] <= result["p99_ms"] <= result["max_ms"]
    for key in ("mean_ms", "init_ms", "peak_rss_mb", "fps", "backend", "input_dtype"):
        assert key in result
    text = run_runtime("bench", str(rt.int8), "--runs", "5")
    assert text.returncode == 0 and "p99_ms" in text.stdout


def test_info_and_backends(rt):
    proc = run_runtime("info", str(rt.int8), "--json")
    info = json.loads(proc.stdout)
    assert info["input"]["dtype"] == "uint8" and info["classes"] == 4 and info["metadata"] is False
    proc = run_runtime("backends")
    assert proc.returncode == 0 and "selected" in proc.stdout


# ---------------------------------------------------------------- --camera, with a stand-in OpenCV module

FAKE_CV2 = textwrap.dedent('''
    """A stand-in for OpenCV's VideoCapture: frames from FRAMES_NPY, in BGR like a camera's."""
    import os
    import numpy as np

    class VideoCapture:
        def __init__(self, source):
            self.source, self.count = source, 0
            self.frame = np.load(os.environ["FRAMES_NPY"])[..., ::-1].copy()

        def isOpened(self):
            return self.source != 9

        def read(self):
            if self.source == 8 or self.count >= 50:
                return False, None
            self.count += 1
            return True, self.frame

        def release(self):
            pass
''')


@pytest.fixture
def fake_cv2(tmp_path, rt):
    (tmp_path / "cv2.py").write_text(FAKE_CV2)
    return {"PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}", "FRAMES_NPY": str(rt.images / "vstripes_2.npy")}


def test_camera_prints_top1_and_fps(rt, fake_cv2):
    env = fake_cv2
    proc = run_runtime("classify", str(rt.float), "--camera", "0", "--frames", "4", *NORM_ARGS, env=env)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 4 and all("vstripes" in ln and ln.endswith("fps") for ln in lines)
    proc = run_runtime("classify", str(rt.float), "--camera", "0", "--frames", "2", "--json", *NORM_ARGS, env=env)
    rows = [json.loads(ln) for ln in proc.stdout.splitlines()]
    assert [r["frame"] for r in rows] == [1, 2] and rows[0]["label"] == "vstripes" and rows[1]["fps"] > 0
    _one_error_line(run_runtime("classify", str(rt.float), "--camera", "9", *NORM_ARGS, env=env),
                    r"camera 9: cannot open")
    _one_error_line(run_runtime("classify", str(rt.float), "--camera", "8", *NORM_ARGS, env=env),
                    r"camera 8: opened, but gave no frame")


def test_camera_without_opencv(rt, tmp_path):
    (tmp_path / "cv2.py").write_text("raise ImportError('No module named cv2')\n")
    proc = run_runtime("classify", str(rt.float), "--camera", "0", *NORM_ARGS,
                       env={"PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"})
    _one_error_line(proc, r"--camera needs OpenCV: pip install opencv-python-headless")


def test_parse_floats():
    from edgecls.runtime.errors import UsageError
    from edgecls.runtime.options import parse_floats

    assert parse_floats("127.5") == (127.5,) and parse_floats("1,2,3") == (1.0, 2.0, 3.0)
    assert parse_floats(None) is None
    for bad in ("1,2", "x", "", "nan", "1,inf,2"):
        with pytest.raises(UsageError, match="one or three comma-separated numbers"):
            parse_floats(bad, "--mean")
