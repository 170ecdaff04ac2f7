"""TFLite Metadata (the schema MediaPipe Tasks and the LiteRT support library read), read without TensorFlow.

Layout, as tflite-support's MetadataPopulator writes it and as
:mod:`edgecls.export.metadata` writes it:

* the model's ``metadata`` list has an entry ``TFLITE_METADATA`` naming a
  buffer that holds a ``ModelMetadata`` flatbuffer (file identifier ``M001``);
* associated files (``labels.txt``) are an uncompressed zip appended after
  the model flatbuffer, so a zip reader opens the ``.tflite`` file itself.

What the metadata schema has no field for (resize policy, output kind,
free extras) is JSON in the subgraph's ``CustomMetadata`` named ``edgecls``.
"""
from __future__ import annotations

import io
import json
import struct
import zipfile
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from edgecls._vendor import metadata_schema as mfb
from edgecls.errors import EdgeclsError
from edgecls.runtime import options
from edgecls.runtime.modelfile import ModelFile, ModelFileError, ModelSource, load_model, read_model_summary, reading

__all__ = ["InvalidMetadata", "MetadataError", "ModelMetadata", "read_associated_files", "read_metadata",
           "read_model_summary"]

METADATA_NAME = "TFLITE_METADATA"  # the model metadata entry readers look for
METADATA_IDENTIFIER = b"M001"
CUSTOM_NAME = "edgecls"  # our CustomMetadata entry

COLOR_SPACES = ("RGB", "GRAYSCALE")
OUTPUT_KINDS = tuple(k for k in options.OUTPUT_KINDS if k != "auto")  # what a model says it outputs
RESIZE_POLICIES = options.RESIZE_POLICIES


class MetadataError(ModelFileError):
    """Damaged metadata, or not a TFLite flatbuffer (a ValueError); the message names the file."""


class InvalidMetadata(EdgeclsError, ValueError):
    """Metadata that cannot be written: a value :class:`ModelMetadata` refuses, or one that does not fit the model.

    A user's error (a class name with a newline, a GRAYSCALE model given RGB
    metadata), so one line and no traceback; also a ``ValueError``, as before.
    """


@dataclass(frozen=True)
class ModelMetadata:
    name: str
    version: str = "1"
    description: str = ""
    author: str = "edgecls"
    labels: tuple[str, ...] = ()
    color_space: str = "RGB"  # "RGB" or "GRAYSCALE": the input tensor's colour space
    # NormalizationOptions as stored: the model computes (pixel - mean) / std on pixels in 0..255.
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    output_kind: str = "probabilities"  # or "logits"
    resize: str = "stretch"  # edgecls' aspect policy ("stretch"|"crop"), kept in the edgecls CustomMetadata
    extra: dict = field(default_factory=dict)  # free JSON-able extras (source, mode, recipe name), round-tripped

    def __post_init__(self) -> None:
        # Lists are accepted and stored as tuples, so equal metadata compares equal.
        object.__setattr__(self, "labels", tuple(self.labels))
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))
        for name, allowed in (("color_space", COLOR_SPACES), ("output_kind", OUTPUT_KINDS), ("resize", RESIZE_POLICIES)):
            if getattr(self, name) not in allowed:
                raise InvalidMetadata(f"{name} must be one of {', '.join(allowed)}; got {getattr(self, name)!r}")
        if len(self.mean) != len(self.std) or len(self.mean) not in (1, 3):
            raise InvalidMetadata(f"mean and std need 1 or 3 values each (MediaPipe reads no other); "
                             f"got {len(self.mean)} and {len(self.std)}")
        if any(s == 0 for s in self.std):
            raise InvalidMetadata(f"std values must be non-zero; got {self.std}")
        for label in self.labels:
            if not isinstance(label, str) or not label.strip() or "\n" in label or "\r" in label:
                raise InvalidMetadata(f"labels must be non-empty one-line strings (labels.txt has one per line); "
                                 f"got {label!r}")


def read_metadata(model: ModelSource) -> ModelMetadata | None:
    """The metadata of a model (bytes or path); None when it has no ``TFLITE_METADATA``.

    Metadata written by other tools reads too: what it lacks (resize, extra) takes the defaults.
    """
    mf = _load(model)
    mm = _parse(mf)
    if mm is None:
        return None
    with reading(mf.where, "metadata", MetadataError):  # also values ModelMetadata refuses, bad JSON
        return _to_model_metadata(mm, lambda name: _associated_file(mf, name))


def read_associated_files(model: ModelSource) -> dict[str, bytes]:
    """The files zipped onto the model (``labels.txt``...), by name; {} when there are none."""
    mf = _load(model)
    try:
        return _unzip(mf.data)
    except _ZIP_DAMAGE as err:
        # No zip at all reads the same as a damaged one: the metadata tells which it is.
        mm = _parse(mf)
        with reading(mf.where, "metadata", MetadataError):
            referenced = mm is not None and _referenced_files(mm)
        if referenced:
            raise MetadataError(f"{mf.where}: the metadata names associated files but the zip after the model "
                                f"is missing or damaged (truncated model?): {err}") from None
        return {}


# --- reading the metadata ------------------------------------------------------------

