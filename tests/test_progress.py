"""Progress bars: drawn on stderr when it is a terminal, never otherwise, and never with --quiet / EDGECLS_QUIET.

Real processes under a pseudo-terminal (python's ``pty``, with a window size, as a terminal has):
``edgecls run`` on a tiny recipe draws the decoding (test-split evaluation, export's pixels), int8
calibration (which the converter runs with native stderr hidden) and bench bars; ``edgecls --quiet
bench`` on that run draws none. A numpy-only script through the real folder decoding checks the
pipe and EDGECLS_QUIET. The log lines stay whole: no bar is drawn into one.
"""
from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios
import textwrap
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import DIGITS_DATA, ROOT

BAR = "%|"  # tqdm's "  40%|████      | 2/5": what a drawn bar always contains

RECIPE = """\
name: digits-progress
description: digits, 1 epoch, one int8 variant (progress bar tests)
seed: 0
""" + DIGITS_DATA + """model:
  name: small_cnn
train:
  epochs: 1
  batch_size: 64
export:
  - {name: int8, source: train, mode: int8, input_type: uint8, output_type: uint8, representative_samples: 150}
"""

DEVICE = """\
name: tiny
description: this host, one thread, few runs (progress bar tests)
connect: local
threads: [1]
delegates: [xnnpack]
warmup: 1
runs: 5
"""

# Folder decoding through preprocess_numpy, the code evaluation and export run; numpy only.
SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    from edgecls.data.pipeline import preprocess_numpy
    from edgecls.data.sources import load_source

    examples = load_source("folder", {"path": sys.argv[1]})
    x = preprocess_numpy(examples, np.arange(len(examples)), image_size=(16, 16), channels=3, mean=[0.5], std=[0.5])
    print("decoded", x.shape[0])
""")


def run_on_pty(argv: list[str], env: dict | None = None, timeout: float = 300) -> tuple[int, str, str]:
    """Run ``argv`` with stderr on a pseudo-terminal (100 columns), stdout on a pipe: (code, stdout, stderr)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a new pty is 0 columns wide
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave, cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: every writer has closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    out = proc.stdout.read().decode()
    proc.stdout.close()
    return proc.wait(timeout=timeout), out, b"".join(chunks).decode(errors="replace")


def run_piped(argv: list[str], env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=300, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})


def bars(stderr: str, desc: str) -> list[str]:
    """The drawn states of the bar named ``desc``."""
    return [part for part in stderr.replace("\n", "\r").split("\r") if part.startswith(f"{desc}:") and BAR in part]


def assert_whole_log_lines(stderr: str) -> None:
    """What each line finally shows (after its last carriage return) is never a bar and a log line glued."""
    for line in stderr.replace("\r\n", "\n").split("\n"):
        shown = line.rsplit("\r", 1)[-1]
        assert BAR not in shown, repr(line)


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory) -> Path:
    """Two classes of 100 small PNGs each: more than one decoding chunk, decoded in a fraction of a second."""
    from PIL import Image

    root = tmp_path_factory.mktemp("progress-folder")
    rng = np.random.default_rng(0)
    for name in ("cats", "dogs"):
        (root / name).mkdir()
        for i in range(100):
            Image.fromarray(rng.integers(0, 255, (12, 12, 3), dtype=np.uint8)).save(root / name / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    """``edgecls run`` (train, export int8, bench) on a terminal, then ``edgecls --quiet bench`` of that run."""
    base = tmp_path_factory.mktemp("progress")
    (base / "digits.yaml").write_text(RECIPE)
    (base / "tiny.yaml").write_text(DEVICE)
    edgecls = [sys.executable, "-m", "edgecls"]
    run_dir, device = str(base / "run"), str(base / "tiny.yaml")
    done = {"run": run_on_pty([*edgecls, "run", str(base / "digits.yaml"), "--run-dir", run_dir, "--device", device,
                               "--explain-images", "0"])}
    done["quiet bench"] = run_on_pty([*edgecls, "--quiet", "bench", run_dir, "--device", device,
                                      "--explain-images", "0"])
    return done


def test_run_on_a_terminal_draws_decoding_calibration_and_bench_bars(runs):
    code, out, err = runs["run"]
    assert code == 0, err[-3000:]
    for desc in ("decoding", "int8 calibration", "bench tiny"):
        assert bars(err, desc), f"no {desc!r} bar in: {err[-3000:]!r}"
    assert_whole_log_lines(err)
    assert "bench: [2/2] int8 threads=1" in err  # the one-line log of each step is still there


def test_quiet_flag_draws_no_bar(runs):
    code, out, err = runs["quiet bench"]
    assert code == 0, err[-3000:]
    assert "bench: [2/2] int8 threads=1" in err and BAR not in err


def test_no_bar_off_a_terminal_or_with_edgecls_quiet(image_folder, tmp_path):
    (tmp_path / "script.py").write_text(SCRIPT)
    argv = [sys.executable, str(tmp_path / "script.py"), str(image_folder)]
    piped = run_piped(argv)
    assert piped.returncode == 0 and "decoded 200" in piped.stdout, piped.stderr
    assert BAR not in piped.stderr and "\r" not in piped.stderr
    code, out, err = run_on_pty(argv, env={"EDGECLS_QUIET": "1"})
    assert code == 0 and "decoded 200" in out
    assert BAR not in err and "\r" not in err.replace("\r\n", "\n")
    code, out, err = run_on_pty(argv)  # the same, on a terminal, draws it: the two above could fail
    assert code == 0 and bars(err, "decoding")


def test_progress_module_follows_quiet_and_the_environment(monkeypatch):
    from edgecls import progress

    class Terminal:
        def isatty(self):
            return True

        def write(self, text):
            pass

        def flush(self):
            pass

    monkeypatch.setattr(sys, "stderr", Terminal())
    monkeypatch.delenv("EDGECLS_QUIET", raising=False)
    try:
        assert progress.enabled()
        progress.set_quiet(True)
        assert not progress.enabled() and progress.bar(range(3)).disable
        progress.set_quiet(False)
        monkeypatch.setenv("EDGECLS_QUIET", "1")
        assert not progress.enabled()
    finally:
        progress.set_quiet(False)
