"""Device recipes (``devices/*.yaml``): frozen, validated dataclasses, read like training recipes.

A mistake is one line with file, line and key, e.g.
``devices/pi.yaml:7: treads: unknown key; did you mean 'threads'?``.
``edgecls.recipe.typed`` does the reading and checking, from YAML and from
Python (``@config``); the cross-field rules are in :meth:`DeviceRecipe.__post_init__`.
"""
from __future__ import annotations

from typing import Literal

from edgecls.recipe.typed import config, spec
from edgecls.runtime.options import MAX_THREADS  # the one bound on thread counts (1..256)

CONNECTS = ("local", "ssh", "adb", "micro")
# A microcontroller is not reached: bench checks export's TFLite Micro figures against its budgets.
MICRO_ONLY = ("flash_kb", "ram_kb", "flash_reserved_kb", "ram_reserved_kb")
NOT_FOR_MICRO = ("host", "python", "benchmark_model")
RUNTIMES = ("auto", "ai-edge-litert", "tflite-runtime", "tensorflow")
# Delegates by connection. local/ssh: the runtime's --delegate (a path or file name of a delegate library
# also works: anything ending in .so/.dylib/.dll or containing a slash). adb: benchmark_model's switches.
RUNTIME_DELEGATES = ("xnnpack", "none", "gpu", "edgetpu")
ADB_DELEGATES = ("xnnpack", "cpu", "gpu", "nnapi")


def _is_library(name: str) -> bool:
    return "/" in name or name.endswith((".so", ".dylib", ".dll")) or ".so." in name


