"""Each compression technique on a tiny model: what it promises is what the weights show."""
from __future__ import annotations

import numpy as np
import pytest

from edgecls.errors import StageError
from edgecls.recipe.schema import ClusterOptions, PruneOptions, QuantizeOptions

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def tiny_model(extra_lambda: bool = False, layer_norm: bool = False):
    from edgecls._tf import keras, tf

    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(8, 3, padding="same", name="conv1")(inp)
    x = keras.layers.BatchNormalization(name="bn1")(x)
    x = keras.layers.ReLU(name="relu1")(x)
    x = keras.layers.Conv2D(16, 3, padding="same", name="conv2")(x)
    x = keras.layers.ReLU(name="relu2")(x)
    if extra_lambda:
        x = keras.layers.Lambda(lambda t: tf.math.sin(t), name="odd_op")(x)
    if layer_norm:  # a layer tfmot's 8-bit scheme has no config for
        x = keras.layers.LayerNormalization(name="odd_op")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    x = keras.layers.Dense(4, name="logits")(x)
    out = keras.layers.Activation("softmax", name="probs")(x)
    return keras.Model(inp, out)


def fit(model, callbacks=(), steps=12):
    from edgecls._tf import keras

    rng = np.random.default_rng(0)
    x = rng.normal(size=(steps * 8, 8, 8, 1)).astype("float32")
    y = keras.utils.to_categorical(rng.integers(0, 4, len(x)), 4)
    model.compile(keras.optimizers.Adam(1e-3), "categorical_crossentropy")
    model.fit(x, y, batch_size=8, epochs=1, callbacks=list(callbacks), verbose=0)
    return model


def test_prune_reaches_target_sparsity():
    from edgecls.compress import prune, weights

    model, info = prune.apply(tiny_model(), PruneOptions(target_sparsity=0.6, end=0.5, frequency=1, skip=("logits",)),
                              total_steps=12)
    assert info["wrapped"] == ["conv1", "conv2"] and info["left"] == {"logits": "skipped by name"}
    stripped = prune.strip(fit(model, prune.callbacks(info)))
    rep = weights.sparsity_report(stripped)
    assert rep["sparsity_per_layer"]["conv1"] == pytest.approx(0.6, abs=0.02)
    assert rep["sparsity_per_layer"]["conv2"] == pytest.approx(0.6, abs=0.02)
    assert rep["sparsity_per_layer"]["logits"] < 0.05


def test_prune_two_by_four_structure():
    from edgecls.compress import prune, weights

    model, info = prune.apply(tiny_model(), PruneOptions(structure="2:4", frequency=1, end=0.5, skip=("conv1",)),
                              total_steps=12)
    stripped = prune.strip(fit(model, prune.callbacks(info)))
    k = weights.kernels(stripped)
    assert weights.m_by_n_ok(k["conv2"], 2, 4)  # 8 input channels: blocks of 4 hold <= 2 non-zeros
    assert not weights.m_by_n_ok(k["conv1"], 2, 4) or k["conv1"].shape[-2] % 4  # left dense


def test_prune_xnnpack_policy_names_what_is_wrong():
    from edgecls.compress import prune

    with pytest.raises(StageError, match="prune policy xnnpack:"):
        prune.apply(tiny_model(), PruneOptions(policy="xnnpack"), total_steps=10)


def test_cluster_bounds_unique_weights():
    from edgecls.compress import cluster, weights

    model, info = cluster.apply(tiny_model(), ClusterOptions(clusters=6, init="linear"), total_steps=12)
    stripped = cluster.strip(fit(model))
    uniq = weights.unique_report(stripped)["unique_weights_per_layer"]
    assert set(info["wrapped"]) == {"conv1", "conv2", "logits"}
    assert all(n <= 6 for n in uniq.values()), uniq


def test_cluster_per_channel():
    from edgecls.compress import cluster, weights

    model, _ = cluster.apply(tiny_model(), ClusterOptions(clusters=3, per_channel=True), total_steps=12)
    stripped = cluster.strip(fit(model))
    per_channel = weights.unique_per_channel(stripped)
    assert per_channel["conv1"] <= 3 and per_channel["conv2"] <= 3
    assert weights.unique_report(stripped)["unique_weights_per_layer"]["conv2"] > 3  # but not per layer


