"""Write TFLite Metadata into a model, as tflite-support's MetadataPopulator does, without it.

MediaPipe's bundled metadata writer needs a compiled module its wheel lacks,
so this module builds the flatbuffers itself with the vendored generated code
(:mod:`edgecls._vendor`). The model is unpacked with the flatbuffers object API,
its ``TFLITE_METADATA`` buffer set and repacked; ``labels.txt`` is then zipped
onto the end (stored, not compressed: readers use the bytes in place).
Reading it back is :mod:`edgecls.runtime.metadata`.
"""
from __future__ import annotations

import io
import json
import zipfile

import flatbuffers
import numpy as np

from edgecls._vendor import metadata_schema as mfb
from edgecls._vendor import tflite_schema as fb
from edgecls.runtime.metadata import (CUSTOM_NAME, METADATA_IDENTIFIER, METADATA_NAME, InvalidMetadata,
                                     ModelMetadata)
from edgecls.runtime.modelfile import load_model, reading

LABELS_FILE = "labels.txt"
# CustomMetadata arrived in metadata schema 1.5.0; readers older than that must refuse rather than misread.
MIN_PARSER_VERSION = "1.5.0"
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed, so the same model and metadata give the same bytes


class _AlignedBuffer(fb.BufferT):
    """A BufferT that keeps ``data:[ubyte] (force_align: 16)`` from schema.fbs; the generated Pack drops it."""

    def Pack(self, builder: flatbuffers.Builder) -> int:
        if self.data is not None:
            builder.Prep(16, len(self.data))  # pad so that the data that follows starts on 16 bytes
        return super().Pack(builder)


