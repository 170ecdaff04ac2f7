"""The README's walk-through (folder -> ImageNet MobileNetV2 -> QAT int8 -> bench on a Pi over ssh), run as written.

The test reads the ```bash blocks between ``<!-- walkthrough -->`` and
``<!-- /walkthrough -->`` in README.md and runs each with bash, in order, in a
temporary folder laid out like the repository (``recipes/``, ``devices/`` and
``examples/`` link to the real ones), with this venv's ``python`` and
``edgecls`` first on PATH. Nothing is downloaded and no real Pi is needed:

- ``weights: imagenet``: keras looks in ``~/.keras/models/`` before it
  downloads. HOME is a temporary folder holding keras.applications'
  MobileNetV2 no-top file under the exact name keras asks for, made here
  with random convolutions; any download goes to a closed port. Random
  weights learn nothing in a test's few steps (MobileNetV2 needs thousands
  on these shapes), so the test does not ask for accuracy above chance; it
  asserts that what the Pi measured and printed is what the exported model
  gives on this host.
- The Pi: a real OpenSSH server on 127.0.0.1 (tests/devices/test_ssh_runner's
  fixture). After block 1 copies the device recipe, the test points it at
  that server (``host``, ``ssh_config``, ``python``: .venv-rt-litert, numpy +
  ai-edge-litert + Pillow, no TensorFlow) the way a user sets ``host:``, with
  one thread count and fewer timed runs.

What the test changes in the README's text is listed in SPEEDUPS (fewer,
32-px images; one epoch a phase; no post-training int8 variant; no occlusion
maps) and pi_address (the
Pi's address -> the test server's, its home -> a temporary folder); each
is asserted to be there, so a README edit that breaks one fails here.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.devices import test_ssh_runner
from tests.helpers import ROOT

sshd = test_ssh_runner.sshd  # the module-scoped OpenSSH server fixture, shared rather than copied
README = ROOT / "README.md"
BLOCK = re.compile(r"<!-- walkthrough -->\s*```bash\n(.*?)```\s*<!-- /walkthrough -->", re.S)
SEPARATOR = "\n# ---- next block ----\n"

PI = "pi@raspberrypi.local"
RUN = "edgecls run my-images.yaml --device my-pi.yaml"
SIZE = 32  # pixels: the test's data.image_size (the recipe's 96 px costs about 9x the compute)
SPEEDUPS = [  # (README text, what the test runs instead)
    ("make_image_folder.py data/my-images", f"make_image_folder.py data/my-images --count 160 --size {SIZE}"),
    ("{name: qat, kind: quantize, epochs: 5}", "{name: qat, kind: quantize, epochs: 1}"),
    # Post-training int8 is written like qat_int8 and covered by tests/export; converting it costs ~35 s here.
    ("  - {name: int8, source: train, mode: int8, input_type: uint8, output_type: uint8}", "#"),
    (RUN, RUN + f" --set data.image_size={SIZE} --set 'train.finetune=[{{epochs: 1, unfreeze: 0}}, "
                "{epochs: 1, unfreeze: all}]' --explain-images 0"),
]


def pi_address(pi_home: Path, ssh_config: Path) -> list[tuple[str, str]]:
    """The Pi's address -> the test's sshd (alias edgecls-test); the Pi's home -> ``pi_home``."""
    return [
        (f"ssh {PI} '", f"ssh -F {ssh_config} edgecls-test 'cd {pi_home} && "),
        # -O: scp's own protocol; the test's sshd runs no sftp subsystem, which scp uses by default
        ("scp -r ", f"scp -O -F {ssh_config} -r "),
        ("scp edgecls", f"scp -O -F {ssh_config} edgecls"),
        (f"{PI}:", f"edgecls-test:{pi_home}/"),
        ("~/edgecls-venv/bin/python", str(ROOT / ".venv-rt-litert" / "bin" / "python")),
    ]


def substitute(text: str, pairs: list[tuple[str, str]]) -> str:
    for old, new in pairs:
        assert old in text, f"the README's walk-through no longer has {old!r}: update tests/test_walkthrough.py"
        text = text.replace(old, new)
    return text


def write_imagenet_cache(home: Path, recipe: dict) -> Path:
    """keras.applications' MobileNetV2 no-top weights file, where keras looks before it downloads.

    Random convolutions, and BatchNorm statistics measured on generated shapes (one pass with momentum 0),
    as trained weights have: keras' fresh ones (mean 0, variance 1) make every image's features the same.
    """
    from edgecls._tf import keras
    from edgecls.data.shapes import generate_shapes

    size, alpha = recipe["data"]["image_size"], float(recipe["model"]["options"]["width"])
    rows = size if size in (96, 128, 160, 192, 224) else 224  # keras' own rule for the file it fetches
    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNetV2(include_top=False, weights=None, alpha=alpha,
                                           input_shape=(size, size, 3))
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.0
    images, _ = generate_shapes(image_size=size, classes=("circle", "square", "star"), count=64, seed=1)
    model(images.astype("float32") / 127.5 - 1.0, training=True)
    path = home / ".keras" / "models" / f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{alpha}_{rows}_no_top.h5"
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save_weights(path)
    return path


def bash(script: str, cwd: Path, env: dict, timeout: float = 900) -> str:
    res = subprocess.run(["bash", "-euo", "pipefail", "-x", "-c", script], cwd=cwd, env=env, capture_output=True,
                         text=True, timeout=timeout)
    out = res.stdout + res.stderr
    assert res.returncode == 0, f"walk-through block failed (exit {res.returncode}):\n{out[-4000:]}"
    return out


