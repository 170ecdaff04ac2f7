"""TFLite Micro: op check, arena measured by the real tflite-micro interpreter, TFLM vs LiteRT, C sources that compile.

Two tiny int8 models converted in-process (seconds): a conv net with raw-pixel
uint8 input (edgecls's with_pixel_input), trained for a few steps on two
separable classes so its answers mean something, and the same net with a GELU
activation, an op the int8 converter emits and TFLite Micro has no kernel for.
"""
from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("tflite_micro", reason="tflite-micro not installed (pip install 'edgecls[micro]')")

from edgecls.export import micro  # noqa: E402
from edgecls.export.micro_ops import MICRO_RESOLVER  # noqa: E402
from edgecls.runtime.modelfile import ModelFileError, read_model_summary  # noqa: E402

LABELS = ["dark", "bright \"quoted\" é"]


def _net(keras, activation: str):
    inp = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, activation=activation)(inp)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(2)(x)
    return keras.Model(inp, keras.layers.Activation("softmax", name="probs")(x))


@pytest.fixture(scope="module")
def models():
    from edgecls._tf import keras
    from edgecls.export.convert import convert, with_pixel_input

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 64)
    pixels = np.clip(rng.normal(60 + 130 * labels[:, None, None, None], 40, (64, 8, 8, 3)), 0, 255).astype(np.uint8)
    keras.utils.set_random_seed(0)
    net = _net(keras, "relu")
    net.compile("adam", "sparse_categorical_crossentropy")
    net.fit((pixels / 255.0 - 0.5) / 0.25, labels, epochs=20, verbose=0)
    rep = pixels[:16].astype(np.float32)
    good = convert(with_pixel_input(net, channels=3, mean=[0.5], std=[0.25]), "int8", representative=rep,
                   input_type="uint8", output_type="uint8")
    gelu = convert(_net(keras, "gelu"), "int8", representative=rep)
    # Every op has a TFLM kernel, yet TFLM takes neither: float16 weights (DEQUANTIZE of float16) and a
    # dynamic-range (hybrid) FULLY_CONNECTED (float input, int8 weights: 144x16 is over the 1024-weight threshold).
    hybrid = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3), keras.layers.Flatten(),
                               keras.layers.Dense(16), keras.layers.Dense(2)])
    return {"int8": good, "gelu": gelu, "pixels": pixels[16:], "labels": labels[16:],
            "float16": convert(net, "float16"), "dynamic": convert(hybrid, "dynamic")}


@pytest.fixture(scope="module")
def arena(models):
    return micro.measure_arena(models["int8"])


def test_resolver_table_matches_the_schema():
    from edgecls._vendor import tflite_schema as fb

    names = {k for k in vars(fb.BuiltinOperator) if not k.startswith("_")}
    assert len(MICRO_RESOLVER) >= 90 and set(MICRO_RESOLVER) <= names
    assert MICRO_RESOLVER["CONV_2D"] == "AddConv2D" and MICRO_RESOLVER["DEPTHWISE_CONV_2D"] == "AddDepthwiseConv2D"
    assert MICRO_RESOLVER["PADV2"] == "AddPadV2" and "GELU" not in MICRO_RESOLVER


def test_ops_of_a_real_model(models):
    ops = micro.micro_ops(models["int8"])
    assert ops["ops"] == sorted(read_model_summary(models["int8"])["ops"])
    assert {"CONV_2D", "FULLY_CONNECTED", "SOFTMAX"} <= set(ops["ops"]) and ops["unsupported"] == []
    micro.check_micro(models["int8"], "int8")  # no error


def test_unsupported_op_is_one_line_naming_it(models):
    assert micro.micro_ops(models["gelu"])["unsupported"] == ["GELU"]
    for call in (lambda: micro.check_micro(models["gelu"], "gelu_micro"), lambda: micro.measure_arena(models["gelu"]),
                 lambda: micro.c_sources(models["gelu"], "gelu_micro", arena_bytes=1, labels=LABELS)):
        with pytest.raises(micro.MicroError) as err:
            call()
        assert "\n" not in str(err.value) and "GELU" in str(err.value)
        assert "TFLite Micro has no kernel for op(s) GELU" in str(err.value)
    summary = micro.micro_summary(models["gelu"])
    assert summary["ops_supported"] is False and summary["unsupported"] == ["GELU"]
    assert summary["arena_bytes"] is None and "GELU" in summary["arena_note"]
    assert summary["runs"] is False and "GELU" in summary["reason"]
    with pytest.raises(RuntimeError):  # the real interpreter agrees: it has no GELU kernel either
        micro._interpreter(models["gelu"], 1 << 20)


