"""Bad model files are one clear error before any native code sees them (tflite-runtime 2.14 segfaults on some)."""
from __future__ import annotations

import pytest

from edgecls.runtime import Classifier
from edgecls.runtime.errors import RuntimeModelError
from edgecls.runtime.flatcheck import metadata_names, read_model, verify_tflite


def test_good_models_pass(rt):
    for name in ("float", "int8", "logits", "gray"):
        verify_tflite(getattr(rt, name).read_bytes())


def test_every_truncation_is_refused(rt):
    data = rt.int8.read_bytes()
    cuts = sorted({*range(0, 64), *range(64, len(data), max(1, len(data) // 300)), len(data) - 1})
    for cut in cuts:
        with pytest.raises(RuntimeModelError, match=r"m\.tflite: (not a TFLite model|corrupt or truncated)"):
            verify_tflite(data[:cut], name="m.tflite")


def test_truncated_model_through_the_classifier(rt, tmp_path):
    data = rt.float.read_bytes()
    for frac in (0.1, 0.5, 0.9, 0.99):
        path = tmp_path / f"t{frac}.tflite"
        path.write_bytes(data[: int(len(data) * frac)])
        with pytest.raises(RuntimeModelError, match="corrupt or truncated TFLite model"):
            Classifier.from_file(path)


def test_not_tflite_missing_empty_directory(tmp_path):
    (tmp_path / "x.tflite").write_bytes(b"PK\x03\x04 this is a zip, not a model" * 10)
    with pytest.raises(RuntimeModelError, match=r"x\.tflite: not a TFLite model \(no 'TFL3' identifier"):
        read_model(tmp_path / "x.tflite")
    (tmp_path / "e.tflite").write_bytes(b"")
    with pytest.raises(RuntimeModelError, match="the file is 0 bytes"):
        read_model(tmp_path / "e.tflite")
    with pytest.raises(RuntimeModelError, match="model file not found"):
        read_model(tmp_path / "nope.tflite")
    with pytest.raises(RuntimeModelError, match="is a directory"):
        read_model(tmp_path)


def test_corrupted_offsets_are_refused(rt):
    data = bytearray(rt.float.read_bytes())
    data[0:4] = (len(data) + 100).to_bytes(4, "little")  # root table past the end
    with pytest.raises(RuntimeModelError, match="corrupt or truncated"):
        verify_tflite(bytes(data))


def test_metadata_names(rt, has_meta):
    assert "TFLITE_METADATA" not in metadata_names(rt.float.read_bytes())
    if has_meta:
        assert "TFLITE_METADATA" in metadata_names((rt.folder / "meta.tflite").read_bytes())
