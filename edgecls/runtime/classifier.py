"""Classify images with a .tflite model: ``Classifier.from_file("model.tflite").classify("cat.jpg")``.

Where the settings come from, first match wins:

1. what the caller passes (``labels=``, ``mean=``, ``std=``, ``resize=``, ``output_kind=``);
2. the model's TFLite metadata (labels, normalization, colour space, resize policy, output kind);
3. a ``labels.txt`` beside the model file;
4. defaults: pixels fed as they are (mean 0, std 1), ``stretch`` resizing, and
   ``auto`` output: if the first output already is probabilities (in [0, 1],
   rows summing to 1) outputs are kept as they are, otherwise they are taken
   as logits and softmaxed.

The input size and channel count always come from the model's input tensor
(an export of a grayscale-trained model may take RGB and convert in the
graph). A model with no labels anywhere is an error unless
``require_labels=False`` (then labels are the class indices).

Preprocessing is decode (Pillow; EXIF orientation; RGB or L) -> bilinear
resize under the aspect policy -> ``(pixel - mean) / std`` -> quantization for
uint8/int8 inputs. The last two are one table lookup per pixel: a 256-entry
table per channel computed once, in float32 as the formula would be, so the
values are exactly those of the formula.
"""
from __future__ import annotations

import collections
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Iterable, Iterator, NamedTuple, Sequence

import numpy as np

from edgecls.runtime.errors import (DependencyMissing, EdgeclsError, ImageError, LabelsMissing, RuntimeModelError,
                                    UsageError)
from edgecls.runtime.flatcheck import metadata_names, read_model
from edgecls.runtime.image import load_image, resize_image
from edgecls.runtime.options import OUTPUT_KINDS, RESIZE_POLICIES, check_int, check_threads
from edgecls.runtime.quantization import pixel_table, prepare_pixels
from edgecls.runtime.runner import Runner
LABELS_FILE = "labels.txt"


class Prediction(NamedTuple):
    """One of the top-k answers: the label, its class index and its probability."""

    label: str
    index: int
    score: float


