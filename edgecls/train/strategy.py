"""The only place a tf.distribute.Strategy is built.

The recipe's ``train.strategy`` picks one; ``auto`` follows the hardware. The
same code runs on GPUs and on logical CPU devices (``train.cpu_replicas``),
which is how distribution is tried and tested without a GPU.
"""
from __future__ import annotations

import json
import logging
import os
import select
import socket
import sys
import time
from dataclasses import dataclass
from typing import Any

from edgecls.errors import EdgeclsError, first_line
from edgecls.recipe.schema import TrainConfig

log = logging.getLogger("edgecls.train")


class StrategyError(EdgeclsError):
    """A strategy that cannot be built here (no such device, bad TF_CONFIG, unreachable TPU).

    ``hard_exit``: TensorFlow threads are stuck waiting for peers, so the CLI
    must end the process at once after printing the message.
    """

    def __init__(self, message: str, hard_exit: bool = False):
        super().__init__(message)
        self.hard_exit = hard_exit


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


_TF_CONFIG_EXAMPLE = ('{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
                      '"task": {"type": "worker", "index": 0}}')


def tf_config() -> dict | None:
    """The parsed and checked TF_CONFIG, or None; anything malformed is one clear error."""
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return None
    try:
        cfg = json.loads(raw)
    except json.JSONDecodeError as err:
        raise StrategyError(f"TF_CONFIG is not valid JSON ({err.msg} at character {err.pos})") from None
    if not isinstance(cfg, dict) or not isinstance(cfg.get("cluster"), dict) or not isinstance(cfg.get("task"), dict):
        raise StrategyError(f"TF_CONFIG needs 'cluster' and 'task' mappings, e.g. {_TF_CONFIG_EXAMPLE}")
    for job, hosts in cfg["cluster"].items():
        if not isinstance(hosts, list) or not all(isinstance(h, str) and _split_address(h) for h in hosts):
            raise StrategyError(f"TF_CONFIG cluster.{job}: expected a list of 'host:port' strings, got {hosts!r}")
    task = cfg["task"]
    kind, index = task.get("type"), task.get("index", 0)
    if kind not in cfg["cluster"]:
        raise StrategyError(f"TF_CONFIG task.type '{kind}' is not a job of the cluster ({', '.join(cfg['cluster'])})")
    if not isinstance(index, int) or not 0 <= index < len(cfg["cluster"][kind]):
        raise StrategyError(f"TF_CONFIG task.index {index!r} is out of range: job '{kind}' has "
                            f"{len(cfg['cluster'][kind])} task(s)")
    return cfg


def worker_hosts_config(hosts: str, index: int) -> str:
    """TF_CONFIG JSON for ``--worker-hosts h1:p,h2:p --task-index i``."""
    workers = [h.strip() for h in hosts.split(",") if h.strip()]
    bad = [h for h in workers if not _split_address(h)]
    if not workers or bad:
        raise StrategyError(f"--worker-hosts: expected host:port,host:port..., got {bad[0] if bad else hosts!r}")
    if not 0 <= index < len(workers):
        raise StrategyError(f"--task-index {index} is out of range for {len(workers)} worker(s)")
    return json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})


def _split_address(address: str) -> tuple[str, int] | None:
    host, _, port = address.rpartition(":")
    return (host.strip("[]"), int(port)) if host and port.isdigit() and 0 < int(port) < 65536 else None


def rendezvous(own: str, others: list[str], timeout: float) -> None:
    """Wait until every worker is up, before TensorFlow's constructor blocks (holding the GIL) for them.

    Each worker listens on its own port and connects to every peer's; it is done
    when it has reached every peer and every peer has reached it. A peer that has
    already moved on is listening with TensorFlow's server on the same port, so
    it still counts. A port in use and workers that never come are clear errors.
    """
    host, port = _split_address(own)
    listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind(("", port))
    except OSError as err:
        listener.close()
        raise StrategyError(f"port {port} of this worker ({own}) is in use ({err.strerror}); "
                            "stop what holds it or pick another port") from None
    listener.listen(len(others) + 1)
    listener.setblocking(False)
    reached, accepted = set(), 0
    deadline = time.monotonic() + timeout
    try:
        while len(reached) < len(others) or accepted < len(others):
            if time.monotonic() > deadline:
                missing = [a for a in others if a not in reached] or others
                raise StrategyError(f"worker(s) {', '.join(missing)} did not join within {timeout:g} s "
                                    "(train.join_timeout); start them, or check TF_CONFIG / --worker-hosts")
            for address in others:
                if address not in reached:
                    try:
                        socket.create_connection(_split_address(address), timeout=1).close()
                        reached.add(address)
                    except OSError:
                        pass
            select.select([listener], [], [], 0.2)
            while True:
                try:
                    conn, _ = listener.accept()
                except BlockingIOError:
                    break
                conn.close()
                accepted += 1
    finally:
        listener.close()


