"""Decoding and resizing: Pillow's pixels, with or without Pillow for arrays; bad images are one clear error."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from edgecls.runtime import image as I
from edgecls.runtime.errors import DependencyMissing, ImageError


def test_array_conversions_are_pillows():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    assert (I.load_image(rgb, channels=1)[..., 0] == np.asarray(Image.fromarray(rgb).convert("L"))).all()
    rgba = rng.integers(0, 256, (20, 30, 4), dtype=np.uint8)
    black = Image.new("RGBA", (30, 20), (0, 0, 0, 255))
    want = np.asarray(Image.alpha_composite(black, Image.fromarray(rgba, "RGBA")).convert("RGB"))
    assert (I.load_image(rgba, channels=3) == want).all()
    gray = rng.integers(0, 256, (20, 30), dtype=np.uint8)
    assert (I.load_image(gray, channels=3) == np.repeat(gray[..., None], 3, 2)).all()
    assert (I.load_image(gray[..., None], channels=1)[..., 0] == gray).all()
    deep = np.full((4, 4), 65535, np.uint16)
    assert (I.load_image(deep, channels=1) == 255).all()
    assert (I.load_image(np.full((4, 4, 3), 0.5, np.float32), channels=3) == 128).all()


@pytest.mark.parametrize("shape", [(10, 10, 2), (10, 10, 5), (10,), (2, 10, 10, 3), (0, 10, 3)])
def test_wrong_channel_count_or_shape(shape):
    with pytest.raises(ImageError, match=r"array of shape .*expected an image of shape"):
        I.load_image(np.zeros(shape, np.uint8), channels=3)


def test_numpy_resize_is_pillows_to_within_one_level():
    rng = np.random.default_rng(3)
    worst = 0
    for trial in range(60):
        h, w = rng.integers(2, 90, 2)
        out_h, out_w = rng.integers(2, 70, 2)
        img = rng.integers(0, 256, (h, w, 3 if trial % 2 else 1), dtype=np.uint8)
        for policy in ("stretch", "crop"):
            box = I.crop_box(h, w, out_h, out_w) if policy == "crop" else None
            mine = I.resize_numpy(img, (out_h, out_w), box).astype(int)
            pillow = I.resize_image(img, (out_h, out_w), policy).astype(int)
            assert mine.shape == pillow.shape
            worst = max(worst, int(np.abs(mine - pillow).max()))
    assert worst <= 1
    flat = np.full((40, 40, 3), 77, np.uint8)
    assert (I.resize_numpy(flat, (13, 29)) == 77).all()  # weights sum to one exactly


def test_without_pillow_arrays_still_work_and_files_say_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setattr(I, "_pil", False)
    arr = np.random.default_rng(1).integers(0, 256, (30, 50, 3), dtype=np.uint8)
    out = I.resize_image(I.load_image(arr, channels=3), (16, 20), "crop")
    assert out.shape == (16, 20, 3)
    np.save(tmp_path / "a.npy", arr)
    assert I.load_image(tmp_path / "a.npy", channels=1).shape == (30, 50, 1)
    with pytest.raises(DependencyMissing, match=r"x\.jpg: decoding image files needs Pillow .*\.npy arrays work"):
        I.load_image(tmp_path / "x.jpg", channels=3)


def test_exif_orientation_is_applied(tmp_path):
    arr = np.zeros((20, 40, 3), np.uint8)
    arr[:, :10] = (255, 0, 0)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    Image.fromarray(arr).save(tmp_path / "e.jpg", quality=95, exif=exif)
    img = I.load_image(tmp_path / "e.jpg", channels=3)
    assert img.shape == (40, 20, 3)
    assert img[:10, :, 0].mean() > 200 and img[-10:, :, 0].mean() < 50  # the red band is now on top


def test_modes_are_reduced_to_rgb_or_l(tmp_path):
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., :3] = 200
    rgba[:4, :, 3] = 255
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    img = I.load_image(tmp_path / "a.png", channels=3)
    assert (img[:4] == 200).all() and (img[4:] == 0).all()  # transparent -> black
    pal = Image.fromarray(np.tile(np.arange(8, dtype=np.uint8) * 30, (8, 1))).convert("P")
    pal.save(tmp_path / "p.gif")
    assert I.load_image(tmp_path / "p.gif", channels=1).shape == (8, 8, 1)
    Image.fromarray(np.full((8, 8), 40000, np.uint16)).save(tmp_path / "d.png")
    assert I.load_image(tmp_path / "d.png", channels=1).max() == round(40000 * 255 / 65535)


def test_bad_images_name_the_input(tmp_path):
    good = tmp_path / "good.jpg"
    Image.fromarray(np.random.default_rng(2).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(good)
    data = good.read_bytes()
    (tmp_path / "trunc.jpg").write_bytes(data[: len(data) // 2])
    (tmp_path / "text.png").write_text("not an image")
    for name in ("trunc.jpg", "text.png"):
        with pytest.raises(ImageError, match=rf"{name}: cannot decode image \("):
            I.load_image(tmp_path / name, channels=3)
        assert I.check_image(tmp_path / name) is not None
    with pytest.raises(ImageError, match="no such image file"):
        I.load_image(tmp_path / "missing.jpg", channels=3)
    with pytest.raises(ImageError, match=r"<12 bytes>: cannot decode"):
        I.load_image(b"not an image", channels=3)
    (tmp_path / "bad.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(ImageError, match=r"bad\.npy: not a readable \.npy array"):
        I.load_image(tmp_path / "bad.npy", channels=3)
    assert I.check_image(good) is None



def _npy_header(shape: tuple, descr: str = "|u1", version: tuple = (1, 0)) -> bytes:
    import io

    buf = io.BytesIO()
    header = {"descr": descr, "fortran_order": False, "shape": shape}
    (np.lib.format.write_array_header_1_0 if version == (1, 0) else np.lib.format.write_array_header_2_0)(buf, header)
    return buf.getvalue()


@pytest.mark.parametrize("version", [(1, 0), (2, 0)])
def test_npy_whose_header_claims_more_than_the_file_holds(tmp_path, version):
    # A few hundred bytes whose header claims a 28 GiB array: refused before numpy allocates it.
    crafted = tmp_path / "huge.npy"
    crafted.write_bytes(_npy_header((100000, 100000, 3), version=version) + bytes(200))
    assert crafted.stat().st_size < 400
    with pytest.raises(ImageError, match=r"huge\.npy: its header claims a 100000x100000x3 uint8 array "
                                         r"\(30,000,000,000 bytes\) but the file holds 200; it is truncated"):
        I.load_image(crafted, channels=3)
    # One byte short of what the header says (a truncated real file) is the same error.
    short = tmp_path / "short.npy"
    short.write_bytes(_npy_header((4, 5, 3)) + bytes(59))
    with pytest.raises(ImageError, match=r"short\.npy: .* 4x5x3 uint8 array \(60 bytes\) but the file holds 59"):
        I.load_npy(short)
    short.write_bytes(_npy_header((4, 5, 3)) + bytes(range(60)))
    assert I.load_npy(short).reshape(-1).tolist() == list(range(60))


def test_npy_that_is_not_one_image_array(tmp_path):
    np.savez(tmp_path / "two.npz", a=np.zeros(3), b=np.ones(3))
    (tmp_path / "two.npz").rename(tmp_path / "two.npy")
    with pytest.raises(ImageError, match=r"two\.npy: holds several arrays \(\.npz\)"):
        I.load_npy(tmp_path / "two.npy")
    objects = tmp_path / "objects.npy"
    objects.write_bytes(_npy_header((1,), descr="|O") + b"\x80\x04N.")  # a pickle: never unpickled
    with pytest.raises(ImageError, match=r"objects\.npy: holds Python objects, not pixels"):
        I.load_npy(objects)
    with pytest.raises(ImageError, match=r"gone\.npy: no such file"):
        I.load_npy(tmp_path / "gone.npy")

def test_resize_policies():
    img = np.zeros((10, 40, 1), np.uint8)
    img[:, 15:25] = 255  # the central 10x10 is white
    assert I.resize_image(img, (10, 10), "crop").min() == 255
    assert I.resize_image(img, (10, 10), "stretch").min() < 255
    assert I.resize_image(img, (10, 40), "crop") is img
    with pytest.raises(ValueError, match="resize policy"):
        I.resize_image(img, (5, 5), "fit")


def test_draft_decodes_large_jpegs_at_reduced_scale(tmp_path):
    yy, xx = np.mgrid[0:800, 0:1000]
    arr = np.stack([xx * 255 // 1000, yy * 255 // 800, (xx + yy) % 256], -1).astype(np.uint8)
    Image.fromarray(arr).save(tmp_path / "big.jpg", quality=92)
    full = I.load_image(tmp_path / "big.jpg", channels=3)
    small = I.load_image(tmp_path / "big.jpg", channels=3, draft=(32, 40))
    assert full.shape == (800, 1000, 3) and small.shape[0] < 800 and min(small.shape[:2]) >= 80
    a = I.resize_image(full, (32, 40)).astype(int)
    b = I.resize_image(small, (32, 40)).astype(int)
    assert np.abs(a - b).mean() < 2
    Image.fromarray(arr).save(tmp_path / "big.png")  # not a JPEG: draft does nothing
    assert I.load_image(tmp_path / "big.png", channels=3, draft=(32, 40)).shape == (800, 1000, 3)
