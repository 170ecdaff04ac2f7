"""``edgecls classify`` and ``edgecls info`` (the click CLI) on real .tflite models; bad input is one line.

The models are the runtime tests' (tests/runtime/fixtures.py: a tiny CNN
trained for seconds, converted to float32 and int8, with and without TFLite
metadata), with the answers of TensorFlow's own interpreter in expected.json.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from edgecls.cli import main
from tests.helpers import ROOT, run_cli
from tests.runtime.conftest import rt  # noqa: F401 - the fixture: models, images, expected answers
from tests.runtime.fixtures import CLASSES

NORM_ARGS = ["--mean", "127.5", "--std", "127.5"]


def _edgecls(capsys, *args: str) -> tuple[int, str, str]:
    code = main([*args])
    out, err = capsys.readouterr()
    return code, out, err


def _one_error_line(err: str, pattern: str) -> None:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err and re.search(pattern, lines[0]), lines[0]


# ---------------------------------------------------------------------------------------------- classify

def test_classify_prints_a_table_with_the_interpreters_answers(rt, capsys):
    code, out, err = _edgecls(capsys, "classify", str(rt.int8), str(rt.images), "--top-k", "2", "--threads", "1",
                              *NORM_ARGS)
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0].split() == ["IMAGE", "RANK", "INDEX", "SCORE", "LABEL"]
    files = sorted(rt.expected["truth"])
    assert len(lines) == 1 + 2 * len(files)
    firsts = {ln.split()[0].rsplit("/", 1)[-1]: ln.split() for ln in lines[1::2]}
    assert sorted(firsts) == files
    reference = rt.expected["models"]["int8.tflite"]  # tf.lite.Interpreter on independently preprocessed input
    assert sum(int(row[2]) == reference[f]["top1"] for f, row in firsts.items()) >= len(files) - 1
    assert all(row[4] == CLASSES[int(row[2])] for row in firsts.values())


def test_classify_json_with_the_models_metadata(rt, capsys):
    model = rt.folder / "meta.tflite"  # labels, normalization and resize policy come from the metadata
    code, out, _ = _edgecls(capsys, "classify", str(model), str(rt.images / "checker_1.png"),
                            str(rt.images / "vstripes_2.npy"), "--json", "--top-k", "3")
    rows = [json.loads(ln) for ln in out.splitlines()]
    assert code == 0 and [r["predictions"][0]["label"] for r in rows] == ["checker", "vstripes"]
    assert [len(r["predictions"]) for r in rows] == [3, 3]
    assert set(rows[0]["predictions"][0]) == {"label", "index", "score"}


def test_click_and_zipapp_clis_take_the_same_options_and_print_the_same(rt):
    args = ["classify", str(rt.int8), str(rt.images), "--json", "--top-k", "2", "--threads", "1", "--resize", "crop",
            "--output", "auto", *NORM_ARGS]
    ours = run_cli(*args, timeout=120)
    runtime = subprocess.run([sys.executable, "-m", "edgecls.runtime", *args], capture_output=True, text=True,
                             cwd=ROOT, timeout=120)
    assert ours.returncode == runtime.returncode == 0, ours.stderr + runtime.stderr
    assert ours.stdout == runtime.stdout and len(ours.stdout.splitlines()) == len(rt.expected["truth"])

    def flags(text: str) -> set[str]:
        return set(re.findall(r"^\s+(--[a-z][a-z-]*)", text, re.M)) - {"--help"}

    click_help = run_cli("classify", "--help", timeout=60).stdout
    argparse_help = subprocess.run([sys.executable, "-m", "edgecls.runtime", "classify", "--help"],
                                   capture_output=True, text=True, cwd=ROOT, timeout=60).stdout
    assert flags(click_help) == flags(argparse_help) and "--threads" in flags(click_help)
    assert "1 to 256" in click_help and "1 to 256" in argparse_help


@pytest.mark.parametrize("threads", ["100000", "0", "-3", "lots"])
def test_threads_out_of_range_is_one_line_and_exit_2_in_both_clis(rt, threads):
    # 100000 threads segfaulted the interpreter: refused before any model is loaded.
    for cmd in ([sys.executable, "-m", "edgecls"], [sys.executable, "-m", "edgecls.runtime"]):
        proc = subprocess.run([*cmd, "classify", str(rt.float), str(rt.images), f"--threads={threads}", *NORM_ARGS],
                              capture_output=True, text=True, cwd=ROOT, timeout=120)
        assert proc.returncode == 2 and proc.stdout == "", (cmd, proc.stderr)
        _one_error_line(proc.stderr, rf"--threads must be a whole number from 1 to 256, got '?{threads}'?$")


def test_missing_and_corrupt_model_files(rt, capsys, tmp_path):
    code, _, err = _edgecls(capsys, "classify", str(tmp_path / "gone.tflite"), str(rt.images))
    assert code == 1
    _one_error_line(err, r"gone\.tflite: model file not found")
    cut = tmp_path / "cut.tflite"
    cut.write_bytes(rt.float.read_bytes()[:3000])
    code, _, err = _edgecls(capsys, "classify", str(cut), str(rt.images), *NORM_ARGS)
    assert code == 1
    _one_error_line(err, r"cut\.tflite: corrupt or truncated")


def test_a_corrupt_image_is_one_line_and_the_others_are_classified(rt, capsys, tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes((rt.images / "blob_0.jpg").read_bytes()[:200])
    code, out, err = _edgecls(capsys, "classify", str(rt.float), str(rt.images / "blob_0.jpg"), str(bad),
                              str(tmp_path / "gone.png"), "--json", *NORM_ARGS)
    assert code == 1
    assert [json.loads(ln)["image"] for ln in out.splitlines()] == [str(rt.images / "blob_0.jpg")]
    lines = err.splitlines()
    assert len(lines) == 2 and all(ln.startswith("error: ") for ln in lines), err
    assert re.search(r"gone\.png: no such file", lines[0]) and re.search(r"broken\.jpg: cannot decode image", lines[1])


@pytest.mark.parametrize("args, pattern", [
    (["--mean", "1,2"], r"--mean takes one or three comma-separated numbers, got '1,2'"),
    (["--top-k", "0"], r"--top-k must be a whole number of 1 or more, got 0"),
    (["--camera", "0"], r"give either images or --camera, not both"),
    (["--workers", "100000"], r"--workers must be a whole number from 1 to 256"),
])
def test_usage_errors_exit_2(rt, capsys, args, pattern):
    code, out, err = _edgecls(capsys, "classify", str(rt.float), str(rt.images), *args)
    assert code == 2 and out == ""
    _one_error_line(err, pattern)


# ---------------------------------------------------------------------------------------------- info

def test_info_shows_tensors_quantization_and_metadata(rt, capsys):
    model = rt.folder / "meta.tflite"
    code, out, err = _edgecls(capsys, "info", str(model))
    assert code == 0 and err == ""
    assert out.startswith(f"{model}: {model.stat().st_size:,} bytes, 1 subgraph(s)")
    assert re.search(r"^  input  \S+: uint8 \[1, 32, 40, 3\]  scale [\d.e-]+ zero point \d+$", out, re.M), out
    assert re.search(r"^  output \S+: int8 \[1, 4\]  scale", out, re.M), out
    assert "metadata: meta.tflite v1; 4 labels (hstripes, vstripes, checker, blob); RGB, mean [127.5], std [127.5]; " \
           "output probabilities; resize crop" in out
    assert "float ops: none (fully integer)" in out and re.search(r"^  ops: .*CONV_2D x3", out, re.M)

    code, out, _ = _edgecls(capsys, "info", str(rt.float), "--json")
    data = json.loads(out)
    assert code == 0 and data["metadata"] is None and data["inputs"][0]["dtype"] == "float32"
    assert data["inputs"][0]["shape"] == [1, 32, 40, 3] and data["float_ops"]
    code, out, _ = _edgecls(capsys, "info", str(rt.float))
    assert code == 0 and "  metadata: none" in out.splitlines()


def test_info_bad_model_files_are_one_line(rt, capsys, tmp_path):
    cut = tmp_path / "cut.tflite"
    cut.write_bytes(rt.float.read_bytes()[:3000])
    text = tmp_path / "notes.tflite"
    text.write_text("not a model at all")
    cases = {str(tmp_path / "gone.tflite"): r"gone\.tflite: model file not found",
             str(tmp_path): r"is a directory, not a \.tflite model file",
             str(cut): r"cut\.tflite: corrupt or truncated TFLite model .*; export or copy it again",
             str(text): r"notes\.tflite: not a TFLite model"}
    for path, pattern in cases.items():
        code, out, err = _edgecls(capsys, "info", path)
        assert code == 1 and out == "", path
        _one_error_line(err, pattern)
