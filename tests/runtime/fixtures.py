"""Test models and images for the runtime tests, and the reference answers of TensorFlow's interpreter.

``build_models(folder)`` needs TensorFlow (the main .venv): it trains a tiny CNN
for a few seconds on procedural patterns, converts it to float32, int8 (uint8
input, int8 output), a logits variant and a grayscale variant, writes test
images, and records what ``tf.lite.Interpreter`` answers for every (model,
image) pair in ``expected.json``. ``load_models(folder)`` reads the result back
with numpy only, so the same files serve the no-TensorFlow environments.

The reference preprocessing here is written out independently of
``edgecls.runtime`` (Pillow: open, EXIF transpose, convert, bilinear resize;
numpy: normalize, quantize), so a parity test compares two implementations.
"""
from __future__ import annotations

import io
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CLASSES = ("hstripes", "vstripes", "checker", "blob")
INPUT_HW = (32, 40)  # not square, so a swapped height/width shows
MEAN, STD = 127.5, 127.5
MODEL_FILES = ("float.tflite", "int8.tflite", "logits.tflite", "gray.tflite")
# With TFLite metadata (labels, normalization, resize policy, output kind), when edgecls.export.metadata exists.
META_FILES = {"meta.tflite": ("int8.tflite", "probabilities", "crop"),
              "meta_logits.tflite": ("logits.tflite", "logits", "stretch")}