@pytest.mark.parametrize("mode, why", [("float16", "DEQUANTIZE"), ("dynamic", "FULLY_CONNECTED")])
def test_a_model_tflm_refuses_is_not_an_arena_matter(models, mode, why):
    import time

    assert micro.micro_ops(models[mode])["unsupported"] == []  # the op check alone would pass it
    start = time.perf_counter()
    with pytest.raises(micro.MicroRefused) as err:
        micro.measure_arena(models[mode])
    assert time.perf_counter() - start < 2  # refused at once, not after doubling the arena to a GiB
    text = str(err.value)
    assert "\n" not in text and text.startswith("model: TFLite Micro cannot run it: ") and why in text
    assert "arena" not in text and "MiB" not in text
    summary = micro.micro_summary(models[mode])
    assert summary["ops_supported"] is True and summary["runs"] is False and summary["arena_bytes"] is None
    assert why in summary["reason"] and "\n" not in summary["reason"]


def test_not_a_model_is_one_line():
    with pytest.raises(ModelFileError) as err:
        micro.micro_ops(b"not a tflite model at all")
    assert "\n" not in str(err.value)


def test_missing_package_names_the_extra(models, monkeypatch):
    monkeypatch.setitem(sys.modules, "tflite_micro", None)  # import tflite_micro now raises ImportError
    with pytest.raises(micro.MicroError, match=r"pip install 'edgecls\[micro\]'"):
        micro.measure_arena(models["int8"])
    summary = micro.micro_summary(models["int8"])
    assert summary["ops_supported"] is True and summary["arena_bytes"] is None
    assert "not installed" in summary["arena_note"] and summary["runs"] is None


def test_arena_is_the_smallest_that_works(models, arena):
    n = arena["arena_bytes"]
    assert 0 < n < 1 << 20 and arena["tflm_version"] and "bisection" in arena["method"]
    assert "64-bit" in arena["arena_note"]
    assert 0 < arena["arena_planned_bytes"] and 0 < arena["arena_persistent_bytes"]
    assert arena["arena_planned_bytes"] + arena["arena_persistent_bytes"] <= n
    interp = micro._interpreter(models["int8"], n)  # exactly the figure: allocates and runs
    interp.set_input(np.zeros((1, 8, 8, 3), np.uint8), 0)
    interp.invoke()
    for smaller in (n - 1, n - 16, n - 1024):
        if smaller > 0:
            with pytest.raises(RuntimeError):
                micro._interpreter(models["int8"], smaller)


def test_tflm_agrees_with_litert(models, arena):
    from edgecls.export.parity import tflite_probs

    litert = tflite_probs(models["int8"], models["pixels"])
    tflm = micro.micro_probs(models["int8"], models["pixels"], arena["arena_bytes"])
    assert tflm.shape == litert.shape == (48, 2) and tflm.dtype == np.float32
    # Same integer kernels' semantics: at most one output step (1/256) apart, same top-1.
    assert np.abs(tflm - litert).max() <= 1 / 256 + 1e-6
    assert (tflm.argmax(1) == litert.argmax(1)).all()
    record = micro.micro_record(models["int8"], models["pixels"], litert, models["labels"])
    assert record["arena_bytes"] == arena["arena_bytes"] and record["images"] == 48
    assert record["agreement"] == 1.0 and record["tflm_accuracy"] >= 0.9  # the classes are separable
    assert record["resolver"] == f"MicroMutableOpResolver<{len(record['ops'])}>"
    with pytest.raises(micro.MicroError, match="input is"):
        micro.micro_probs(models["int8"], models["pixels"][:, :4], arena["arena_bytes"])


def test_summary_of_a_supported_model(models, arena):
    summary = micro.micro_summary(models["int8"])
    assert summary["ops_supported"] is True and summary["unsupported"] == []
    assert summary["arena_bytes"] == arena["arena_bytes"] and "64-bit" in summary["arena_note"]
    assert summary["runs"] is True and summary["reason"] is None


def test_c_identifier():
    assert micro.c_identifier("int8-micro") == "int8_micro"
    assert micro.c_identifier("8bit") == "m_8bit"
    assert micro.c_identifier("Res Net.8") == "res_net_8"


# A stand-in for TFLM's header: enough of MicroMutableOpResolver<N> to check that the generated
# snippet names real methods (the table's), registers each op once and that N is the op count.
STUB = """\
#pragma once
#include <cstdio>
typedef int TfLiteStatus;
constexpr TfLiteStatus kTfLiteOk = 0, kTfLiteError = 1;
namespace tflite {
template <unsigned N> class MicroMutableOpResolver {
 public:
  unsigned count = 0;
  TfLiteStatus Add(const char* m) { std::printf("%s\\n", m); return ++count <= N ? kTfLiteOk : kTfLiteError; }
%METHODS%
};
}  // namespace tflite
"""

