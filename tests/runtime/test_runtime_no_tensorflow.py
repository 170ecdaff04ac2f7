"""edgecls.runtime and edgecls.metrics import no TensorFlow, and the runtime imports only what the zipapp packs."""
from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

from tests.runtime.conftest import NORM, ROOT

RUNTIME = ROOT / "edgecls" / "runtime"
HEAVY = ("tensorflow", "tf_keras", "keras", "tensorflow_model_optimization", "jax", "torch")


def _fresh(code: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_runtime_and_metrics_import_no_tensorflow_in_a_fresh_process(rt):
    submodules = sorted(p.stem for p in RUNTIME.glob("*.py") if p.stem not in ("__init__", "__main__"))
    code = f"""
import importlib, json, sys
import edgecls.runtime, edgecls.metrics
for name in {submodules!r}:
    try:
        importlib.import_module("edgecls.runtime." + name)
    except ImportError as exc:  # flatbuffers is optional (metadata); nothing else may be missing
        assert getattr(exc, "name", "") == "flatbuffers", exc
from edgecls.runtime import Classifier
clf = Classifier.from_file({str(rt.int8)!r}, mean={NORM['mean']!r}, std={NORM['std']!r})
top = clf.classify({str(rt.images / 'blob_0.jpg')!r}, top_k=1)[0].label
heavy = sorted(m for m in sys.modules if m.split(".")[0] in {HEAVY!r})
print(json.dumps({{"heavy": heavy, "top": top, "backend": clf.backend}}))
"""
    result = _fresh(code)
    assert result["heavy"] == [] and result["top"] == "blob"
    assert result["backend"] != "tensorflow"


def test_importing_the_package_loads_nothing_else():
    # `import edgecls.runtime` loads nothing but the package itself: no numpy, no interpreter. (How long it
    # takes is measured by benchmarks/runtime.py, not asserted here.)
    result = _fresh("import json, sys; import edgecls.runtime; print(json.dumps({'mods': sorted(m for m in "
                    "sys.modules if m.startswith(('edgecls', 'numpy', 'PIL', 'ai_edge', 'tflite')))}))")
    assert result["mods"] == ["edgecls", "edgecls.runtime"]


def test_the_option_table_loads_no_numpy_click_or_argparse():
    # `edgecls --help` builds classify's click options from it: it must stay light.
    result = _fresh("import json, sys; import edgecls.runtime.options; print(json.dumps({'mods': sorted(m for m "
                    "in sys.modules if m.split('.')[0] in ('numpy', 'click', 'argparse', 'PIL'))}))")
    assert result["mods"] == []


def _imports(path: Path) -> list[tuple[int, str, bool]]:
    """(line, module, at module level) for every import in a file."""
    tree = ast.parse(path.read_text(), str(path))
    found = []

    def visit(node: ast.AST, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = top and not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
            if isinstance(child, ast.Import):
                found.extend((child.lineno, a.name, top) for a in child.names)
            elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                found.append((child.lineno, child.module, top))
            if isinstance(child, ast.If) and getattr(child.test, "id", "") == "TYPE_CHECKING":
                continue
            visit(child, inner)

    visit(tree, True)
    return found


def test_runtime_sources_import_only_what_the_device_has():
    """numpy at module level; Pillow, interpreters, OpenCV, flatbuffers only inside functions; from edgecls
    only the packed modules (runtime, errors, metrics, _vendor). TensorFlow only in the tf.lite backend."""
    packed = ("edgecls.runtime", "edgecls.errors", "edgecls.metrics", "edgecls._vendor")
    third_party_lazy = ("PIL", "cv2", "picamera2", "ai_edge_litert", "tflite_runtime", "flatbuffers")
    stdlib = set(sys.stdlib_module_names)
    problems = []
    for path in sorted(RUNTIME.glob("*.py")):
        for line, module, top in _imports(path):
            root = module.split(".")[0]
            where = f"{path.relative_to(ROOT)}:{line}: {module}"
            if root in stdlib or module == "__future__":
                continue
            if root == "edgecls":
                if module != "edgecls" and not module.startswith(packed):
                    problems.append(f"{where} (not packed in the zipapp)")
            elif root == "numpy":
                continue
            elif root in third_party_lazy:
                if top and not (path.name in ("metadata.py", "modelfile.py") and root == "flatbuffers"):
                    problems.append(f"{where} (import it inside the function that needs it)")
            elif root in HEAVY:
                problems.append(f"{where} (no TensorFlow in the runtime; backends.py imports it by name)")
            else:
                problems.append(f"{where} (not available on a device)")
    assert problems == []
