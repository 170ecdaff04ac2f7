"""An int8 model that XNNPACK refuses (a dead layer: its output range is zero) still runs, on builtin kernels.

Seen in benchmarks/models.py: an AlexNet that stayed at chance converted to int8 and XNNPACK failed to prepare it.
"""
from __future__ import annotations

import numpy as np
import pytest

from edgecls._tf import keras
from edgecls.export.convert import convert
from edgecls.runtime.errors import XnnpackRefused
from edgecls.runtime.runner import Runner


@pytest.fixture(scope="module")
def dead_int8():
    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 8, 3))
    x = keras.layers.Flatten()(inp)
    x = keras.layers.Dense(16, activation="relu", bias_initializer=keras.initializers.Constant(-1000.0))(x)
    m = keras.Model(inp, keras.layers.Softmax()(keras.layers.Dense(4)(x)))
    rep = np.random.default_rng(0).uniform(-1, 1, (20, 8, 8, 3)).astype(np.float32)
    return convert(m, "int8", representative=rep, input_type="int8", output_type="int8")


def test_default_delegate_falls_back_with_a_warning(dead_int8):
    with pytest.warns(RuntimeWarning, match="XNNPACK cannot run this model"):
        r = Runner(dead_int8, num_threads=1)
    assert r.delegate == "none" and "XNNPACK" in r.fallback
    out = r.run(r.as_input(np.zeros((8, 8, 3), np.float32)))
    assert out.shape == (1, 4)
    assert r.copy().delegate == "none"


def test_xnnpack_asked_for_by_name_is_an_error(dead_int8):
    with pytest.raises(XnnpackRefused, match="XNNPACK cannot run this model"):
        Runner(dead_int8, num_threads=1, delegate="xnnpack")
