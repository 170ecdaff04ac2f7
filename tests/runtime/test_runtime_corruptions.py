"""ImageNet-C corruptions (numpy, Pillow for jpeg) and ``eval --corruptions``: shapes, determinism, damage that
grows with severity, the parameters' reference implementations, bad names and severities, the accuracy table."""
from __future__ import annotations

import colorsys
import json
import subprocess
import sys

import numpy as np
import pytest

from edgecls.errors import UsageError
from edgecls.runtime.corruptions import CORRUPTIONS, PARAMETERS, corrupt, parse_corruptions, parse_severities
from tests.runtime.conftest import run_runtime
from tests.runtime.fixtures import CLASSES, pattern, training_set


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    rng = np.random.default_rng(3)
    return np.stack([pattern(i % 4, 48, 64, rng) for i in range(8)])


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_shapes_dtypes_and_determinism(images, name):
    gray = images[..., :1].copy()
    for batch in (images, gray):
        for severity in (1, 5):
            out = corrupt(batch, name, severity, seed=4)
            assert out.shape == batch.shape and out.dtype == np.uint8
            assert np.array_equal(out, corrupt(batch, name, severity, seed=4))
            one = corrupt(batch[2], name, severity, seed=4, index=2)  # a single (H, W, C) image
            assert one.shape == batch[2].shape and np.array_equal(one, out[2])
    assert corrupt(images[:0], name, 3).shape == (0, 48, 64, 3)


def test_noise_depends_on_seed_and_image_position_not_on_sharding(images):
    whole = corrupt(images, "gaussian_noise", 3, seed=1)
    shards = np.concatenate([corrupt(images[:3], "gaussian_noise", 3, seed=1, index=0),
                             corrupt(images[3:], "gaussian_noise", 3, seed=1, index=3)])
    assert np.array_equal(whole, shards)
    assert not np.array_equal(whole, corrupt(images, "gaussian_noise", 3, seed=2))
    flat = np.full((1, 128, 128, 3), 128, np.uint8)
    noise = corrupt(flat, "gaussian_noise", 2).astype(float) - 128
    assert abs(noise.mean()) < 0.5 and noise.std() == pytest.approx(0.12 * 255, rel=0.02)


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_damage_grows_with_severity(images, name):
    damage = [np.abs(corrupt(images, name, s).astype(float) - images).mean() for s in range(1, 6)]
    assert damage[0] > 0.5, damage
    assert all(b > a for a, b in zip(damage, damage[1:])), (name, damage)