# What zipfile raises on bytes that are not (or no longer) a zip.
_ZIP_DAMAGE = (zipfile.BadZipFile, zipfile.LargeZipFile, KeyError, EOFError, NotImplementedError, RuntimeError,
               ValueError, OSError, struct.error, UnicodeDecodeError)


def _load(model: ModelSource) -> ModelFile:
    try:
        return load_model(model)
    except MetadataError:
        raise
    except ModelFileError as err:
        raise MetadataError(str(err)) from None


def _unzip(data: bytes) -> dict[str, bytes]:
    # zipfile finds the zip from its end record, so the model bytes before it do not matter.
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def _parse(mf: ModelFile) -> Any | None:
    """The ModelMetadataT in the model's TFLITE_METADATA buffer, or None."""
    m = mf.model
    raw = None
    for i in range(m.MetadataLength()):
        entry = m.Metadata(i)
        if entry.Name() == METADATA_NAME.encode():
            if entry.Buffer() >= m.BuffersLength():
                raise MetadataError(f"{mf.where}: {METADATA_NAME} points to buffer {entry.Buffer()}, which does not exist")
            data = m.Buffers(entry.Buffer()).DataAsNumpy()
            raw = data.tobytes() if isinstance(data, np.ndarray) else b""
            break
    if raw is None:
        return None
    if len(raw) < 8 or not mfb.ModelMetadata.ModelMetadataBufferHasIdentifier(raw, 0):
        raise MetadataError(f"{mf.where}: {METADATA_NAME} is not a TFLite metadata flatbuffer (no 'M001' identifier)")
    with reading(mf.where, METADATA_NAME, MetadataError):
        return mfb.ModelMetadataT.InitFromPackedBuf(raw, 0)


def _referenced_files(mm: Any) -> list[str]:
    files = list(mm.associatedFiles or [])
    for sg in mm.subgraphMetadata or []:
        files += sg.associatedFiles or []
        for tensor in (sg.inputTensorMetadata or []) + (sg.outputTensorMetadata or []):
            files += tensor.associatedFiles or []
    return [_text(f.name) for f in files]


def _associated_file(mf: ModelFile, name: str) -> bytes:
    try:
        return _unzip(mf.data)[name]
    except _ZIP_DAMAGE as err:
        raise MetadataError(f"{mf.where}: the metadata names the associated file {name!r} but it is missing "
                            f"or damaged (truncated model?): {err!r}") from None


def _text(value: bytes | str | None, default: str = "") -> str:
    if value is None:
        return default
    return value.decode("utf-8") if isinstance(value, bytes) else value


def _float32(values: Any) -> tuple[float, ...]:
    # Stored as float32: take the shortest decimal that gives the same float32, so 0.229 reads back as 0.229.
    return tuple(float(str(np.float32(v))) for v in values)


def _to_model_metadata(mm: Any, read_file: Callable[[str], bytes]) -> ModelMetadata:
    sg = mm.subgraphMetadata[0] if mm.subgraphMetadata else mfb.SubGraphMetadataT()
    custom: dict[str, Any] = {}
    for cm in sg.customMetadata or []:
        if _text(cm.name) == CUSTOM_NAME:
            custom = json.loads(np.asarray(cm.data, dtype=np.uint8).tobytes().decode("utf-8"))
    image = (sg.inputTensorMetadata or [None])[0]
    color_space, mean, std = "RGB", (0.0,), (1.0,)
    if image is not None:
        props = image.content.contentProperties if image.content else None
        if isinstance(props, mfb.ImagePropertiesT):
            spaces = {mfb.ColorSpaceType.RGB: "RGB", mfb.ColorSpaceType.GRAYSCALE: "GRAYSCALE"}
            if props.colorSpace not in spaces:
                raise ValueError(f"unsupported input colour space (ColorSpaceType {props.colorSpace})")
            color_space = spaces[props.colorSpace]
        for unit in image.processUnits or []:
            if isinstance(unit.options, mfb.NormalizationOptionsT):
                mean, std = _float32(unit.options.mean), _float32(unit.options.std)
                break
    output = (sg.outputTensorMetadata or [None])[0]
    labels: tuple[str, ...] = ()
    if output is not None:
        label_files = [f for f in output.associatedFiles or [] if f.type == mfb.AssociatedFileType.TENSOR_AXIS_LABELS]
        # The default-locale file first, as MediaPipe picks it.
        label_files.sort(key=lambda f: bool(_text(f.locale)))
        if label_files:
            text = read_file(_text(label_files[0].name)).decode("utf-8")
            labels = tuple(line.rstrip("\r") for line in text.split("\n"))
            labels = labels[:-1] if labels and not labels[-1] else labels
    guessed_kind = "logits" if output is not None and _text(output.name) == "logits" else "probabilities"
    return ModelMetadata(
        name=_text(mm.name),
        version=_text(mm.version),
        description=_text(mm.description),
        author=_text(mm.author),
        labels=labels,
        color_space=color_space,
        mean=mean,
        std=std,
        output_kind=custom.get("output_kind", guessed_kind),
        resize=custom.get("resize", "stretch"),
        extra=custom.get("extra", {}),
    )
