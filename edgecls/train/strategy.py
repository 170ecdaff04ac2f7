"""The only place a tf.distribute.Strategy is built.

The recipe's ``train.strategy`` picks one; ``auto`` follows the hardware. The
same code runs on GPUs and on logical CPU devices (``train.cpu_replicas``),
which is how distribution is tried and tested without a GPU.
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from typing import Any

from edgecls.errors import EdgeclsError
from edgecls.recipe.schema import TrainConfig

log = logging.getLogger("edgecls.train")


class StrategyError(EdgeclsError):
    """A strategy that cannot be built here (no such device, bad TF_CONFIG, unreachable TPU)."""


@dataclass(frozen=True)
class StrategyInfo:
    strategy: Any
    kind: str
    replicas: int
    is_chief: bool
    mixed_precision: bool

    def describe(self, global_batch: int) -> str:
        per = global_batch / self.replicas
        per_txt = f"{per:g}" if per == int(per) else f"{per:.1f} (not a whole number: some replicas get more)"
        return (f"strategy {self.kind}: {self.replicas} replica(s); global batch {global_batch}, "
                f"{per_txt} per replica; mixed precision {'on' if self.mixed_precision else 'off'}")


def split_cpu(n: int) -> None:
    """Split the host CPU into ``n`` logical devices. Must run before TensorFlow touches a device."""
    from edgecls._tf import tf

    cpus = tf.config.list_physical_devices("CPU")
    current = tf.config.get_logical_device_configuration(cpus[0])
    if current is not None and len(current) == n:
        return
    try:
        tf.config.set_logical_device_configuration(cpus[0], [tf.config.LogicalDeviceConfiguration()] * n)
    except RuntimeError as err:  # devices already initialized in this process
        raise StrategyError(f"train.cpu_replicas={n}: TensorFlow's devices are already set up in this "
                            f"process ({err}); start a fresh process") from None


def tf_config() -> dict | None:
    """The parsed TF_CONFIG, or None; malformed JSON is a clear error."""
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return None
    try:
        cfg = json.loads(raw)
    except json.JSONDecodeError as err:
        raise StrategyError(f"TF_CONFIG is not valid JSON ({err.msg} at character {err.pos})") from None
    if not isinstance(cfg, dict) or "cluster" not in cfg or "task" not in cfg:
        raise StrategyError("TF_CONFIG needs 'cluster' and 'task' keys, e.g. "
                            '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}')
    return cfg


def _is_chief(cfg: dict | None) -> bool:
    """The chief writes the run directory: task 'chief', or worker 0 when there is no chief."""
    if not cfg:
        return True
    task = cfg.get("task", {})
    if "chief" in cfg.get("cluster", {}):
        return task.get("type") == "chief"
    return task.get("type") == "worker" and int(task.get("index", 0)) == 0


def build_strategy(cfg: TrainConfig) -> StrategyInfo:
    from edgecls._tf import keras, tf

    if cfg.cpu_replicas > 1:
        split_cpu(cfg.cpu_replicas)
    gpus = tf.config.list_physical_devices("GPU")
    kind = cfg.strategy
    devices = list(cfg.devices) if cfg.devices else None
    chief = True

    if kind == "auto":
        if len(gpus) > 1:
            kind = "mirrored"
        elif len(gpus) == 1:
            kind, devices = "one_device", devices or ["/gpu:0"]
        elif cfg.cpu_replicas > 1:
            kind = "mirrored"
        else:
            kind = "default"

    if kind == "mirrored" and devices is None and not gpus and cfg.cpu_replicas > 1:
        devices = [f"/cpu:{i}" for i in range(cfg.cpu_replicas)]
    if devices:
        known = {d.name.lower().split("device:")[-1] for d in tf.config.list_logical_devices()}
        for dev in devices:
            if dev.lower().split("device:")[-1].lstrip("/") not in known:
                raise StrategyError(f"train.devices: no device '{dev}' here; found {', '.join(sorted(known))}")

    if kind == "default":
        strategy = tf.distribute.get_strategy()
    elif kind == "one_device":
        strategy = tf.distribute.OneDeviceStrategy(devices[0] if devices else ("/gpu:0" if gpus else "/cpu:0"))
    elif kind == "mirrored":
        # NCCL needs GPUs; on CPU devices reduce through one device instead.
        ops = None if gpus else tf.distribute.ReductionToOneDevice()
        strategy = tf.distribute.MirroredStrategy(devices=devices, cross_device_ops=ops)
    elif kind == "multi_worker":
        cfg_json = tf_config()
        if cfg_json is None:
            raise StrategyError("train.strategy multi_worker needs TF_CONFIG (or --worker-hosts) to name the cluster")
        chief = _is_chief(cfg_json)
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    elif kind == "tpu":
        try:
            resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=cfg.tpu or "")
            tf.config.experimental_connect_to_cluster(resolver)
            tf.tpu.experimental.initialize_tpu_system(resolver)
        except (ValueError, RuntimeError, tf.errors.OpError) as err:
            raise StrategyError(f"train.strategy tpu: no TPU reachable at '{cfg.tpu or 'local'}' "
                                f"({str(err).splitlines()[0]})") from None
        strategy = tf.distribute.TPUStrategy(resolver)
    else:  # pragma: no cover - the schema's Literal rules this out
        raise StrategyError(f"unknown strategy {kind}")

    mixed = cfg.mixed_precision == "on" or (cfg.mixed_precision == "auto" and bool(gpus))
    policy = ("mixed_bfloat16" if kind == "tpu" else "mixed_float16") if mixed else "float32"
    keras.mixed_precision.set_global_policy(policy)
    if cfg.mixed_precision == "on" and not gpus and kind != "tpu":
        log.warning("mixed precision is on without a GPU: float16 math on a CPU is slow")
    return StrategyInfo(strategy, type(strategy).__name__ if kind != "default" else "default",
                        strategy.num_replicas_in_sync, chief, mixed)
