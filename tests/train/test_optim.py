"""Learning-rate schedules and optimizers from the recipe."""
from __future__ import annotations

import math

import pytest

from edgecls.recipe.schema import Optimizer, Schedule


def rates(schedule, steps):
    return [float(schedule(s)) for s in steps]


def test_warmup_then_cosine():
    from edgecls.train.optim import build_schedule

    s = build_schedule(Optimizer(learning_rate=0.1), Schedule(name="cosine", warmup_epochs=1, min_lr_ratio=0.1),
                       steps_per_epoch=10, epochs=11)
    r = rates(s, [0, 4, 9, 10, 60, 110, 500])
    assert r[0] == pytest.approx(0.01) and r[1] == pytest.approx(0.05) and r[2] == pytest.approx(0.1)
    assert r[3] == pytest.approx(0.1)
    assert r[4] == pytest.approx(0.1 * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5))), rel=1e-5)
    assert r[5] == pytest.approx(0.01) and r[6] == pytest.approx(0.01)


def test_step_and_constant():
    from edgecls.train.optim import build_schedule

    s = build_schedule(Optimizer(learning_rate=1.0), Schedule(name="step", step_epochs=2, step_factor=0.5),
                       steps_per_epoch=5, epochs=10)
    assert rates(s, [0, 9, 10, 20, 49]) == pytest.approx([1.0, 1.0, 0.5, 0.25, 0.0625])
    c = build_schedule(Optimizer(learning_rate=0.3), Schedule(), steps_per_epoch=5, epochs=2)
    assert rates(c, [0, 100]) == pytest.approx([0.3, 0.3])


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw", "rmsprop"])
def test_optimizers_build_and_serialize(name):
    from edgecls._tf import keras
    from edgecls.train.optim import build_optimizer, build_schedule

    opt_cfg = Optimizer(name=name, learning_rate=0.01, weight_decay=1e-4, nesterov=name == "sgd")
    opt = build_optimizer(opt_cfg, build_schedule(opt_cfg, Schedule(name="cosine"), 10, 2))
    again = keras.optimizers.deserialize(keras.optimizers.serialize(opt))
    assert type(again) is type(opt)
    assert again._learning_rate.get_config() == opt._learning_rate.get_config()  # the schedule survives saving
    assert float(again._learning_rate(0)) == pytest.approx(0.01)
