"""Read a .tflite file and check its structure before any native interpreter sees it.

Some interpreters (tflite-runtime 2.14, the one Raspberry Pi OS users install)
do not verify the flatbuffer and crash with a segmentation fault on a
truncated file. :func:`verify_tflite` walks every table and vector the
interpreter will read (the model, operator codes, subgraphs, tensors and their
quantization, operators, buffers, metadata, signatures) and checks that each
lies inside the file, in pure Python: a few milliseconds even for large models,
since weight data is bounds-checked, not read.
"""
from __future__ import annotations

import os
import struct

from edgecls.runtime.errors import RuntimeModelError

TFLITE_IDENTIFIER = b"TFL3"
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_I32 = struct.Struct("<i")
_U64 = struct.Struct("<Q")


def read_model(path: str | os.PathLike) -> bytes:
    """The bytes of a .tflite file, verified; :class:`RuntimeModelError` (one line) otherwise."""
    name = os.fspath(path)
    try:
        with open(name, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        raise RuntimeModelError(f"{name}: model file not found") from None
    except IsADirectoryError:
        raise RuntimeModelError(f"{name}: is a directory, not a .tflite model file") from None
    except PermissionError:
        raise RuntimeModelError(f"{name}: permission denied reading the model file") from None
    except OSError as exc:
        raise RuntimeModelError(f"{name}: cannot read the model file ({exc.strerror or exc})") from None
    verify_tflite(data, name=name)
    return data


class _Malformed(Exception):
    pass


class _Reader:
    """Bounds-checked flatbuffer access: every read raises _Malformed when it leaves the buffer."""

    def __init__(self, buf: bytes):
        self.buf = memoryview(buf)
        self.size = len(buf)

    def _need(self, pos: int, n: int, what: str) -> None:
        if pos < 0 or pos + n > self.size:
            raise _Malformed(f"{what} at byte {pos} runs past the end of the file ({self.size} bytes)")

    def u16(self, pos: int, what: str) -> int:
        self._need(pos, 2, what)
        return _U16.unpack_from(self.buf, pos)[0]

    def u32(self, pos: int, what: str) -> int:
        self._need(pos, 4, what)
        return _U32.unpack_from(self.buf, pos)[0]

    def i32(self, pos: int, what: str) -> int:
        self._need(pos, 4, what)
        return _I32.unpack_from(self.buf, pos)[0]

    def u64(self, pos: int, what: str) -> int:
        self._need(pos, 8, what)
        return _U64.unpack_from(self.buf, pos)[0]

    def table(self, pos: int, what: str) -> "_Table":
        vtable = pos - self.i32(pos, what)
        vsize = self.u16(vtable, f"{what} vtable")
        if vsize < 4 or vsize % 2:
            raise _Malformed(f"{what} has a corrupt vtable")
        self._need(vtable, vsize, f"{what} vtable")
        tsize = self.u16(vtable + 2, f"{what} vtable")
        self._need(pos, max(tsize, 4), what)
        return _Table(self, pos, vtable, vsize, what)


class _Table:
    def __init__(self, r: _Reader, pos: int, vtable: int, vsize: int, what: str):
        self.r, self.pos, self.vtable, self.vsize, self.what = r, pos, vtable, vsize, what

    def _field(self, i: int) -> int:
        slot = 4 + 2 * i
        if slot + 2 > self.vsize:
            return 0
        off = self.r.u16(self.vtable + slot, self.what)
        return self.pos + off if off else 0

    def scalar(self, i: int, fmt: struct.Struct, default: int = 0) -> int:
        at = self._field(i)
        if not at:
            return default
        self.r._need(at, fmt.size, self.what)
        return fmt.unpack_from(self.r.buf, at)[0]

    def ref(self, i: int) -> int:
        """Absolute position of an offset field's target, or 0 when absent."""
        at = self._field(i)
        return at + self.r.u32(at, self.what) if at else 0

    def vector(self, i: int, elem: int, what: str) -> tuple[int, int]:
        """(start of elements, length) of a vector field, bounds-checked; (0, 0) when absent."""
        at = self.ref(i)
        if not at:
            return 0, 0
        n = self.r.u32(at, what)
        if n > self.r.size // max(elem, 1):
            raise _Malformed(f"{what} claims {n} elements, more than the file holds")
        self.r._need(at + 4, n * elem, what)
        return at + 4, n

    def tables(self, i: int, what: str) -> list[_Table]:
        start, n = self.vector(i, 4, what)
        return [self.r.table(start + 4 * k + self.r.u32(start + 4 * k, what), f"{what}[{k}]") for k in range(n)]

    def string(self, i: int, what: str) -> None:
        self.vector(i, 1, what)

    def ints(self, i: int, what: str) -> list[int]:
        start, n = self.vector(i, 4, what)
        return [self.r.i32(start + 4 * k, what) for k in range(n)]


def verify_tflite(data: bytes, *, name: str = "model") -> None:
    """Raise :class:`RuntimeModelError` unless ``data`` is a structurally sound TFLite flatbuffer."""
    if len(data) < 8:
        raise RuntimeModelError(f"{name}: not a TFLite model (the file is {len(data)} bytes; empty or truncated)")
    if bytes(data[4:8]) != TFLITE_IDENTIFIER:
        raise RuntimeModelError(f"{name}: not a TFLite model (no 'TFL3' identifier at byte 4; is this a .tflite file?)")
    try:
        _verify(_Reader(data))
    except _Malformed as exc:
        raise RuntimeModelError(f"{name}: corrupt or truncated TFLite model ({exc}); export or copy it again") from None


def _verify(r: _Reader) -> None:
    model = r.table(r.u32(0, "root offset"), "model")
    opcodes = model.tables(1, "operator_codes")
    for op in opcodes:
        op.string(1, "custom_code")
    buffers = model.tables(4, "buffers")
    for k, buf in enumerate(buffers):
        buf.vector(0, 1, f"buffers[{k}].data")
        offset, size = buf.scalar(1, _U64), buf.scalar(2, _U64)
        if offset > 1 and offset + size > r.size:  # weights stored after the flatbuffer (models over 2 GB)
            raise _Malformed(f"buffers[{k}] points at bytes {offset}..{offset + size}, past the end of the file")
    subgraphs = model.tables(2, "subgraphs")
    if not subgraphs:
        raise _Malformed("the model has no subgraph")
    for s, sub in enumerate(subgraphs):
        tensors = sub.tables(0, f"subgraphs[{s}].tensors")
        for t, tensor in enumerate(tensors):
            what = f"subgraphs[{s}].tensors[{t}]"
            tensor.ints(0, f"{what}.shape")
            if tensor.scalar(2, _U32) >= max(len(buffers), 1):
                raise _Malformed(f"{what} refers to a buffer that does not exist")
            tensor.string(3, f"{what}.name")
            qpos = tensor.ref(4)
            if qpos:
                q = r.table(qpos, f"{what}.quantization")
                for i, size in ((0, 4), (1, 4), (2, 4), (3, 8)):
                    q.vector(i, size, f"{what}.quantization")
            tensor.ints(7, f"{what}.shape_signature")
        for io in (1, 2):
            for idx in sub.ints(io, f"subgraphs[{s}].{'inputs' if io == 1 else 'outputs'}"):
                if not 0 <= idx < len(tensors):
                    raise _Malformed(f"subgraphs[{s}] names tensor {idx}, which does not exist")
        for o, op in enumerate(sub.tables(3, f"subgraphs[{s}].operators")):
            what = f"subgraphs[{s}].operators[{o}]"
            if op.scalar(0, _U32) >= len(opcodes):
                raise _Malformed(f"{what} uses an operator code that does not exist")
            for io in (1, 2, 8):  # inputs, outputs, intermediates
                for idx in op.ints(io, what):
                    if not -1 <= idx < len(tensors):
                        raise _Malformed(f"{what} names tensor {idx}, which does not exist")
            opts = op.ref(4)  # builtin_options: a table of the union's type
            if opts:
                r.table(opts, f"{what}.builtin_options")
            op.vector(5, 1, f"{what}.custom_options")
        sub.string(4, f"subgraphs[{s}].name")
    model.string(3, "description")
    model.ints(5, "metadata_buffer")
    for m in model.tables(6, "metadata"):
        m.string(0, "metadata.name")
    for sig in model.tables(7, "signature_defs"):
        for i in (0, 1):
            for tm in sig.tables(i, "signature_defs.tensor_map"):
                tm.string(0, "signature_defs.tensor_map.name")
        sig.string(2, "signature_defs.signature_key")


def metadata_names(data: bytes) -> list[str]:
    """Names in the model's ``metadata`` list (``TFLITE_METADATA``, ``min_runtime_version``...); [] if none.

    Cheap: reads a few tables and no weights. ``data`` should have passed :func:`verify_tflite`.
    """
    try:
        r = _Reader(data)
        model = r.table(r.u32(0, "root offset"), "model")
        names = []
        for m in model.tables(6, "metadata"):
            start, n = m.vector(0, 1, "metadata.name")
            names.append(bytes(r.buf[start:start + n]).decode("utf-8", "replace") if start else "")
        return names
    except _Malformed:
        return []