def read_labels(path: str | os.PathLike) -> tuple[str, ...]:
    """Labels from a text file, one per line (trailing blank lines ignored)."""
    name = os.fspath(path)
    try:
        with open(name, encoding="utf-8") as fh:
            lines = [line.rstrip("\r\n") for line in fh]
    except FileNotFoundError:
        raise RuntimeModelError(f"{name}: labels file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RuntimeModelError(f"{name}: cannot read the labels file ({exc})") from None
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise RuntimeModelError(f"{name}: the labels file is empty")
    return tuple(lines)


def _metadata(model: bytes, source: str | os.PathLike | None, name: str) -> Any:
    """The model's ModelMetadata, or None; reading it needs edgecls.runtime.metadata (and flatbuffers)."""
    if "TFLITE_METADATA" not in metadata_names(model):
        return None
    try:
        from edgecls.runtime import metadata as md
    except ImportError as exc:
        missing = getattr(exc, "name", "") or ""
        if missing.split(".")[0] == "flatbuffers":
            raise DependencyMissing(f"{name}: the model carries TFLite metadata; reading it needs the flatbuffers "
                                    "package (pip install flatbuffers)") from None
        raise
    try:
        return md.read_metadata(source if source is not None else model)
    except md.MetadataError as exc:
        raise RuntimeModelError(str(exc)) from None


def _per_channel(values: Sequence[float], channels: int, what: str) -> np.ndarray:
    arr = np.asarray([float(v) for v in values], dtype=np.float32)
    if arr.size == 1:
        return np.repeat(arr, channels)
    if arr.size == channels:
        return arr
    if arr.size == 3 and channels == 1:  # RGB statistics for a grayscale input: their mean
        return np.asarray([arr.mean()], dtype=np.float32)
    raise UsageError(f"{what} has {arr.size} values; the model's input has {channels} channel(s)")


class Classifier:
    """An image classifier over a :class:`Runner`; build it with :meth:`from_file` or :meth:`from_bytes`."""

    def __init__(self, runner: Runner, *, labels: Sequence[str] | None, mean: Sequence[float] = (0.0,),
                 std: Sequence[float] = (1.0,), resize: str = "stretch", output_kind: str = "auto",
                 metadata: Any = None, draft: bool = False):
        self.runner = runner
        self.metadata = metadata
        self.draft = bool(draft)  # decode large JPEGs at reduced scale (see edgecls.runtime.image.load_image)
        if resize not in RESIZE_POLICIES:
            raise UsageError(f"resize must be one of {', '.join(RESIZE_POLICIES)}, got {resize!r}")
        if output_kind not in OUTPUT_KINDS:
            raise UsageError(f"output_kind must be one of {', '.join(OUTPUT_KINDS)}, got {output_kind!r}")
        self.resize = resize
        self.output_kind = output_kind
        self._auto_kind: str | None = None
        self.mean = tuple(float(v) for v in _per_channel(mean, runner.channels, "mean"))
        self.std = tuple(float(v) for v in _per_channel(std, runner.channels, "std"))
        if any(s == 0 for s in self.std):
            raise UsageError(f"std values must be non-zero, got {self.std}")
        if labels is not None:
            labels = tuple(str(label) for label in labels)
            runner.select_output(len(labels))
            if len(labels) != runner.num_classes:
                raise RuntimeModelError(f"{runner.name}: {len(labels)} labels for a model with "
                                        f"{runner.num_classes} outputs")
        self.labels: tuple[str, ...] = labels if labels is not None else tuple(map(str, range(runner.num_classes)))
        self._lut = self._make_lut()

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_file(cls, path: str | os.PathLike, *, num_threads: int | None = None,
                  delegate: str | os.PathLike | None = None, delegate_options: dict | None = None,
                  backend: str | None = None, labels: Sequence[str] | str | os.PathLike | None = None,
                  mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                  resize: str | None = None, output_kind: str | None = None,
                  require_labels: bool = True, draft: bool = False) -> "Classifier":
        """Load ``path``; settings from the arguments, else the metadata, else labels.txt beside it.

        ``draft=True`` decodes large JPEGs at reduced scale (faster; pixels differ slightly from a full decode).
        """
        model = read_model(path)
        return cls._build(model, os.fspath(path), os.path.dirname(os.path.abspath(os.fspath(path))),
                          source=path, num_threads=num_threads, delegate=delegate,
                          delegate_options=delegate_options, backend=backend, labels=labels, mean=mean, std=std,
                          resize=resize, output_kind=output_kind, require_labels=require_labels, draft=draft)

    @classmethod
    def from_bytes(cls, model: bytes, *, name: str = "<model bytes>", labels_dir: str | os.PathLike | None = None,
                   **options: Any) -> "Classifier":
        """Like :meth:`from_file` for a model in memory; ``labels_dir`` is where to look for labels.txt."""
        return cls._build(bytes(model), name, os.fspath(labels_dir) if labels_dir else None, source=None, **options)

    @classmethod
    def _build(cls, model: bytes, name: str, folder: str | None, *, source: Any, num_threads: int | None = None,
               delegate: Any = None, delegate_options: dict | None = None, backend: str | None = None,
               labels: Any = None, mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
               resize: str | None = None, output_kind: str | None = None,
               require_labels: bool = True, draft: bool = False) -> "Classifier":
        runner = Runner(model, name=name, num_threads=num_threads, delegate=delegate,
                        delegate_options=delegate_options, backend=backend, check=source is None)
        meta = _metadata(model, source, name)
        if isinstance(labels, (str, os.PathLike)):
            labels = read_labels(labels)
        if labels is None and meta is not None and meta.labels:
            labels = meta.labels
        if labels is None and folder and os.path.isfile(os.path.join(folder, LABELS_FILE)):
            labels = read_labels(os.path.join(folder, LABELS_FILE))
        if labels is None and require_labels:
            where = f"no {LABELS_FILE} beside it" if folder else f"no {LABELS_FILE} given"
            raise LabelsMissing(f"{name}: no labels: the model has no metadata with labels and {where}; "
                                "pass labels (CLI: --labels FILE)")
        if meta is not None:
            mean = mean if mean is not None else meta.mean
            std = std if std is not None else meta.std
            resize = resize or meta.resize
            output_kind = output_kind or meta.output_kind
        return cls(runner, labels=labels, mean=mean if mean is not None else (0.0,),
                   std=std if std is not None else (1.0,), resize=resize or "stretch",
                   output_kind=output_kind or "auto", metadata=meta, draft=draft)

    # ------------------------------------------------------------------ properties
    @property
    def name(self) -> str:
        return self.runner.name

    @property
    def input_size(self) -> tuple[int, int]:
        """(height, width) of the model's input."""
        return self.runner.height, self.runner.width

    @property
    def channels(self) -> int:
        return self.runner.channels

    @property
    def input_dtype(self) -> np.dtype:
        return self.runner.input.dtype

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    @property
    def backend(self) -> str:
        return self.runner.backend

    @property
    def num_threads(self) -> int:
        return self.runner.num_threads

    def info(self) -> dict:
        """What the classifier runs and how it preprocesses, as plain JSON-able values."""
        r = self.runner
        return {
            "model": r.name, "backend": f"{r.backend} {r.backend_version}", "threads": r.num_threads,
            "delegate": r.delegate, "input": {"shape": list(r.input.shape), "dtype": str(r.input.dtype),
                                              "scale": r.input.scale, "zero_point": r.input.zero_point},
            "output": {"shape": list(r.output.shape), "dtype": str(r.output.dtype), "scale": r.output.scale,
                       "zero_point": r.output.zero_point},
            "classes": self.num_classes, "labels": list(self.labels[:10]) + (["..."] if self.num_classes > 10 else []),
            "mean": list(self.mean), "std": list(self.std), "resize": self.resize, "output_kind": self.output_kind,
            "metadata": self.metadata is not None, "draft": self.draft, "init_ms": round(r.init_ms, 2),
        }

    # ------------------------------------------------------------------ preprocessing
    def _make_lut(self) -> np.ndarray:
        """(C, 256) table: pixel value -> what the input tensor takes, per channel."""
        info = self.runner.input
        return pixel_table(self.mean, self.std, info.dtype, info.scale if info.quantized else 0.0, info.zero_point)

    def normalize(self, pixels: np.ndarray) -> np.ndarray:
        """A uint8 (H, W, C) image at the model's size to the input tensor's values, (1, H, W, C)."""
        return prepare_pixels(self._lut, pixels)[None]

    def predict_pixels(self, pixels: np.ndarray, batch: int | None = None) -> np.ndarray:
        """Probabilities (N, K) for uint8 images (N, H, W, C) already at the model's size, ``batch`` per invoke.

        The path export's parity check and ``eval`` take: the same preparation
        and interpreter as :meth:`classify`, without decoding and resizing.
        """
        pixels = np.asarray(pixels)
        size = check_int(batch, "batch") if batch is not None else max(1, len(pixels))
        out = [self.predict(prepare_pixels(self._lut, pixels[start:start + size]))
               for start in range(0, len(pixels), size)]
        return np.concatenate(out) if out else np.zeros((0, self.num_classes), np.float32)

    def load_pixels(self, src: Any) -> np.ndarray:
        """Decode and resize ``src`` to a uint8 (H, W, C) array at the model's input size."""
        img = load_image(src, channels=self.channels, draft=self.input_size if self.draft else None)
        return resize_image(img, self.input_size, self.resize)

    def preprocess(self, src: Any) -> np.ndarray:
        """The input tensor (1, H, W, C) for an image: a path, encoded bytes, a PIL image or an array."""
        return self.normalize(self.load_pixels(src))

    # ------------------------------------------------------------------ running
    def predict(self, tensor: np.ndarray) -> np.ndarray:
        """Class probabilities (N, K) for preprocessed input: (N, H, W, C) or (H, W, C).

        The tensor is in the input's dtype, or normalized floats for a quantized model.
        """
        raw = self.runner.run(self.runner.as_input(tensor))
        return self.postprocess(raw)

    def postprocess(self, raw: np.ndarray) -> np.ndarray:
        """Raw model output (N, ...) to probabilities (N, K): dequantized, softmaxed when they are logits."""
        scores = self.runner.dequantize(raw).reshape(raw.shape[0], -1)
        kind = self.output_kind
        if kind == "auto":  # decided on the first output, then kept: a model gives one or the other
            kind = self._auto_kind = self._auto_kind or (
                "probabilities" if _look_like_probabilities(scores) else "logits")
        if kind == "logits":
            scores = scores - scores.max(axis=1, keepdims=True)
            np.exp(scores, out=scores)
            scores /= scores.sum(axis=1, keepdims=True)
        return scores

    def top_k(self, probs: np.ndarray, k: int = 5) -> list[Prediction]:
        """The k best classes of one row of probabilities, best first (ties: lower index first)."""
        k = min(check_int(k, "top_k"), probs.shape[-1])
        if k < probs.shape[-1]:
            part = np.argpartition(-probs, k - 1)[:k]
        else:
            part = np.arange(probs.shape[-1])
        order = part[np.lexsort((part, -probs[part]))]
        return [Prediction(self.labels[i], int(i), float(probs[i])) for i in order]

    def classify(self, src: Any, top_k: int = 5) -> list[Prediction]:
        """Top-k predictions for one image (path, bytes, PIL image or array)."""
        return self.top_k(self.predict(self.preprocess(src))[0], top_k)

    def classify_batch(self, sources: Sequence[Any], top_k: int = 5,
                       batch_size: int | None = None) -> list[list[Prediction]]:
        """Top-k for several images, run ``batch_size`` at a time (all at once by default) by resizing the input."""
        sources = list(sources)
        if not sources:
            return []
        size = check_int(batch_size, "batch_size") if batch_size is not None else len(sources)
        results: list[list[Prediction]] = []
        for start in range(0, len(sources), size):
            tensors = [self.preprocess(s) for s in sources[start:start + size]]
            probs = self.predict(np.concatenate(tensors))
            results.extend(self.top_k(row, top_k) for row in probs)
        return results

    def replicate(self, num_threads: int | None = None) -> "Classifier":
        """The same classifier (model, labels, preprocessing) on its own interpreter, for another thread."""
        twin = Classifier(self.runner.copy(num_threads), labels=self.labels, mean=self.mean, std=self.std,
                          resize=self.resize, output_kind=self.output_kind, metadata=self.metadata, draft=self.draft)
        twin._auto_kind = self._auto_kind
        return twin

    def classify_iter(self, sources: Iterable[Any], top_k: int = 5, *, workers: int = 1, prefetch: int = 4,
                      errors: str = "raise", interpreters: int = 1,
                      ) -> Iterator[tuple[Any, list[Prediction] | EdgeclsError]]:
        """Yield ``(source, predictions)`` in order, decoding ahead in ``workers`` threads while the model runs.

        Decoding (Pillow) and inference (the interpreter) both release the GIL,
        so on a multi-core CPU the two overlap. ``interpreters=N`` instead runs
        N copies of the model, each in its own thread with ``threads // N``
        interpreter threads, each decoding and classifying whole images: on a
        multi-core CPU that gives more images per second than one interpreter
        using every core (no per-layer synchronisation, decoding spread over
        the cores), at the cost of N times the interpreter's memory. With
        ``errors="return"`` an image that cannot be decoded yields
        ``(source, ImageError)`` and the iteration goes on; with ``"raise"``
        the error is raised.
        """
        if errors not in ("raise", "return"):
            raise UsageError(f"errors must be 'raise' or 'return', got {errors!r}")
        check_threads(workers, "workers")  # each a thread: a typo of 100000 would start 100000 of them
        check_threads(interpreters, "interpreters")
        if interpreters > 1:
            job, threads, name = self._replica_job(top_k, interpreters), interpreters, "edgecls-classify"
        else:
            job, threads, name = self._safe_preprocess, workers, "edgecls-decode"
        it = iter(sources)
        pending: collections.deque = collections.deque()
        with ThreadPoolExecutor(max_workers=threads, thread_name_prefix=name) as pool:
            def fill() -> None:
                while len(pending) < max(prefetch, 2 * threads if interpreters > 1 else threads):
                    try:
                        src = next(it)
                    except StopIteration:
                        return
                    pending.append((src, pool.submit(job, src)))

            try:
                fill()
                while pending:
                    src, fut = pending.popleft()
                    fill()
                    result = fut.result()
                    if isinstance(result, EdgeclsError):
                        if errors == "raise":
                            raise result
                        yield src, result
                    elif interpreters > 1:
                        yield src, result
                    else:
                        yield src, self.top_k(self.predict(result)[0], top_k)
            finally:
                for _, fut in pending:
                    fut.cancel()
                if interpreters > 1:
                    job.close()  # type: ignore[attr-defined]

    def _replica_job(self, top_k: int, n: int) -> Any:
        """fn(source) -> predictions or the ImageError, on the calling thread's own replica (made on first use)."""
        import threading

        local, made, lock = threading.local(), [], threading.Lock()
        per = max(1, self.num_threads // n)

        def job(src: Any) -> list[Prediction] | EdgeclsError:
            clf = getattr(local, "clf", None)
            if clf is None:
                clf = local.clf = self.replicate(per)
                with lock:
                    made.append(clf)
            tensor = clf._safe_preprocess(src)
            if isinstance(tensor, EdgeclsError):
                return tensor
            return clf.top_k(clf.predict(tensor)[0], top_k)

        def close() -> None:
            for clf in made:
                clf.close()

        job.close = close  # type: ignore[attr-defined]
        return job

    def _safe_preprocess(self, src: Any) -> np.ndarray | EdgeclsError:
        try:
            return self.preprocess(src)
        except (ImageError, DependencyMissing) as exc:
            return exc

    def close(self) -> None:
        self.runner.close()

    def __enter__(self) -> "Classifier":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        h, w = self.input_size
        return (f"Classifier({self.name!r}, {h}x{w}x{self.channels} {self.input_dtype}, {self.num_classes} classes, "
                f"backend={self.backend}, threads={self.num_threads})")


def _look_like_probabilities(scores: np.ndarray) -> bool:
    if scores.size == 0:
        return True
    if scores.min() < -1e-3 or scores.max() > 1.0 + 1e-3:
        return False
    return bool(np.all(np.abs(scores.sum(axis=1) - 1.0) <= 0.05))