def add_metadata(model_bytes: bytes, meta: ModelMetadata) -> bytes:
    """A copy of the model with ``meta`` as its TFLite metadata and labels.txt zipped on; replaces earlier metadata."""
    mf = load_model(model_bytes)
    with reading(mf.where, "TFLite model"):
        model = fb.ModelT.InitFromObj(mf.model)
    if not model.subgraphs:
        raise InvalidMetadata("the model has no subgraph")
    _check_repackable(model)
    sg = model.subgraphs[0]
    inputs, outputs = [[sg.tensors[i] for i in ([] if ids is None else ids)] for ids in (sg.inputs, sg.outputs)]
    if len(inputs) != 1 or not outputs:
        raise InvalidMetadata(f"image metadata needs a model with one input and an output; this one has "
                         f"{len(inputs)} inputs and {len(outputs)} outputs")
    image = inputs[0]
    _check_tensors(image, outputs, meta)

    raw = _metadata_flatbuffer(meta, [_name(t) for t in outputs])
    with reading(mf.where, "TFLite model"):  # an old metadata entry may name a buffer that is not there
        _set_metadata_buffer(model, raw)
    model.buffers = [_AlignedBuffer(b.data, b.offset, b.size) for b in model.buffers]
    builder = flatbuffers.Builder(len(mf.data) + len(raw) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    files = {LABELS_FILE: ("\n".join(meta.labels) + "\n").encode("utf-8")} if meta.labels else {}
    return _append_zip(bytes(builder.Output()), files)


def _name(tensor: fb.TensorT) -> str:
    name = tensor.name
    return name.decode("utf-8", "replace") if isinstance(name, bytes) else (name or "")


def _check_repackable(model: fb.ModelT) -> None:
    """Refuse what a repack through the object API would silently break."""
    if model.externalBuffers or model.externalBufferGroups or any(b.offset > 1 for b in model.buffers or []):
        raise InvalidMetadata("the model keeps its weights outside the flatbuffer (a >2 GB layout); metadata cannot be added")
    for sg in model.subgraphs:
        for op in sg.operators or []:
            # Options of a type newer than the vendored schema unpack as None and would be lost.
            lost = (op.builtinOptionsType and op.builtinOptions is None) or (
                op.builtinOptions2Type and op.builtinOptions2 is None)
            if lost:
                raise InvalidMetadata("the model uses operator options newer than edgecls' vendored TFLite schema; "
                                 "update edgecls/_vendor/tflite_schema.py")


def _check_tensors(image: fb.TensorT, outputs: list[fb.TensorT], meta: ModelMetadata) -> None:
    shape = [int(d) for d in (image.shape if image.shape is not None else [])]
    if len(shape) != 4:
        raise InvalidMetadata(f"input {_name(image)!r} has shape {shape}; image metadata needs [batch, height, width, channels]")
    channels = {"RGB": 3, "GRAYSCALE": 1}[meta.color_space]
    if shape[-1] != channels:
        raise InvalidMetadata(f"input {_name(image)!r} has {shape[-1]} channels but color_space {meta.color_space} "
                         f"needs {channels}")
    if len(meta.mean) not in (1, channels):
        raise InvalidMetadata(f"mean/std have {len(meta.mean)} values; give 1 or one per channel ({channels})")
    classes = int(outputs[0].shape[-1]) if outputs[0].shape is not None and len(outputs[0].shape) else 0
    if meta.labels and len(meta.labels) != classes:
        raise InvalidMetadata(f"{len(meta.labels)} labels given but output {_name(outputs[0])!r} has {classes} classes")


def _metadata_flatbuffer(meta: ModelMetadata, output_names: list[str]) -> bytes:
    """The ModelMetadata flatbuffer, laid out as MediaPipe's ImageClassifierWriter lays it out."""
    norm = mfb.NormalizationOptionsT()
    norm.mean, norm.std = list(meta.mean), list(meta.std)
    unit = mfb.ProcessUnitT()
    unit.optionsType, unit.options = mfb.ProcessUnitOptions.NormalizationOptions, norm
    props = mfb.ImagePropertiesT()
    props.colorSpace = getattr(mfb.ColorSpaceType, meta.color_space)
    image = mfb.TensorMetadataT()
    image.name, image.description = "image", "Input image to be classified."
    image.content = _content(mfb.ContentProperties.ImageProperties, props)
    image.processUnits = [unit]

    outputs = []
    for i, tensor_name in enumerate(output_names):
        out = mfb.TensorMetadataT()
        # MediaPipe uses the name as the head name and reads it unchecked: never leave it empty.
        out.name = meta.output_kind if i == 0 else tensor_name or f"output_{i}"
        out.content = _content(mfb.ContentProperties.FeatureProperties, mfb.FeaturePropertiesT())
        if i == 0:
            n = len(meta.labels) or "the"
            out.description = (
                f"Probabilities of {n} labels respectively." if meta.output_kind == "probabilities"
                else f"Logits (unnormalized scores) of {n} labels respectively; softmax gives probabilities.")
            if meta.output_kind == "probabilities":
                out.stats = mfb.StatsT()
                out.stats.max, out.stats.min = [1.0], [0.0]
            if meta.labels:
                labels = mfb.AssociatedFileT()
                labels.name, labels.type = LABELS_FILE, mfb.AssociatedFileType.TENSOR_AXIS_LABELS
                labels.description = "Labels for categories that the model can recognize."
                out.associatedFiles = [labels]
        outputs.append(out)

    try:
        ours = {"output_kind": meta.output_kind, "resize": meta.resize, "extra": meta.extra}
        custom_json = json.dumps(ours, sort_keys=True)
    except TypeError as err:
        raise InvalidMetadata(f"ModelMetadata.extra must be JSON-serialisable: {err}") from None
    custom = mfb.CustomMetadataT()
    custom.name, custom.data = CUSTOM_NAME, np.frombuffer(custom_json.encode("utf-8"), dtype=np.uint8)

    sg = mfb.SubGraphMetadataT()
    sg.inputTensorMetadata, sg.outputTensorMetadata, sg.customMetadata = [image], outputs, [custom]
    mm = mfb.ModelMetadataT()
    mm.name, mm.version, mm.description, mm.author = meta.name, meta.version, meta.description, meta.author
    mm.subgraphMetadata, mm.minParserVersion = [sg], MIN_PARSER_VERSION
    builder = flatbuffers.Builder(1024)
    builder.Finish(mm.Pack(builder), file_identifier=METADATA_IDENTIFIER)
    return bytes(builder.Output())


def _content(kind: int, props: object) -> mfb.ContentT:
    content = mfb.ContentT()
    content.contentPropertiesType, content.contentProperties = kind, props
    return content


def _set_metadata_buffer(model: fb.ModelT, raw: bytes) -> None:
    """Point the model's TFLITE_METADATA entry at ``raw``, reusing the old entry's buffer if there is one."""
    data = np.frombuffer(raw, dtype=np.uint8)
    entries = [m for m in model.metadata or [] if m.name in (METADATA_NAME, METADATA_NAME.encode())]
    if entries:
        model.buffers[entries[0].buffer].data = data
        for extra in entries[1:]:  # duplicates (never written by us): empty them, keep buffer indices valid
            model.buffers[extra.buffer].data = None
            model.metadata.remove(extra)
        return
    # Buffer 0 is the schema's empty sentinel that tensors without data point to: never hand it out.
    model.buffers = model.buffers or [fb.BufferT()]
    model.buffers.append(fb.BufferT(data=data))
    entry = fb.MetadataT()
    entry.name, entry.buffer = METADATA_NAME, len(model.buffers) - 1
    model.metadata = (model.metadata or []) + [entry]


def _append_zip(flatbuffer: bytes, files: dict[str, bytes]) -> bytes:
    """Zip ``files`` onto the end, with offsets from the file start, as MetadataPopulator's ZipFile(mode="a") does."""
    if not files:
        return flatbuffer
    out = io.BytesIO()
    out.write(flatbuffer)
    # Mode "w" writes from the current position (offsets count from the file start) and, unlike
    # "a", never tries to read the weights before it as a zip.
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zf:
        for name, data in files.items():
            zf.writestr(zipfile.ZipInfo(name, date_time=_ZIP_DATE), data)
    return out.getvalue()
