"""Pack the runtime into one file, a Python zipapp: ``python3 edgecls-runtime.pyz classify model.tflite img.jpg``.

It holds ``edgecls/runtime``, ``edgecls/errors.py``, ``edgecls/metrics.py``,
the vendored flatbuffers schemas (for reading metadata) and, when the packing
environment has it, the pure-Python ``flatbuffers`` package (used only if the
device has none). On the device it needs Python 3.10+, numpy and one
interpreter package (ai-edge-litert or tflite-runtime); Pillow to decode image
files (``.npy`` arrays work without it). The archive is byte-for-byte
reproducible: fixed timestamps, sorted entries.

    python -m edgecls.runtime.pack dist/edgecls-runtime.pyz
"""
from __future__ import annotations

import importlib.util
import io
import os
import re
import sys
import zipfile
from pathlib import Path

_PKG = Path(__file__).resolve().parents[1]  # .../edgecls
_DATE = (1980, 1, 1, 0, 0, 0)
_DEPS = "_deps"  # vendored third-party packages, appended to sys.path (an installed copy wins)

_MAIN = f'''\
"""edgecls runtime (zipapp). Usage: python3 {{pyz}} classify MODEL IMAGE... | bench MODEL | eval MODEL --data NPZ | explain MODEL IMAGE... | info MODEL | backends"""
import os
import sys

sys.path.append(os.path.join(os.path.dirname(os.path.abspath(__file__)), "{_DEPS}"))
from edgecls.runtime.cli import main  # noqa: E402

sys.exit(main(prog=os.path.basename(sys.argv[0]) or "edgecls-runtime.pyz"))
'''


def _version() -> str:
    text = (_PKG / "__init__.py").read_text(encoding="utf-8")
    found = re.search(r"""__version__\s*=\s*["']([^"']+)["']""", text)
    return found.group(1) if found else "0"


def packed_files() -> dict[str, bytes]:
    """Archive name -> content, for everything the zipapp holds."""
    files: dict[str, bytes] = {
        "__main__.py": _MAIN.encode(),
        # A minimal package __init__: the real one may grow imports the device does not need.
        "edgecls/__init__.py": f'"""edgecls runtime (zipapp)."""\n__version__ = "{_version()}"\n'.encode(),
    }
    for name in ("errors.py", "metrics.py"):
        files[f"edgecls/{name}"] = (_PKG / name).read_bytes()
    for path in sorted((_PKG / "runtime").glob("*.py")):
        files[f"edgecls/runtime/{path.name}"] = path.read_bytes()
    vendor = _PKG / "_vendor"
    if vendor.is_dir():
        files["edgecls/_vendor/__init__.py"] = (vendor / "__init__.py").read_bytes() \
            if (vendor / "__init__.py").exists() else b""
        for path in sorted(vendor.glob("*.py")):
            files[f"edgecls/_vendor/{path.name}"] = path.read_bytes()
    spec = importlib.util.find_spec("flatbuffers")
    if spec is not None and spec.submodule_search_locations:
        root = Path(list(spec.submodule_search_locations)[0])
        for path in sorted(root.rglob("*.py")):
            files[f"{_DEPS}/flatbuffers/{path.relative_to(root).as_posix()}"] = path.read_bytes()
    return files


def build_zipapp(out: str | os.PathLike, *, interpreter: str = "/usr/bin/env python3", compress: bool = True) -> Path:
    """Write the runtime zipapp to ``out`` (made executable); returns its path."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    buf.write(b"#!" + interpreter.encode() + b"\n")
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(buf, "w", method) as zf:
        for name, data in sorted(packed_files().items()):
            info = zipfile.ZipInfo(name, _DATE)
            info.compress_type = method
            info.external_attr = 0o644 << 16
            zf.writestr(info, data)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_bytes(buf.getvalue())
    os.chmod(tmp, 0o755)
    os.replace(tmp, out)  # atomic: never a half-written archive under the final name
    return out


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0].startswith("-"):
        print("usage: python -m edgecls.runtime.pack OUT.pyz", file=sys.stderr)
        return 2
    path = build_zipapp(args[0])
    print(f"{path} ({path.stat().st_size / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
