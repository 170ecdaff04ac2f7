"""An Android device over adb, timed by TFLite's own ``benchmark_model`` binary.

A phone has no Python, so latency comes from ``benchmark_model`` (the binary
for the phone's ABI, at the path the device recipe gives) and accuracy is
computed on this host with the runtime. Steps: ``adb push`` the binary and
the models into a fresh folder under ``work_dir``; per variant, delegate and
thread count ``adb shell benchmark_model --graph=... --num_threads=N
--num_runs=R --warmup_runs=W --use_xnnpack/--use_gpu/--use_nnapi=true``; parse
its summary; remove the folder. adb runs with argument lists; the command a
phone runs is a string for its shell, built with ``shlex.quote``.

What is parsed (``benchmark_model.cc``, TFLite 2.x):

    Inference timings in us: Init: 5685, First inference: 18535, Warmup (avg): 14462.3, Inference (avg): 14575.2
    count=50 first=14843 curr=14412 min=14151 max=15600 avg=14575.2 std=290      (the steady-state runs)
    Overall peak memory footprint (MB) via periodic monitoring: 38.3            (--report_peak_memory_footprint)
    Memory footprint delta from the start of the tool (MB): init=3.6 overall=18.9   (older: Peak memory footprint)
    Explicitly applied GPU delegate, and the model graph will be completely executed by the delegate.
    Inference (median): 14.52 ms   / (p5) / (p95)                               (percentile lines, where printed)

benchmark_model prints no median: when no percentile line is there, p50/p90/p99
stay empty and the report uses the mean (and says so in ``latency_source``).
"""
from __future__ import annotations

import os
import re
import shlex
import subprocess
from typing import Sequence

from edgecls.devices.base import DeviceError, DeviceRunner, failure_reason, run_command
from edgecls.devices.zipapp import model_name

DEFAULT_WORK_DIR = "/data/local/tmp/edgecls"
DELEGATE_FLAGS = {"xnnpack": ["--use_xnnpack=true"], "cpu": ["--use_xnnpack=false"], "gpu": ["--use_gpu=true"],
                  "nnapi": ["--use_nnapi=true"]}
_NUM = r"([-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)"
_TIMINGS = re.compile(rf"Inference timings in us:\s*Init:\s*{_NUM},\s*First inference:\s*{_NUM},\s*"
                      rf"Warmup \(avg\):\s*{_NUM},\s*Inference \(avg\):\s*{_NUM}")
_COUNT = re.compile(rf"count=(\d+)(?:\s+first={_NUM})?\s+curr={_NUM}(?:\s+min={_NUM}\s+max={_NUM}\s+avg={_NUM}"
                    rf"\s+std={_NUM})?")
_PEAK = re.compile(rf"Overall peak memory footprint \(MB\) via periodic monitoring:\s*{_NUM}")
_MEM = re.compile(rf"(?:Peak memory footprint|Memory footprint delta from the start of the tool) \(MB\):\s*"
                  rf"init={_NUM}\s+overall={_NUM}")
_PERCENTILE = re.compile(rf"Inference \((median|p\d+)\):\s*{_NUM}\s*(ms|us)")
_APPLIED = re.compile(r"Explicitly applied (\S+) delegate, and the model graph will be (completely|partially) "
                      r"executed by the delegate")
_ADB_HINTS = (
    ("no devices", "no phone attached: connect it by USB with USB debugging on (adb devices lists it)"),
    ("not found", "no device with that serial: check host: in the device recipe against `adb devices`"),
    ("more than one device", "several devices attached: set host: to one serial from `adb devices`"),
    ("unauthorized", "the phone has not authorized this computer: unlock it and accept the USB debugging prompt"),
    ("offline", "the device is offline: reconnect it (or adb kill-server; adb start-server)"),
)


