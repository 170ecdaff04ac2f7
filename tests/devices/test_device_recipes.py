"""Device recipes: the shipped ones load, the README documents them, mistakes are one file:line: key line."""
from __future__ import annotations

import dataclasses
import re
import textwrap

import pytest

from edgecls.devices import DeviceRecipe, list_devices, load_device, resolve_device
from edgecls.devices.loader import BUNDLED_DIR
from edgecls.errors import RecipeError
from tests.helpers import ROOT

SHIPPED = ("local", "raspberry-pi-4", "raspberry-pi-5", "android", "coral-edgetpu", "ssh-linux", "arduino-nano-33-ble",
           "stm32-nucleo-l4r5zi")


def write(tmp_path, text: str, name: str = "dev.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def test_shipped_recipes_load():
    assert BUNDLED_DIR.resolve() == (ROOT / "devices").resolve()  # the top-level devices/ shows the bundled ones
    names = {n for n, _, _ in list_devices()}
    assert set(SHIPPED) <= names
    for name in SHIPPED:
        d = load_device(name)
        assert d.name == name and d.description and d.threads and d.delegates
    assert load_device("local").connect == "local"
    pi4, pi5 = load_device("raspberry-pi-4"), load_device("raspberry-pi-5")
    for pi in (pi4, pi5):
        assert pi.connect == "ssh" and pi.host and set(pi.threads) <= {1, 2, 3, 4} and pi.setup
        assert pi.runtime in ("auto", "ai-edge-litert", "tflite-runtime")
    android = load_device("android")
    assert android.connect == "adb" and set(android.delegates) == {"xnnpack", "gpu", "nnapi"}
    coral = load_device("coral-edgetpu")
    assert coral.delegates == ("edgetpu",) and coral.model_suffix == "_edgetpu" and coral.variants == ("*int8*",)
    assert load_device("ssh-linux").connect == "ssh"
    # the boards' datasheet budgets: nRF52840 1 MB flash, 256 KB RAM; STM32L4R5ZI 2 MB flash, 640 KB SRAM
    nano, nucleo = load_device("arduino-nano-33-ble"), load_device("stm32-nucleo-l4r5zi")
    assert (nano.connect, nano.flash_kb, nano.ram_kb) == ("micro", 1024, 256)
    assert (nucleo.connect, nucleo.flash_kb, nucleo.ram_kb) == ("micro", 2048, 640)
    assert nano.ram_budget_bytes == 256 * 1024 and nucleo.flash_budget_bytes == 2048 * 1024
    listed = {n: desc for n, _, desc in list_devices()}
    assert listed["stm32-nucleo-l4r5zi"].endswith("[micro: flash 2048 KiB, RAM 640 KiB]")
    assert load_device("local").flash_budget_bytes is None


def test_readme_has_a_section_per_family_and_every_field():
    text = (ROOT / "devices" / "README.md").read_text()
    for name in SHIPPED:
        assert re.search(rf"^## .*{re.escape(name)}", text, re.M), f"no section for {name}"
    for f in dataclasses.fields(DeviceRecipe):
        assert f"| `{f.name}` |" in text, f"field {f.name} is not in the README's table"
    assert "edgetpu_compiler" in text and "benchmark_model" in text


@pytest.mark.parametrize("text, where, message", [
    ("name: d\ntreads: [1]\n", ":2: treads", "did you mean 'threads'"),
    ("name: d\nconnect: sssh\n", ":2: connect", "did you mean 'ssh'"),
    ("name: d\nconnect: ssh\n", ":1: host", "an ssh device needs a host"),
    ("name: d\nthreads: [1, 0]\n", ":2: threads", "must be >= 1"),
    ("name: d\nthreads: [1, 100000]\n", ":2: threads", "must be >= 1 and <= 256, got 100000"),
    ("name: d\neval_threads: 100000\n", ":2: eval_threads", "must be <= 256"),
    ("name: d\nthreads: []\n", ":2: threads", "at least one"),
    ("name: d\nruns: 0\n", ":2: runs", "must be >= 1"),
    ("name: d\nconnect: adb\ndelegates: [edgetpu]\n", ":3: delegates", "'edgetpu' is not one of"),
    ("name: d\ndelegates: [npu]\n", ":2: delegates", "'npu' is not one of"),
    ("name: a/b\n", ":1: name", "plain name"),
    ("name: d\nport: 22\n", ":2: port", "only for connect: ssh"),
    ("description: no name\n", ":1: name", "required key is missing"),
    ("name: d\nthreads: 2\n", ":2: threads", "expected a list"),
    ("name: d\nconnect: micro\nflash_kb: 1024\n", ":1: ram_kb", "a micro device needs its budget in KiB"),
    ("name: d\nconnect: micro\nram_kb: 256\n", ":1: flash_kb", "a micro device needs its budget in KiB"),
    ("name: d\nconnect: micro\nflash_kb: 1024\nram_kb: 0\n", ":4: ram_kb", "must be >= 1"),
    ("name: d\nconnect: micro\nflash_kb: 1MB\nram_kb: 256\n", ":3: flash_kb", "expected an integer"),
    ("name: d\nram_kb: 256\n", ":2: ram_kb", "only for connect: micro (this device connects by local)"),
    ("name: d\nconnect: ssh\nhost: h\nflash_reserved_kb: 8\n", ":4: flash_reserved_kb", "only for connect: micro"),
    ("name: d\nconnect: micro\nflash_kb: 1024\nram_kb: 256\nhost: board\n", ":5: host", "not for connect: micro"),
    ("name: d\nconnect: micro\nflash_kb: 64\nram_kb: 16\nram_reserved_kb: 16\n", ":5: ram_reserved_kb",
     "must be less than ram_kb (16), got 16"),
])
def test_mistakes_name_file_line_and_key(tmp_path, text, where, message):
    path = write(tmp_path, text)
    with pytest.raises(RecipeError) as err:
        load_device(path)
    line = str(err.value)
    assert line.startswith(str(path)) and where in line and message in line, line
    assert "\n" not in line


def test_a_recipe_built_in_python_is_checked_too():
    # run_bench(run, DeviceRecipe(...)) takes no YAML path: the same bounds hold, so no device is sent 100000 threads.
    with pytest.raises(RecipeError, match="threads: each thread count must be >= 1 and <= 256, got 100000"):
        DeviceRecipe(name="d", threads=(1, 100000))
    with pytest.raises(RecipeError, match="eval_threads: must be <= 256, got 1000"):
        DeviceRecipe(name="d", eval_threads=1000)
    with pytest.raises(RecipeError, match=r"threads\[0\]: expected an integer"):
        DeviceRecipe(name="d", threads=("4",))
    assert DeviceRecipe(name="d", threads=[1, 256]).threads == (1, 256)  # a list, as from YAML, becomes a tuple


def test_library_delegate_and_ssh_options(tmp_path):
    d = load_device(write(tmp_path, """
        name: board
        connect: ssh
        host: board7
        ssh_options: {StrictHostKeyChecking: no, ConnectionAttempts: 2}
        delegates: [xnnpack, /usr/lib/libedgetpu.so.1]
    """))
    assert d.ssh_options == {"StrictHostKeyChecking": False, "ConnectionAttempts": 2}  # YAML: no -> false
    assert d.where == "ssh board7"
    from edgecls.devices.ssh import SshRunner

    argv = SshRunner(d).base_argv()
    assert argv[:5] == ["ssh", "-o", "StrictHostKeyChecking=no", "-o", "ConnectionAttempts=2"]  # first value wins
    assert "BatchMode=yes" in argv


def test_unknown_device_name_lists_the_known_ones():
    with pytest.raises(RecipeError) as err:
        resolve_device("raspbery-pi-5")
    assert "did you mean 'raspberry-pi-5'" in str(err.value) and "android" in str(err.value)


def test_a_user_devices_folder_wins(tmp_path, monkeypatch):
    (tmp_path / "devices").mkdir()
    write(tmp_path / "devices", "name: local\ndescription: mine\nthreads: [1]\n", "local.yaml")
    monkeypatch.chdir(tmp_path)
    assert load_device("local").description == "mine"
