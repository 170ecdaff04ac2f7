"""Helpers the tests import (`from tests.helpers import ...`): the repo's paths, the real CLI in a process."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ROOT / "recipes"


# The data section of the small digits recipes tests train (8x8 gray, 10 % validation, 20 % test).
DIGITS_DATA = """\
data:
  source: digits
  image_size: 8
  channels: 1
  normalize: {mean: [0.5], std: [0.5]}
  splits: {validation: 0.1, test: 0.2}
"""


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 600):
    """Run the real `edgecls` command in a fresh process; returns CompletedProcess with text output."""
    return subprocess.run([sys.executable, "-m", "edgecls", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


# --- MediaPipe Tasks, the real package, in its own venv ---------------------------------------------

# mediapipe 1.2.2 pins absl-py~=2.3 and tensorflow-model-optimization 0.8.1 pins absl-py~=1.2, so
# MediaPipe cannot share the main venv: it runs in its own (.venv-mediapipe), in a subprocess.
MEDIAPIPE_VENV_HINT = (
    "mediapipe is importable neither here nor in .venv-mediapipe (it cannot share this venv: mediapipe 1.2.2 "
    "needs absl-py~=2.3, tensorflow-model-optimization 0.8.1 pins absl-py~=1.2). Create it with: "
    "python3 -m venv .venv-mediapipe && .venv-mediapipe/bin/pip install mediapipe==1.2.2 "
    "(or point EDGECLS_MEDIAPIPE_PYTHON at a python that has mediapipe)"
)

CLASSIFY = r"""
import json, sys
import numpy as np
import mediapipe as mp
from mediapipe.tasks.python.core.base_options import BaseOptions
from mediapipe.tasks.python.vision import ImageClassifier, ImageClassifierOptions

results = {}
for name, (path, image) in json.load(sys.stdin).items():
    try:
        with open(path, "rb") as fh:
            options = ImageClassifierOptions(base_options=BaseOptions(model_asset_buffer=fh.read()), max_results=1)
        with ImageClassifier.create_from_options(options) as classifier:
            pixels = np.load(image) if isinstance(image, str) else np.full((24, 32, 3), image, np.uint8)
            image = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(pixels))
            head = classifier.classify(image).classifications[0]
        top = head.categories[0]
        results[name] = {"label": top.category_name, "index": top.index, "score": top.score, "head": head.head_name}
    except Exception as err:  # a model MediaPipe refuses: report its message
        results[name] = {"error": f"{type(err).__name__}: {err}"}
print(json.dumps({"version": mp.__version__, "results": results}))
"""


def mediapipe_python() -> str | None:
    candidates = [os.environ.get("EDGECLS_MEDIAPIPE_PYTHON"), ROOT / ".venv-mediapipe" / "bin" / "python"]
    if importlib.util.find_spec("mediapipe") is not None:
        candidates.insert(0, sys.executable)
    for python in filter(None, candidates):
        if Path(python).exists() and subprocess.run(
            [str(python), "-c", "import mediapipe.tasks.python.vision"], capture_output=True, timeout=120
        ).returncode == 0:
            return str(python)
    return None


def mediapipe_classify(python: str, cases: dict) -> dict:
    """Top-1 of MediaPipe's ImageClassifier per case: {name: (model path, [r, g, b] or a .npy image path)}."""
    run = subprocess.run([python, "-c", CLASSIFY], input=json.dumps(cases), capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1])["results"]