@config
class DeviceRecipe:
    name: str = spec(help="device name; reports go to bench/<name>/")
    description: str = spec("", help="one line saying what the device is")
    connect: Literal["local", "ssh", "adb", "micro"] = spec(
        "local", help="local (this host) | ssh | adb | micro (a microcontroller: budgets, no connection)")
    host: str | None = spec(None, help="ssh: host name, user@host or an ~/.ssh/config alias; adb: device serial "
                                       "(null: the only device attached)")
    port: int | None = spec(None, ge=1, le=65535, help="ssh port [default: ssh's, from its config]")
    user: str | None = spec(None, help="ssh user [default: ssh's, from its config]")
    ssh_config: str | None = spec(None, help="ssh: a config file to use instead of ~/.ssh/config (ssh -F)")
    ssh_options: dict[str, str | int | bool] = spec(default_factory=dict,
                                       help="ssh: extra -o options, e.g. {IdentityFile: ~/.ssh/pi_ed25519}")
    connect_timeout: int = spec(10, ge=1, help="ssh: seconds to wait for the connection")
    python: str | None = spec(None, help="the device's Python 3.10+ with numpy and an interpreter package "
                                         "[default: python3; local: the Python running edgecls]")
    runtime: Literal["auto", "ai-edge-litert", "tflite-runtime", "tensorflow"] = spec(
        "auto", help="interpreter package on the device [default: the first installed]")
    benchmark_model: str | None = spec(None, help="adb: path on this host of TFLite's benchmark_model binary "
                                                  "for the phone's ABI (or set EDGECLS_BENCHMARK_MODEL)")
    setup: tuple[str, ...] = spec((), help="what to run once on the device to prepare it (shown when a check "
                                           "fails; edgecls never installs anything itself)")
    threads: tuple[int, ...] = spec((1,), help=f"interpreter thread counts to time (1 to {MAX_THREADS})")
    delegates: tuple[str, ...] = spec(("xnnpack",), help="local/ssh: xnnpack | none | gpu | edgetpu | a delegate "
                                                         "library path; adb: xnnpack | cpu | gpu | nnapi")
    variants: tuple[str, ...] = spec(("*",), help="which export variants to measure (fnmatch patterns)")
    model_suffix: str = spec("", help="measure export/<variant><suffix>.tflite instead, e.g. _edgetpu for models "
                                      "compiled by the Edge TPU compiler")
    eval_threads: int | None = spec(None, ge=1, le=MAX_THREADS, help="cores for the accuracy evaluation "
                                                                      "[default: all]")
    warmup: int = spec(10, ge=0, help="untimed runs before timing")
    runs: int = spec(100, ge=1, help="timed runs per variant and thread count")
    work_dir: str | None = spec(None, help="where files go on the device, in a fresh folder removed afterwards "
                                           "[default: /tmp/edgecls-device; adb: /data/local/tmp/edgecls]")
    timeout: int = spec(1800, ge=1, help="seconds one step (copy, accuracy, one latency run) may take")
    # KiB as datasheets count them (1 KB = 1024 bytes): the nRF52840's "256 KB RAM" is 262144 bytes.
    flash_kb: int | None = spec(None, ge=1, help="micro: the board's flash in KiB (the model's bytes go there)")
    ram_kb: int | None = spec(None, ge=1, help="micro: the board's RAM in KiB (the tensor arena goes there)")
    flash_reserved_kb: int = spec(0, ge=0, help="micro: flash KiB the application and the TFLite Micro "
                                                "library take, not available to the model")
    ram_reserved_kb: int = spec(0, ge=0, help="micro: RAM KiB the application, stack and heap take, not "
                                              "available to the tensor arena")

    def __post_init__(self):
        if not self.name.strip() or "/" in self.name or self.name.startswith("."):
            raise ValueError(f"name: must be a plain name (used as the folder bench/<name>), got {self.name!r}")
        self._check_micro()
        if self.connect == "ssh" and not self.host:
            raise ValueError("host: an ssh device needs a host (a name, user@host or an ~/.ssh/config alias)")
        if not self.threads:
            raise ValueError("threads: give at least one thread count")
        for t in self.threads:  # spec's ge/le bound a number, not each number of a list
            if not 1 <= t <= MAX_THREADS:
                raise ValueError(f"threads: each thread count must be >= 1 and <= {MAX_THREADS}, got {t}")
        if len(set(self.threads)) != len(self.threads):
            raise ValueError(f"threads: duplicate thread counts in {list(self.threads)}")
        if not self.delegates:
            raise ValueError("delegates: give at least one delegate (xnnpack for the CPU)")
        allowed = ADB_DELEGATES if self.connect == "adb" else RUNTIME_DELEGATES
        for d in self.delegates:
            if d not in allowed and (self.connect == "adb" or not _is_library(d)):
                extra = "" if self.connect == "adb" else " or the path of a delegate library"
                raise ValueError(f"delegates: {d!r} is not one of {', '.join(allowed)}{extra} "
                                 f"(connect: {self.connect})")
        if not self.variants:
            raise ValueError("variants: give at least one pattern ('*' for all)")
        if self.connect != "ssh":
            for key in ("port", "user", "ssh_config"):
                if getattr(self, key) is not None:
                    raise ValueError(f"{key}: only for connect: ssh (this device connects by {self.connect})")
            if self.ssh_options:
                raise ValueError(f"ssh_options: only for connect: ssh (this device connects by {self.connect})")

    def _check_micro(self) -> None:
        if self.connect != "micro":
            for key in MICRO_ONLY:
                if getattr(self, key):
                    raise ValueError(f"{key}: only for connect: micro (this device connects by {self.connect})")
            return
        for key, example in (("flash_kb", 1024), ("ram_kb", 256)):
            if getattr(self, key) is None:
                raise ValueError(f"{key}: a micro device needs its budget in KiB, e.g. {key}: {example}")
        for key in NOT_FOR_MICRO:
            if getattr(self, key) is not None:
                raise ValueError(f"{key}: not for connect: micro (edgecls does not reach a microcontroller; bench "
                                 "checks the TFLite Micro figures export measured against flash_kb and ram_kb)")
        for reserved, total in (("flash_reserved_kb", "flash_kb"), ("ram_reserved_kb", "ram_kb")):
            if getattr(self, reserved) >= getattr(self, total):
                raise ValueError(f"{reserved}: must be less than {total} ({getattr(self, total)}), "
                                 f"got {getattr(self, reserved)}")

    @property
    def flash_budget_bytes(self) -> int | None:
        """micro: the flash the model may take, in bytes (flash_kb less flash_reserved_kb); None otherwise."""
        return None if self.flash_kb is None else (self.flash_kb - self.flash_reserved_kb) * 1024

    @property
    def ram_budget_bytes(self) -> int | None:
        """micro: the RAM the tensor arena may take, in bytes (ram_kb less ram_reserved_kb); None otherwise."""
        return None if self.ram_kb is None else (self.ram_kb - self.ram_reserved_kb) * 1024

    @property
    def where(self) -> str:
        """How the device is reached, for messages: 'local', 'ssh pi@host:2222', 'adb R58M...'."""
        if self.connect == "ssh":
            who = f"{self.user}@{self.host}" if self.user and "@" not in (self.host or "") else self.host
            return f"ssh {who}" + (f":{self.port}" if self.port else "")
        if self.connect == "adb":
            return f"adb {self.host}" if self.host else "adb"
        if self.connect == "micro":
            return "micro (not connected: TFLite Micro figures from export)"
        return "local"
