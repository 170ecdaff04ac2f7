"""Image files made on the fly for the data tests: good ones in every awkward mode, and bad ones."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def save_exif_rotated(path: Path) -> None:
    """A 40x20 (W x H) JPEG, left quarter red, rest blue, with EXIF orientation 6 (rotate 90 CW)."""
    arr = np.zeros((20, 40, 3), np.uint8)
    arr[:, :] = (0, 0, 255)
    arr[:, :10] = (255, 0, 0)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(arr).save(path, format="JPEG", quality=95, exif=exif)


def write_good_images(folder: Path) -> dict[str, Path]:
    """One image per awkward mode; returns name -> path."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = {}
    paths["rgb"] = folder / "rgb.JPG"  # upper-case extension counts too
    Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(paths["rgb"], format="JPEG")
    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[..., :3] = 200
    rgba[:8, :, 3] = 255  # top half opaque, bottom half fully transparent
    paths["alpha"] = folder / "alpha.png"
    Image.fromarray(rgba, "RGBA").save(paths["alpha"])
    paths["gray"] = folder / "gray.png"
    Image.fromarray(np.full((16, 16), 77, np.uint8), "L").save(paths["gray"])
    pal = Image.fromarray(np.tile(np.arange(16, dtype=np.uint8) * 16, (16, 1)), "L").convert(
        "P", palette=Image.Palette.ADAPTIVE, colors=16)
    paths["palette"] = folder / "palette.gif"
    pal.save(paths["palette"])
    deep = np.full((16, 16), 65535, np.uint16)
    deep[:, :8] = 32896  # 128 * 257
    paths["deep"] = folder / "deep16.png"
    Image.fromarray(deep).save(paths["deep"])
    paths["exif"] = folder / "exif6.jpeg"
    save_exif_rotated(paths["exif"])
    paths["bmp"] = folder / "plain.bmp"
    Image.fromarray(np.full((8, 12, 3), 9, np.uint8)).save(paths["bmp"])
    return paths


def write_bad_images(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    buf = folder / "whole.jpg"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(
        buf, format="JPEG")
    data = buf.read_bytes()
    buf.unlink()
    paths = {"truncated": folder / "truncated.jpg", "text": folder / "notes.jpg"}
    paths["truncated"].write_bytes(data[: len(data) // 2])
    paths["text"].write_text("this is not an image\n")
    return paths


@pytest.fixture
def image_folder(tmp_path):
    """tmp/images/{good,mixed}/...: every good mode in 'good', two more good + two bad in 'mixed'."""
    root = tmp_path / "images"
    good = write_good_images(root / "good")
    mixed = root / "mixed"
    mixed.mkdir()
    for i in range(2):
        Image.fromarray(np.full((10, 10, 3), 50 * i, np.uint8)).save(mixed / f"ok{i}.png")
    bad = write_bad_images(mixed)
    (mixed / ".hidden.jpg").write_text("dot files are ignored, even broken ones")
    (mixed / "README.txt").write_text("not an image extension: ignored")
    (root / ".git").mkdir()  # hidden folders are not classes
    return root, good, bad