def pattern(cls: int, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """One uint8 RGB (h, w, 3) image of class ``cls``: random colours, period, phase and noise."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    period = rng.uniform(0.18, 0.3) * min(h, w)
    phase = rng.uniform(0, period)
    if cls == 0:
        mask = ((yy + phase) // (period / 2)) % 2
    elif cls == 1:
        mask = ((xx + phase) // (period / 2)) % 2
    elif cls == 2:
        mask = (((yy + phase) // (period / 2)) + ((xx + phase) // (period / 2))) % 2
    else:
        cy, cx = rng.uniform(0.35, 0.65, 2) * (h, w)
        r = rng.uniform(0.18, 0.32) * min(h, w)
        mask = (((yy - cy) ** 2 + (xx - cx) ** 2) < r * r).astype(np.float32)
    while True:
        a, b = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
        if abs(a.mean() - b.mean()) > 70:
            break
    img = a * (1 - mask[..., None]) + b * mask[..., None] + rng.normal(0, 8, (h, w, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def training_set(n_per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for cls in range(len(CLASSES)):
        for _ in range(n_per_class):
            xs.append(pattern(cls, *INPUT_HW, rng))
            ys.append(cls)
    order = rng.permutation(len(xs))
    return np.stack(xs)[order], np.array(ys)[order]


def reference_input(path: Path, channels: int, resize: str = "stretch") -> np.ndarray:
    """Raw pixels (1, H, W, C) float32 in 0..255 the way the host pipeline makes them."""
    from PIL import Image, ImageOps

    if path.suffix == ".npy":
        img = Image.fromarray(np.load(path))
    else:
        img = Image.open(path)
        img.load()
        img = ImageOps.exif_transpose(img)
    img = img.convert("L" if channels == 1 else "RGB")
    box = None
    h, w = INPUT_HW
    if resize == "crop" and img.height * w != img.width * h:  # the largest central box with the model's aspect
        if img.width * h > img.height * w:
            cw = img.height * w / h
            box = ((img.width - cw) / 2, 0.0, (img.width + cw) / 2, float(img.height))
        else:
            ch = img.width * h / w
            box = (0.0, (img.height - ch) / 2, float(img.width), (img.height + ch) / 2)
    img = img.resize((w, h), Image.Resampling.BILINEAR, box=box)
    arr = np.asarray(img, dtype=np.float32)
    if arr.ndim == 2:
        arr = arr[..., None]
    return arr[None]


def write_images(folder: Path) -> dict[str, str]:
    """Good test images (file name -> class name); several sizes, formats and modes."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    truth = {}
    sizes = [(64, 80), (90, 60), (48, 48), (120, 150)]
    for cls, name in enumerate(CLASSES):
        for k in range(3):
            h, w = sizes[(cls + k) % len(sizes)]
            arr = pattern(cls, h, w, rng)
            if k == 0:
                fname = f"{name}_{k}.jpg"
                Image.fromarray(arr).save(folder / fname, quality=95)
            elif k == 1:
                fname = f"{name}_{k}.png"
                Image.fromarray(arr).save(folder / fname)
            else:
                fname = f"{name}_{k}.npy"
                np.save(folder / fname, arr)
            truth[fname] = name
    return truth


@dataclass
class Models:
    """The files the runtime tests use (all in one folder)."""

    folder: Path

    def __getattr__(self, name: str) -> Path:  # models.float -> folder/float.tflite
        if name.startswith("_"):
            raise AttributeError(name)
        return self.folder / f"{name}.tflite"

    @property
    def images(self) -> Path:
        return self.folder / "images"

    @property
    def labels_txt(self) -> Path:
        return self.folder / "labels.txt"

    @property
    def expected(self) -> dict:
        return json.loads((self.folder / "expected.json").read_text())

    @property
    def pyz(self) -> Path:
        return self.folder / "edgecls-runtime.pyz"


def load_models(folder: str | os.PathLike) -> Models:
    folder = Path(folder)
    missing = [n for n in (*MODEL_FILES, "expected.json", "labels.txt") if not (folder / n).exists()]
    if missing:
        raise FileNotFoundError(f"{folder} lacks {missing}: build it with build_models()")
    return Models(folder)


def build_models(folder: str | os.PathLike) -> Models:
    """Train, convert, write images and the TensorFlow interpreter's answers into ``folder``."""
    from edgecls._tf import keras, tf

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(1)
    x, y = training_set(240, seed=1)
    h, w = INPUT_HW

    inputs = keras.Input((h, w, 3), name="image")
    z = keras.layers.Rescaling(1.0, name="identity")(inputs)  # the model takes normalized pixels
    z = keras.layers.Conv2D(12, 3, strides=2, padding="same", activation="relu")(z)
    z = keras.layers.Conv2D(16, 3, strides=2, padding="same", activation="relu")(z)
    z = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(z)
    z = keras.layers.GlobalAveragePooling2D()(z)
    logits = keras.layers.Dense(len(CLASSES), name="logits")(z)
    probs = keras.layers.Softmax(name="probs")(logits)
    model = keras.Model(inputs, probs)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    xn = (x.astype(np.float32) - MEAN) / STD
    model.fit(xn, y, epochs=12, batch_size=32, verbose=0)
    xv, yv = training_set(40, seed=99)
    acc = float((model.predict((xv - MEAN) / STD, verbose=0).argmax(1) == yv).mean())
    if acc < 0.9:
        raise AssertionError(f"the tiny test CNN reached only {acc:.2f} accuracy")

    logits_model = keras.Model(inputs, logits)
    gin = keras.Input((h, w, 1), name="image")
    gray_model = keras.Model(gin, model(keras.layers.Concatenate()([gin, gin, gin])))

    def convert(m, int8: bool = False) -> bytes:
        conv = tf.lite.TFLiteConverter.from_keras_model(m)
        if int8:
            def rep():
                for i in range(0, 200, 2):
                    yield [xn[i:i + 1]]
            conv.optimizations = [tf.lite.Optimize.DEFAULT]
            conv.representative_dataset = rep
            conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            conv.inference_input_type = tf.uint8
            conv.inference_output_type = tf.int8
        with warnings.catch_warnings():  # "Statistics for quantized inputs were expected": the input is uint8
            warnings.simplefilter("ignore")
            return conv.convert()

    blobs = {"float.tflite": convert(model), "int8.tflite": convert(model, int8=True),
             "logits.tflite": convert(logits_model), "gray.tflite": convert(gray_model)}
    settings = {name: ("logits" if name == "logits.tflite" else "probabilities", "stretch") for name in blobs}
    try:
        from edgecls.export.metadata import add_metadata
        from edgecls.runtime.metadata import ModelMetadata
    except ImportError:  # the metadata writer is not there yet: the metadata tests skip
        add_metadata = None
    if add_metadata is not None:
        for name, (base, kind, resize) in META_FILES.items():
            meta = ModelMetadata(name=name, labels=CLASSES, mean=(MEAN,), std=(STD,), output_kind=kind, resize=resize)
            blobs[name] = add_metadata(blobs[base], meta)
            settings[name] = (kind, resize)
    for name, blob in blobs.items():
        (folder / name).write_bytes(blob)
    (folder / "labels.txt").write_text("\n".join(CLASSES) + "\n")
    truth = write_images(folder / "images")

    # What TensorFlow's own interpreter answers, on independently preprocessed inputs.
    expected: dict = {"truth": truth, "accuracy": acc, "models": {}}
    for name, blob in blobs.items():
        with warnings.catch_warnings():  # "tf.lite.Interpreter is deprecated": it is the reference here
            warnings.simplefilter("ignore")
            interp = tf.lite.Interpreter(model_content=blob)
        interp.allocate_tensors()
        inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
        channels = int(inp["shape"][-1])
        kind, resize = settings[name]
        rows = {}
        for fname in sorted(truth):
            x_ = (reference_input(folder / "images" / fname, channels, resize) - MEAN) / STD
            if inp["dtype"] != np.float32:
                scale, zp = inp["quantization"]
                info = np.iinfo(inp["dtype"])
                x_ = np.clip(np.round(x_ / scale + zp), info.min, info.max)
            interp.set_tensor(inp["index"], x_.astype(inp["dtype"]))
            interp.invoke()
            raw = interp.get_tensor(out["index"])[0]
            scores = raw.astype(np.float32)
            if out["dtype"] != np.float32:
                scale, zp = out["quantization"]
                scores = (scores - zp) * scale
            if kind == "logits":
                e = np.exp(scores - scores.max())
                scores = e / e.sum()
            rows[fname] = {"top1": int(scores.argmax()), "scores": [float(s) for s in scores],
                           "raw": raw.tolist()}
        expected["models"][name] = rows
    (folder / "expected.json").write_text(json.dumps(expected, indent=1))
    return Models(folder)


def jpeg_bytes(arr: np.ndarray, quality: int = 90) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


if __name__ == "__main__":  # build a folder by hand: python tests/runtime/fixtures.py OUT
    import sys

    m = build_models(sys.argv[1])
    print(m.folder, m.expected["accuracy"])