def test_blur_scales_sigma_with_the_image_size():
    """The same fraction of the image is blurred at every size; a sub-pixel sigma (8-px digits) still blurs."""
    small = np.zeros((1, 8, 8, 3), np.uint8)
    small[:, :, 4:] = 255
    assert not np.array_equal(corrupt(small, "gaussian_blur", 5), small)
    assert np.array_equal(corrupt(np.full((2, 8, 8, 3), 77, np.uint8), "gaussian_blur", 5),
                          np.full((2, 8, 8, 3), 77, np.uint8))  # weights sum to 1; edges repeat
    # A step edge's blur profile has sigma = 6 px x side / 224: 1.5 px at 56 px, 6 px at 224 px.
    spreads = []
    for side in (56, 224):
        edge = np.zeros((1, side, side, 1), np.uint8)
        edge[:, :, side // 2:] = 255
        d = np.diff(corrupt(edge, "gaussian_blur", 5)[0, side // 2, :, 0].astype(float))
        x = np.arange(d.size)
        mu = (d * x).sum() / d.sum()
        spreads.append(float(np.sqrt((d * (x - mu) ** 2).sum() / d.sum())))
    assert spreads == pytest.approx([1.5, 6.0], rel=0.05), spreads


def test_brightness_contrast_and_pixelate_match_their_reference_formulas(images):
    img = images[0, :6, :6]
    got = corrupt(img, "brightness", 3).astype(int)
    ref = [[colorsys.hsv_to_rgb(*(lambda h, s, v: (h, s, min(v + 0.3, 1.0)))(*colorsys.rgb_to_hsv(*(p / 255.0))))
            for p in row] for row in img]
    assert np.abs(got - np.rint(np.array(ref) * 255)).max() <= 1
    x = images.astype(float) / 255
    mean = x.mean(axis=(1, 2), keepdims=True)
    ref_c = np.clip((x - mean) * 0.2 + mean, 0, 1) * 255
    assert np.abs(corrupt(images, "contrast", 3).astype(float) - ref_c).max() <= 0.51
    Image = pytest.importorskip("PIL.Image")
    for severity in (1, 5):
        c = PARAMETERS["pixelate"][severity - 1]
        ref_p = [np.asarray(Image.fromarray(im).resize((int(64 * c), int(48 * c)), Image.BOX).resize((64, 48),
                                                                                                  Image.BOX))
                 for im in images]
        assert np.abs(corrupt(images, "pixelate", severity).astype(int) - np.stack(ref_p)).max() <= 1


def test_parse_and_bad_names_or_severities():
    assert parse_corruptions("jpeg, contrast,jpeg") == ("jpeg", "contrast")
    assert parse_corruptions("all") == CORRUPTIONS
    assert parse_severities("5,1,3,3") == (1, 3, 5)
    assert parse_severities([2, 4]) == (2, 4)
    for text, words in (("jpeg,fog", "unknown corruption 'fog'"), ("", "no corruption named")):
        with pytest.raises(UsageError, match=words):
            parse_corruptions(text)
    for text in ("0", "6", "1,x", "-1", "2.5", ""):
        with pytest.raises(UsageError, match="--severities"):
            parse_severities(text)
    with pytest.raises(UsageError, match="severity"):
        corrupt(np.zeros((4, 4, 3), np.uint8), "jpeg", 6)
    with pytest.raises(UsageError, match="unknown corruption"):
        corrupt(np.zeros((4, 4, 3), np.uint8), "fog", 1)
    with pytest.raises(UsageError, match="uint8"):
        corrupt(np.zeros((4, 4, 3), np.float32), "jpeg", 1)


# ---------------------------------------------------------------------------------------------- eval

@pytest.fixture(scope="module")
def npz(tmp_path_factory) -> str:
    x, y = training_set(16, seed=5)
    group = np.array(["odd" if i % 2 else "even" for i in range(len(y))])
    group[:3] = ""  # in no slice
    path = tmp_path_factory.mktemp("corrupt") / "test.npz"
    np.savez(path, pixels=x, labels=y, class_names=np.array(CLASSES), slice_group=group)
    return str(path)


def test_evaluate_with_corruptions_in_worker_processes(rt, npz):
    from edgecls.runtime.evaluate import evaluate

    one = evaluate(rt.float, npz, threads=1, corruptions="gaussian_noise,contrast,pixelate", severities="1,5")
    two = evaluate(rt.float, npz, threads=2, batch=8, corruptions=("gaussian_noise", "contrast", "pixelate"),
                   severities=(5, 1))
    assert one["workers"] == 1 and two["workers"] == 2
    corr = one["corruptions"]
    assert corr["severities"] == [1, 5] and set(corr["accuracy"]) == {"gaussian_noise", "contrast", "pixelate"}
    assert all(set(row) == {"1", "5"} for row in corr["accuracy"].values())
    assert corr == two["corruptions"]  # noise drawn per image: the same whatever the shards
    values = [a for row in corr["accuracy"].values() for a in row.values()]
    assert corr["mean_accuracy"] == pytest.approx(np.mean(values)) == one["mean_corruption_accuracy"]
    assert one["corruption_drop"] == pytest.approx(one["accuracy"] - corr["mean_accuracy"]) == corr["drop"]
    assert one["accuracy"] >= corr["mean_accuracy"]
    assert one["accuracy"] > min(values)  # the worst corruption costs accuracy
    slices = one["slices"]
    assert set(slices["attributes"]["group"]) == {"odd", "even"}
    assert sum(v["n"] for v in slices["attributes"]["group"].values()) == 64 - 3
    assert one["worst_slice_gap"] == pytest.approx(slices["worst"]["gap"])
    plain = evaluate(rt.float, npz, threads=1)
    assert "corruptions" not in plain and plain["accuracy"] == one["accuracy"]


def test_eval_command_with_corruptions_and_bad_values(rt, npz, tmp_path):
    proc = subprocess.run([sys.executable, "-I", str(rt.pyz), "eval", str(rt.float), "--data", npz,
                           "--corruptions", "jpeg,brightness", "--severities", "2", "--json"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert set(report["corruptions"]["accuracy"]) == {"jpeg", "brightness"}
    assert report["corruptions"]["severities"] == [2]
    text = run_runtime("eval", str(rt.float), "--data", npz, "--corruptions", "contrast")
    assert text.returncode == 0, text.stderr
    assert "contrast" in text.stdout and "mean_corruption_accuracy" in text.stdout and "worst slice" in text.stdout
    for args, words in ((["--corruptions", "fog"], "unknown corruption 'fog'"),
                        (["--corruptions", "jpeg", "--severities", "1,7"], "'7' is not a severity"),
                        (["--severities", "0"], "'0' is not a severity")):
        bad = run_runtime("eval", str(rt.float), "--data", npz, *args)
        assert bad.returncode == 2 and bad.stderr.startswith("error: ") and words in bad.stderr, bad.stderr
        assert len(bad.stderr.strip().splitlines()) == 1


def test_bad_slice_array_is_one_line(rt, tmp_path):
    x, y = training_set(2, seed=1)
    np.savez(tmp_path / "bad.npz", pixels=x, labels=y, slice_group=np.arange(len(y)))
    proc = run_runtime("eval", str(rt.float), "--data", str(tmp_path / "bad.npz"))
    assert proc.returncode == 1 and "slice_group must hold one string per image" in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
