"""Atomic writes: a crash never leaves a file that looks complete and is not.

Write to a temporary file in the same folder, flush it to disk, then rename it
over the target (``os.replace`` is atomic on POSIX and Windows).
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

from edgecls.errors import EdgeclsError


class DiskFull(EdgeclsError):
    """No space (or quota) left while writing a file; the earlier file, if any, is untouched."""


_FULL = (errno.ENOSPC, errno.EDQUOT)


def _file_mode() -> int:
    """0666 less the umask: what open() gives a new file (mkstemp's 0600 would hide outputs from others)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _is_disk_full(err: BaseException) -> bool:
    # Keras and h5py wrap the OSError; look down the chain and at the message.
    while err is not None:
        if isinstance(err, OSError) and err.errno in _FULL:
            return True
        if "No space left on device" in str(err) or "Disk quota exceeded" in str(err):
            return True
        err = err.__cause__ or err.__context__
    return False


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` if the block succeeds.

    For writers that want a file name (Keras ``model.save``); ``suffix`` keeps
    the extension such writers look at.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or path.suffix or ".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.chmod(tmp, _file_mode())
        os.replace(tmp, path)
    except Exception as err:
        if _is_disk_full(err):
            raise DiskFull(f"{path}: no space left on the device while writing it; free some space and run "
                           "again (the earlier file is kept)") from None
        raise
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes(path: str | Path, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    return Path(path)


def write_text(path: str | Path, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, obj: Any) -> Path:
    return write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def read_json(path: str | Path) -> Any:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)