def test_qat_converts_fully_integer():
    from edgecls.compress import quantize
    from edgecls.export.convert import convert
    from edgecls.export.ops import op_report

    model, info = quantize.apply(tiny_model(), QuantizeOptions(), total_steps=12)
    assert not info["left"]
    qat = fit(model)
    rep = np.random.default_rng(1).normal(size=(16, 8, 8, 1)).astype("float32")
    blob = convert(qat, "int8", representative=rep, input_type="int8", output_type="int8")
    report = op_report(blob)
    assert report["fully_integer"] and report["input_dtype"] == "int8", report


def test_qat_leaves_unsupported_layer_float_and_names_it():
    from edgecls.compress import quantize

    model, info = quantize.apply(tiny_model(layer_norm=True), QuantizeOptions(), total_steps=12)
    assert "odd_op" in info["left"] and "not supported" in info["left"]["odd_op"]
    assert "conv1" in info["wrapped"]
    fit(model)  # still trains


def test_pqat_preserves_sparsity():
    from edgecls.compress import prune, quantize, weights

    model, info = prune.apply(tiny_model(), PruneOptions(target_sparsity=0.5, end=0.5, frequency=1), total_steps=12)
    pruned = prune.strip(fit(model, prune.callbacks(info)))
    qat, info = quantize.apply(pruned, QuantizeOptions(preserve="sparsity"), total_steps=12)
    qat = fit(qat, quantize.callbacks(info))
    assert weights.sparsity_report(qat)["sparsity_per_layer"]["conv2"] == pytest.approx(0.5, abs=0.02)


def test_int8_that_cannot_be_integer_names_the_ops():
    from edgecls.export.convert import ExportError, convert

    rep = np.random.default_rng(1).normal(size=(8, 8, 8, 1)).astype("float32")
    with pytest.raises(ExportError, match="SIN"):
        convert(tiny_model(extra_lambda=True), "int8", representative=rep)


def test_int8_per_tensor_weights_make_a_smaller_file():
    """per_channel=False: one scale per weight tensor instead of one per output channel, still fully integer."""
    from edgecls.export.convert import convert
    from edgecls.export.ops import op_report
    from edgecls.runtime.runner import Runner

    model = fit(tiny_model())
    rep = np.random.default_rng(1).normal(size=(16, 8, 8, 1)).astype("float32")
    blobs = {pc: convert(model, "int8", representative=rep, input_type="int8", output_type="int8", per_channel=pc)
             for pc in (True, False)}
    scales = {}
    for pc, blob in blobs.items():
        assert op_report(blob)["fully_integer"]
        runner = Runner(blob, num_threads=1)
        assert runner.run(runner.as_input(rep[:1])).shape == (1, 4)
        scales[pc] = sorted(_weight_scale_counts(blob))
    assert scales == {True: [8, 16], False: [1, 1]}  # the two conv kernels (8 and 16 output channels)
    assert len(blobs[False]) < len(blobs[True])


def test_per_tensor_needs_an_integer_mode():
    from tests.helpers import RECIPES, run_cli

    res = run_cli("validate", str(RECIPES / "digits.yaml"), "--set",
                  "export=[{name: f16, mode: float16, per_channel: false}]")
    assert res.returncode == 2 and "per_channel: false needs mode int8 or int16x8 (mode is float16)" in res.stderr


def _weight_scale_counts(blob: bytes) -> list[int]:
    """Number of quantization scales of each int8 conv kernel (4-D constant) in a .tflite file."""
    from edgecls._vendor import tflite_schema as S

    model = S.Model.GetRootAs(blob, 0)
    graph = model.Subgraphs(0)
    counts = []
    for i in range(graph.TensorsLength()):
        t = graph.Tensors(i)
        buf = model.Buffers(t.Buffer())
        if t.Type() == S.TensorType.INT8 and t.ShapeLength() == 4 and buf is not None and buf.DataLength():
            counts.append(t.Quantization().ScaleLength())
    return counts
