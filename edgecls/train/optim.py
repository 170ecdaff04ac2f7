"""Optimizers and learning-rate schedules from the recipe's ``train.optimizer`` and ``train.schedule``."""
from __future__ import annotations

import math

from edgecls._tf import keras, tf
from edgecls.recipe.schema import Optimizer, Schedule


@keras.saving.register_keras_serializable(package="edgecls")
class WarmupSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up to ``peak``, then constant, step decay or cosine decay. Counted in steps."""

    def __init__(self, peak: float, total_steps: int, warmup_steps: int = 0, kind: str = "constant",
                 step_every: int = 1, step_factor: float = 0.1, min_ratio: float = 0.0):
        super().__init__()
        self.peak, self.total_steps, self.warmup_steps = float(peak), int(max(total_steps, 1)), int(warmup_steps)
        self.kind, self.step_every, self.step_factor = kind, int(max(step_every, 1)), float(step_factor)
        self.min_ratio = float(min_ratio)

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        warm = tf.cast(self.warmup_steps, tf.float32)
        after = tf.maximum(step - warm, 0.0)
        if self.kind == "step":
            rate = self.peak * tf.pow(self.step_factor, tf.floor(after / self.step_every))
        elif self.kind == "cosine":
            span = tf.maximum(tf.cast(self.total_steps, tf.float32) - warm, 1.0)
            frac = tf.minimum(after / span, 1.0)
            cos = 0.5 * (1.0 + tf.cos(math.pi * frac))
            rate = self.peak * (self.min_ratio + (1.0 - self.min_ratio) * cos)
        else:
            rate = tf.constant(self.peak, tf.float32)
        if self.warmup_steps > 0:
            rate = tf.where(step < warm, self.peak * (step + 1.0) / warm, rate)
        return rate

    def get_config(self):
        return {"peak": self.peak, "total_steps": self.total_steps, "warmup_steps": self.warmup_steps,
                "kind": self.kind, "step_every": self.step_every, "step_factor": self.step_factor,
                "min_ratio": self.min_ratio}


def build_schedule(opt: Optimizer, sched: Schedule, steps_per_epoch: int, epochs: int) -> WarmupSchedule:
    return WarmupSchedule(peak=opt.learning_rate, total_steps=steps_per_epoch * epochs,
                          warmup_steps=round(sched.warmup_epochs * steps_per_epoch), kind=sched.name,
                          step_every=sched.step_epochs * steps_per_epoch, step_factor=sched.step_factor,
                          min_ratio=sched.min_lr_ratio)


def build_optimizer(opt: Optimizer, schedule) -> keras.optimizers.Optimizer:
    common = {"learning_rate": schedule, "clipnorm": opt.clipnorm}
    if opt.name == "sgd":
        return keras.optimizers.SGD(momentum=opt.momentum, nesterov=opt.nesterov,
                                    weight_decay=opt.weight_decay or None, **common)
    if opt.name == "adam":
        return keras.optimizers.Adam(weight_decay=opt.weight_decay or None, **common)
    if opt.name == "adamw":
        return keras.optimizers.AdamW(weight_decay=opt.weight_decay or 0.004, **common)
    if opt.name == "rmsprop":
        return keras.optimizers.RMSprop(momentum=opt.momentum, weight_decay=opt.weight_decay or None, **common)
    raise ValueError(f"unknown optimizer {opt.name}")  # pragma: no cover - the schema rules this out