def parse_benchmark_output(text: str) -> dict:
    """benchmark_model's summary as milliseconds; KeyError-free: missing figures are None.

    Raises ValueError when the timings line is not there (the run failed).
    """
    found = _TIMINGS.search(text)
    if not found:
        raise ValueError("no 'Inference timings in us' line")
    init_us, first_us, warmup_us, avg_us = (float(v) for v in found.groups())
    out: dict = {"init_ms": init_us / 1000, "first_inference_ms": first_us / 1000, "warmup_avg_ms": warmup_us / 1000,
                 "mean_ms": avg_us / 1000, "p50_ms": None, "p90_ms": None, "p99_ms": None, "min_ms": None,
                 "max_ms": None, "std_ms": None, "runs": None, "peak_rss_mb": None}
    counts = _COUNT.findall(text[:found.start()])
    if counts:  # the last count= line before the summary: the steady-state runs
        count, _first, curr, lo, hi, _avg, std = counts[-1]
        out["runs"] = int(count)
        if lo:
            out.update(min_ms=float(lo) / 1000, max_ms=float(hi) / 1000, std_ms=float(std) / 1000)
        else:  # "count=N curr=X(all same)"
            out.update(min_ms=float(curr) / 1000, max_ms=float(curr) / 1000, std_ms=0.0)
    for name, value, unit in _PERCENTILE.findall(text):
        ms = float(value) / (1000 if unit == "us" else 1)
        key = {"median": "p50_ms", "p50": "p50_ms", "p90": "p90_ms", "p99": "p99_ms"}.get(name)
        if key:
            out[key] = ms
        else:
            out[f"{name}_ms"] = ms
    peak = _PEAK.search(text)
    mem = _MEM.search(text)
    if peak:
        out["peak_rss_mb"] = float(peak.group(1))
    elif mem:
        out["peak_rss_mb"] = float(mem.group(2))
    out["delegates_applied"] = {name.lower(): how for name, how in _APPLIED.findall(text)}
    return out