def _multi_worker(cfg: TrainConfig):
    """MultiWorkerMirroredStrategy from TF_CONFIG or Slurm; waits at most join_timeout for the others."""
    from edgecls._tf import tf

    if cfg.cluster == "slurm":
        if "SLURM_PROCID" not in os.environ:
            raise StrategyError("train.cluster slurm: no Slurm job here (SLURM_PROCID is not set); run under srun")
        resolver = tf.distribute.cluster_resolver.SlurmClusterResolver()
        spec = resolver.cluster_spec().as_dict()
        kind, index = resolver.task_type, resolver.task_id
        chief = index == 0
    else:
        spec_cfg = tf_config()
        if spec_cfg is None:
            raise StrategyError("train.strategy multi_worker needs TF_CONFIG, --worker-hosts, or train.cluster: slurm")
        resolver, spec = None, spec_cfg["cluster"]
        kind, index = spec_cfg["task"]["type"], spec_cfg["task"].get("index", 0)
        chief = _is_chief(spec_cfg)
    own = spec[kind][index]
    others = [a for job, hosts in spec.items() for i, a in enumerate(hosts) if (job, i) != (kind, index)]
    log.info("multi-worker: this is %s %d (%s) of %d task(s); waiting for %s",
             kind, index, own, len(others) + 1, ", ".join(others) or "nobody")
    rendezvous(own, others, cfg.join_timeout)
    # No CommunicationOptions(timeout_seconds=...): in TF 2.21 it leaves a thread behind per collective
    # op (thousands per epoch here, until the process dies); MWMS's own health check finds dead peers.
    try:
        strategy = tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver)
    except (ValueError, RuntimeError, tf.errors.OpError) as err:
        raise StrategyError(f"multi-worker setup failed: {first_line(err)}") from None
    return strategy, chief


def _is_chief(cfg: dict | None) -> bool:
    """The chief writes the run directory: task 'chief', or worker 0 when there is no chief."""
    if not cfg:
        return True
    task = cfg.get("task", {})
    if "chief" in cfg.get("cluster", {}):
        return task.get("type") == "chief"
    return task.get("type") == "worker" and int(task.get("index", 0)) == 0


def reset_precision() -> None:
    """Back to float32 after a stage, whatever happened in it (build_strategy may have set mixed precision).

    Does nothing when TensorFlow was never loaded (the stage failed before that).
    """
    tf_module = sys.modules.get("edgecls._tf")
    if tf_module is not None:
        tf_module.keras.mixed_precision.set_global_policy("float32")


def writes_run(cfg: TrainConfig) -> bool:
    """Whether this process will be the chief (the one that writes the run), known before TensorFlow loads.

    The run's lock is taken before the seconds TensorFlow takes to import, so a second writer is told at once.
    """
    if cfg.strategy != "multi_worker":
        return True
    if cfg.cluster == "slurm":
        return os.environ.get("SLURM_PROCID", "0") == "0"
    return _is_chief(tf_config())


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
        strategy, chief = _multi_worker(cfg)
    elif kind == "tpu":
        try:
            resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=cfg.tpu or "")
            tf.config.experimental_connect_to_cluster(resolver)
            tf.tpu.experimental.initialize_tpu_system(resolver)
        except (ValueError, RuntimeError, tf.errors.OpError) as err:
            raise StrategyError(f"train.strategy tpu: no TPU reachable at '{cfg.tpu or 'local'}' "
                                f"({first_line(err)})") from None
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