MAIN = """\
#include <cstdio>
#include "%NAME%.h"
int main(int argc, char** argv) {
  std::FILE* f = std::fopen(argv[1], "wb");
  std::fwrite(g_%ID%_model, 1, g_%ID%_model_len, f);
  std::fclose(f);
  std::printf("aligned %d\\n", (int)(reinterpret_cast<unsigned long>(g_%ID%_model) % 16 == 0));
  std::printf("arena %zu\\n", g_%ID%_arena_bytes);
  std::printf("in %.9g %d out %.9g %d\\n", g_%ID%_input_scale, g_%ID%_input_zero_point,
              g_%ID%_output_scale, g_%ID%_output_zero_point);
  for (int i = 0; i < g_%ID%_num_classes; ++i) std::printf("label %s\\n", g_%ID%_labels[i]);
#ifdef WITH_STUB
  %ID%_OpResolver r;
  TfLiteStatus status = %ID%_register_ops(r);
  std::printf("status %d count %u of %d\\n", status, r.count, g_%ID%_op_count);
#endif
  return 0;
}
"""


def _sh(*cmd, cwd):
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{' '.join(cmd)}:\n{done.stderr[-2000:]}"
    return done.stdout


@pytest.mark.skipif(not (shutil.which("cc") and shutil.which("c++")), reason="no C/C++ compiler")
def test_c_sources_compile_and_hold_the_model(models, arena, tmp_path):
    name, ident = "int8-micro", "int8_micro"
    model = models["int8"]
    cc_text, h_text = micro.c_sources(model, name, arena_bytes=arena["arena_bytes"], labels=LABELS)
    (tmp_path / f"{name}.cc").write_text(cc_text)
    (tmp_path / f"{name}.h").write_text(h_text)
    assert f"MicroMutableOpResolver<{len(micro.micro_ops(model)['ops'])}>" in h_text
    _sh("cc", "-std=c++17", "-Wall", "-Werror", "-c", f"{name}.cc", cwd=tmp_path)  # what the issue asks: cc -c
    (tmp_path / "main.cc").write_text(MAIN.replace("%NAME%", name).replace("%ID%", ident))
    summary = read_model_summary(model)
    inp, out = summary["inputs"][0], summary["outputs"][0]

    # Without TFLM's headers: the data and constants.
    _sh("c++", "-std=c++17", "-Wall", "-Werror", "-o", "plain", "main.cc", f"{name}.o", cwd=tmp_path)
    lines = _sh("./plain", "model.bin", cwd=tmp_path).splitlines()
    assert (tmp_path / "model.bin").read_bytes() == model
    assert "aligned 1" in lines and f"arena {arena['arena_bytes']}" in lines
    assert f"in {inp['scale']:.9g} {inp['zero_point']} out {out['scale']:.9g} {out['zero_point']}" in lines
    assert [ln[6:] for ln in lines if ln.startswith("label ")] == LABELS

    # With a stand-in TFLM header on the include path: the resolver block is compiled and run.
    stub = tmp_path / "inc" / "tensorflow" / "lite" / "micro"
    stub.mkdir(parents=True)
    methods = "\n".join(f'  TfLiteStatus {m}() {{ return Add("{m}"); }}' for m in sorted(set(MICRO_RESOLVER.values())))
    (stub / "micro_mutable_op_resolver.h").write_text(STUB.replace("%METHODS%", methods))
    _sh("c++", "-std=c++17", "-Wall", "-Werror", "-DWITH_STUB", "-Iinc", "-o", "stubbed", "main.cc", f"{name}.cc",
        cwd=tmp_path)
    lines = _sh("./stubbed", "model2.bin", cwd=tmp_path).splitlines()
    ops = micro.micro_ops(model)["ops"]
    assert [ln for ln in lines if ln.startswith("Add")] == [MICRO_RESOLVER[op] for op in ops]
    assert f"status 0 count {len(ops)} of {len(ops)}" in lines


def test_labels_must_match_the_outputs(models):
    with pytest.raises(micro.MicroError, match="3 labels for a model with 2 outputs"):
        micro.c_sources(models["int8"], "x", arena_bytes=1, labels=["a", "b", "c"])
    cc_text, _ = micro.c_sources(models["int8"], "x", arena_bytes=1, labels=[])  # none given: class indices
    assert '"0",\n  "1",' in cc_text


def test_table_generator_reads_the_header_format():
    from edgecls.export.gen_micro_ops import parse_header, render

    method = """
  TfLiteStatus Add{m}(
      const TFLMRegistration& registration = Register_{op}()) {{
    return AddBuiltin(BuiltinOperator_{op}, registration, Parse{m});
  }}
"""
    ops = {f"OP_{i}": f"AddOp{i}" for i in range(60)}
    text = ("  TfLiteStatus AddCustom(const char* name, const TFLMRegistration* registration) {\n"
            "    return kTfLiteOk; }\n"
            "  TfLiteStatus AddDelay() {\n    return AddCustom(\"SignalDelay\", Register_DELAY());\n  }\n"
            + "".join(method.format(m=m[3:], op=op) for op, m in ops.items()))
    table = parse_header(text)
    assert table == dict(sorted(ops.items()))  # builtins only: AddCustom and the custom AddDelay left out
    namespace: dict = {}
    exec(render(table, "test", "0" * 64), namespace)  # the generated module is valid Python with the same table
    assert namespace["MICRO_RESOLVER"] == table
