"""Devices: recipes (devices/*.yaml) and the runners that measure models on them (local, ssh, adb).

A ``connect: micro`` device (a microcontroller board) has no runner: bench checks the TFLite Micro
figures export measured against its flash and RAM budgets (edgecls.bench.micro).

    from edgecls.devices import load_device, make_runner
    device = load_device("raspberry-pi-5")
    with make_runner(device) as runner:
        runner.open(); runner.stage(models, data, runtime); runner.latency("int8", threads=4, runs=100, warmup=10)
"""
from __future__ import annotations

from edgecls.devices.base import DeviceError, DeviceRunner, StepFailed
from edgecls.devices.loader import list_devices, load_device, resolve_device
from edgecls.devices.schema import DeviceRecipe


def make_runner(device: DeviceRecipe) -> DeviceRunner:
    """The runner for ``device.connect``; a micro device has none (DeviceError)."""
    if device.connect == "micro":
        raise DeviceError(device, "connect", "edgecls does not run models on a microcontroller: "
                                             "`edgecls bench` checks its budgets from export.json instead")
    if device.connect == "ssh":
        from edgecls.devices.ssh import SshRunner

        return SshRunner(device)
    if device.connect == "adb":
        from edgecls.devices.adb import AdbRunner

        return AdbRunner(device)
    from edgecls.devices.local import LocalRunner

    return LocalRunner(device)


__all__ = ["DeviceError", "DeviceRecipe", "DeviceRunner", "StepFailed", "list_devices", "load_device", "make_runner",
           "resolve_device"]