def error_line(text: str, about: str | None = None) -> str:
    """The most telling line of a failed benchmark_model run (about a delegate, when ``about`` names one)."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    markers = ("ERROR", "Error", "error", "Failed", "failed", "Aborted", "Segmentation fault", "WARN",
               "unsupported", "not supported")
    if about:
        hits = [ln for ln in lines if about.lower() in ln.lower() and any(m in ln for m in markers)]
        if hits:
            return hits[-1][:300]
    for marker in markers:
        hits = [ln for ln in lines if marker in ln]
        if hits:
            return hits[-1][:300]
    return lines[-1][:300] if lines else "no output"


def explain_adb(stderr: str) -> str:
    lines = [ln.strip() for ln in (stderr or "").splitlines() if ln.strip()]
    text = lines[-1] if lines else "adb failed with no message"
    low = (stderr or "").lower()
    for needle, hint in _ADB_HINTS:
        if needle in low:
            return f"{text} ({hint})"
    return text


class AdbRunner(DeviceRunner):
    kind = "adb"
    evaluates_on_device = False
    latency_source = "benchmark_model"

    def __init__(self, device):
        super().__init__(device)
        self.folder: str | None = None
        self.binary: str | None = None

    def _adb(self, step: str, args: Sequence[str], timeout: float | None = None) -> subprocess.CompletedProcess:
        argv = ["adb"] + (["-s", self.device.host] if self.device.host else []) + list(args)
        return run_command(self.device, step, argv, timeout=timeout or self.device.timeout,
                           missing_hint="install Android's platform-tools (apt install adb) and put adb on PATH")

    def _shell(self, step: str, command: str, timeout: float | None = None) -> subprocess.CompletedProcess:
        return self._adb(step, ["shell", command], timeout=timeout)

    def _check(self, step: str, proc: subprocess.CompletedProcess, what: str) -> None:
        if proc.returncode != 0:
            raise DeviceError(self.device, step, f"{what}: {explain_adb(proc.stderr or proc.stdout)}")

    def open(self) -> dict:
        binary = self.device.benchmark_model or os.environ.get("EDGECLS_BENCHMARK_MODEL")
        if not binary:
            raise DeviceError(self.device, "benchmark_model", "no benchmark_model binary given: download TFLite's "
                              "android_aarch64_benchmark_model (devices/README.md says where) and set "
                              "benchmark_model: PATH in the device recipe, or EDGECLS_BENCHMARK_MODEL=PATH")
        binary = os.path.expanduser(binary)
        if not os.path.isfile(binary):
            raise DeviceError(self.device, "benchmark_model", f"{binary}: no such file (benchmark_model: in the "
                              "device recipe, or EDGECLS_BENCHMARK_MODEL)")
        self.binary = binary
        proc = self._adb("connect", ["get-state"], timeout=60)
        if proc.returncode != 0 or "device" not in proc.stdout:
            raise DeviceError(self.device, "connect", explain_adb(proc.stderr or proc.stdout))
        props = ("ro.product.manufacturer", "ro.product.model", "ro.product.cpu.abi", "ro.build.version.release")
        proc = self._shell("connect", "; ".join(f"getprop {p}" for p in props) + "; nproc", timeout=60)
        self._check("connect", proc, "adb shell")
        values = proc.stdout.splitlines() + [""] * 5
        maker, model, abi, release, cores = (v.strip() for v in values[:5])
        self.info = {"model": f"{maker} {model}".strip(), "abi": abi, "system": f"Android {release}",
                     "cpu_count": int(cores) if cores.isdigit() else None, "backend": "benchmark_model",
                     "benchmark_model": os.path.basename(binary)}
        return self.info

    def stage(self, models, data, runtime) -> None:
        base = (self.device.work_dir or DEFAULT_WORK_DIR).rstrip("/")
        proc = self._shell("copy", f"mkdir -p {shlex.quote(base)} && mktemp -d {shlex.quote(base)}/edgecls.XXXXXX")
        self._check("copy", proc, f"cannot make a folder in {base}")
        folder = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
        if not folder.startswith("/"):
            raise DeviceError(self.device, "copy", f"cannot make a folder in {base}: {proc.stdout.strip()!r}")
        self.folder = folder
        self._check("copy", self._shell("copy", f"mkdir -p {shlex.quote(folder + '/models')}"), "mkdir")
        self._check("copy", self._adb("copy", ["push", self.binary, f"{folder}/benchmark_model"]),
                    "adb push benchmark_model")
        self._check("copy", self._shell("copy", f"chmod 755 {shlex.quote(folder + '/benchmark_model')}"), "chmod")
        for variant, path in models.items():
            self._check("copy", self._adb("copy", ["push", os.fspath(path), f"{folder}/{model_name(variant)}"]),
                        f"adb push {variant}")

    def command(self, variant: str, *, threads: int, runs: int, warmup: int, delegate: str | None) -> list[str]:
        """The benchmark_model command line for one measurement (run on the phone)."""
        return [f"{self.folder}/benchmark_model", f"--graph={self.folder}/{model_name(variant)}",
                f"--num_threads={threads}", f"--num_runs={runs}", f"--warmup_runs={warmup}", "--min_secs=0",
                "--warmup_min_secs=0", "--report_peak_memory_footprint=true",
                *DELEGATE_FLAGS[delegate or "xnnpack"]]

    def run_latency(self, step: str, variant: str, *, threads: int, runs: int, warmup: int,
                    delegate: str | None) -> dict:
        argv = self.command(variant, threads=threads, runs=runs, warmup=warmup, delegate=delegate)
        proc = self._shell(step, " ".join(shlex.quote(a) for a in argv))
        text = f"{proc.stdout}\n{proc.stderr}"
        try:
            parsed = parse_benchmark_output(text)
        except ValueError:
            reason = error_line(text)
            if proc.returncode:
                reason = failure_reason(proc.returncode, "", reason, remote_shell=True)
            raise self.fail(step, f"benchmark_model: {reason}") from None
        wanted = (delegate or "xnnpack").lower()
        if wanted in ("gpu", "nnapi") and wanted not in parsed["delegates_applied"]:
            raise self.fail(step, f"benchmark_model did not apply the {wanted.upper()} delegate "
                            f"({error_line(text, wanted)}); the timing would be the CPU's")
        parsed.update(threads=threads, warmup=warmup, delegate=wanted, backend="benchmark_model",
                      backend_version=None)
        if parsed["runs"] is None:
            parsed["runs"] = runs
        return parsed

    def close(self) -> None:
        if self.folder:
            try:
                self._shell("cleanup", f"rm -rf {shlex.quote(self.folder)}", timeout=60)
            except DeviceError:
                pass
            self.folder = None