@pytest.fixture(scope="module")
def walk_env(tmp_path_factory):
    """A repository-like folder to run in, and an offline environment with this venv first on PATH."""
    work = tmp_path_factory.mktemp("walkthrough")
    for name in ("recipes", "devices", "examples"):
        (work / name).symlink_to(ROOT / name)
    home = work / "home"
    home.mkdir()
    bin_dir = work / "bin"
    bin_dir.mkdir()
    for name, args in (("python", ""), ("edgecls", " -m edgecls")):  # scripts: a symlink would lose the venv
        (bin_dir / name).write_text(f'#!/bin/sh\nexec "{sys.executable}"{args} "$@"\n')
        (bin_dir / name).chmod(0o755)
    import matplotlib

    env = {**os.environ, "HOME": str(home), "PATH": f"{bin_dir}:{os.environ['PATH']}",
           "MPLCONFIGDIR": matplotlib.get_cachedir(),  # the font cache, not rebuilt in the new HOME (~10 s)
           "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        env[var] = "http://127.0.0.1:9"  # a closed port: a download fails instead of happening
    env.pop("no_proxy", None)
    env.pop("NO_PROXY", None)
    return work, home, env


def test_readme_walkthrough(sshd, walk_env):
    if not (ROOT / ".venv-rt-litert" / "bin" / "python").exists():
        pytest.skip(".venv-rt-litert is missing: `make side-envs` builds it (the Pi's Python in this test)")
    work, home, env = walk_env
    blocks = BLOCK.findall(README.read_text(encoding="utf-8"))
    assert len(blocks) == 3, f"README.md should have 3 marked walk-through blocks, found {len(blocks)}"
    pi_home = sshd.folder / "pi-home"
    pi_home.mkdir()
    ssh_config = sshd.client_config("walkthrough")
    blocks = substitute(SEPARATOR.join(blocks), SPEEDUPS + pi_address(pi_home, ssh_config)).split(SEPARATOR)

    # 1. photos, recipe, device recipe
    bash(blocks[0], work, env)
    recipe = yaml.safe_load((work / "my-images.yaml").read_text())
    assert recipe["model"]["weights"] == "imagenet" and recipe["compress"][0]["kind"] == "quantize"
    cache = write_imagenet_cache(home, {**recipe, "data": {**recipe["data"], "image_size": SIZE}})
    device = yaml.safe_load((work / "my-pi.yaml").read_text())
    assert device["name"] == "raspberry-pi-4" and device["connect"] == "ssh"
    device.update(host="edgecls-test", ssh_config=str(ssh_config), python=str(ROOT / ".venv-rt-litert/bin/python"),
                  work_dir=str(sshd.folder / "device-work"), threads=[1], runs=20, warmup=2)  # the user's "set host:"
    (work / "my-pi.yaml").write_text(yaml.safe_dump(device, sort_keys=False))

    # 2. validate, then train -> QAT -> export -> bench over ssh
    log = bash(blocks[1], work, env)
    assert "ok: my-images.yaml" in log
    assert re.search(r"loaded weights for \d+ of \d+ layers from imagenet", log), log[-3000:]  # from the cache
    bench_dir = work / "runs" / "my-images" / "bench" / "raspberry-pi-4"
    report = json.loads((bench_dir / "report.json").read_text())
    assert report["complete"] and report["accuracy_on"] == "device", report["rows"]
    rows = {r["variant"]: r for r in report["rows"]}
    assert set(rows) == {"float32", "qat_int8"}, rows
    exported = {v["name"]: v for v in json.loads((work / "runs/my-images/export/export.json").read_text())["variants"]}
    for name, row in rows.items():
        # Measured on the "Pi" by the TensorFlow-free runtime: the same as export measured on this host.
        assert row["status"] == "ok" and row["accuracy"] == pytest.approx(exported[name]["accuracy"], abs=0.05), (
            name, row, exported[name])
    assert rows["qat_int8"]["size_bytes"] < 0.5 * rows["float32"]["size_bytes"]
    assert {"report.md", "pareto.png", "drift.md", "confusion-qat_int8.png"} <= {p.name for p in bench_dir.iterdir()}
    assert cache.exists()

    # 3. the runtime on the "Pi": classify the copied photos with the QAT int8 model
    out = bash(blocks[2], work, env)
    shown = {name: (label, float(score)) for name, score, label in re.findall(
        r"^photos/(\S+\.(?:jpg|png))\s+1\s+\d+\s+([\d.]+)\s+(\w+)$", out, re.M)}
    star = sorted((work / "data" / "my-images" / "star").iterdir())
    assert sorted(shown) == [p.name for p in star], out[-3000:]
    from edgecls.runtime import Classifier  # the same model here: the Pi printed its labels, image by image

    clf = Classifier.from_file(work / "runs/my-images/export/qat_int8.tflite")
    for p in star:
        label, score = shown[p.name]
        here = {x.label: x.score for x in clf.classify(str(p), top_k=4)}
        # The best class here, or one tied with it (int8 scores; the two hosts' interpreters may round apart).
        assert here[label] >= max(here.values()) - 0.02 and score == pytest.approx(here[label], abs=0.02), (
            p.name, shown[p.name], here)
