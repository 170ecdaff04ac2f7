"""The ssh runner against a real OpenSSH server (Debian's openssh-server) started on 127.0.0.1.

The test starts ``sshd -D`` as the current user with a throw-away host key,
an authorized_keys file and a config in a temporary folder, and gives the
client its own config file (``ssh_config:`` in the device recipe), so
~/.ssh is not touched. The "device" Python is .venv-rt-litert's (numpy and
ai-edge-litert, no TensorFlow). Without sshd the tests skip and say why
(.ci/run installs openssh-server before ``make test``).
"""
from __future__ import annotations

import getpass
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from edgecls.bench import compare_reports, run_bench
from edgecls.devices import DeviceError, DeviceRecipe
from tests.bench.exported import copy_run, device_python, write_crashing_python
from tests.devices.test_device_answers import lying_python

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def keygen(path: Path) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "edgecls-test", "-f", str(path)],
                   check=True, capture_output=True)
    return path


@dataclass
class Sshd:
    folder: Path
    port: int
    client_key: Path
    wrong_key: Path

    def client_config(self, name: str, *, port: int | None = None, key: Path | None = None) -> Path:
        path = self.folder / f"ssh_config-{name}"
        path.write_text(f"""Host edgecls-test
  HostName 127.0.0.1
  Port {port or self.port}
  User {getpass.getuser()}
  IdentityFile {key or self.client_key}
  IdentitiesOnly yes
  StrictHostKeyChecking no
  UserKnownHostsFile /dev/null
  LogLevel ERROR
""")
        return path

    def device(self, name: str = "ssh-test", **changes) -> DeviceRecipe:
        base = DeviceRecipe(name=name, connect="ssh", host="edgecls-test", ssh_config=str(self.client_config(name)),
                            python=str(device_python()), threads=(1,), runs=30, warmup=5,
                            work_dir=str(self.folder / "device-work"), timeout=300)
        return replace(base, **changes)


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    if not Path(SSHD).exists():
        pytest.skip("no OpenSSH server here (/usr/sbin/sshd): apt-get install openssh-server (.ci/run does that "
                    "before make test)")
    if not shutil.which("ssh") or not shutil.which("ssh-keygen"):
        pytest.skip("no OpenSSH client (ssh, ssh-keygen): apt-get install openssh-client")
    if os.geteuid() == 0 and not Path("/run/sshd").exists():
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege-separation folder (systemd makes it)
    folder = tmp_path_factory.mktemp("sshd")
    host_key = keygen(folder / "host_key")
    client = keygen(folder / "client_key")
    wrong = keygen(folder / "wrong_key")
    (folder / "authorized_keys").write_text(Path(str(client) + ".pub").read_text())
    (folder / "authorized_keys").chmod(0o600)
    port = free_port()
    (folder / "sshd_config").write_text(f"""ListenAddress 127.0.0.1
HostKey {host_key}
AuthorizedKeysFile {folder}/authorized_keys
PidFile {folder}/sshd.pid
StrictModes no
UsePAM no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
""")
    log = open(folder / "sshd.log", "w")
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(folder / "sshd_config"), "-p", str(port)],
                            stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log.close()
            pytest.skip(f"sshd did not start: {(folder / 'sshd.log').read_text()[-500:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.1)
    else:
        proc.kill()
        pytest.skip("sshd did not listen within 15 s")
    yield Sshd(folder, port, client, wrong)
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


def test_ssh_bench_agrees_with_local(sshd, run_dir, tmp_path):
    python = device_python()
    ssh_dev = sshd.device(threads=(1, 2))
    remote = run_bench(run_dir, ssh_dev, out_dir=tmp_path / "ssh-test")
    local = run_bench(run_dir, DeviceRecipe(name="local-test", connect="local", python=str(python), threads=(1, 2),
                                            runs=30, warmup=5), out_dir=tmp_path / "local-test")
    assert remote["complete"] and local["complete"], (remote["rows"], local["rows"])
    assert remote["device_info"]["backend"] == "ai-edge-litert" and remote["accuracy_on"] == "device"
    assert remote["device_info"]["python_path"] == str(python)
    by_key = {(r["variant"], r["threads"]): r for r in local["rows"]}
    assert len(remote["rows"]) == len(local["rows"]) == 4
    for r in remote["rows"]:
        l = by_key[(r["variant"], r["threads"])]
        for key in ("accuracy", "top5_accuracy", "macro_f1", "ece"):
            assert r[key] == l[key], (key, r, l)  # the same interpreter on the same pixels
        ratio = r["latency_ms"]["p50"] / l["latency_ms"]["p50"]
        assert 0.1 < ratio < 10, (r["latency_ms"], l["latency_ms"])  # the same order (tiny model, shared CPU)
        assert r["init_ms"] > 0 and r["peak_rss_mb"] > 10 and r["size_bytes"] > 0 and r["status"] == "ok"
    # Cleaned up: no folder left in the work dir, no ssh master, no control socket folder.
    assert list((sshd.folder / "device-work").iterdir()) == []
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert "ControlPersist" not in ps and str(sshd.folder) not in ps.replace(str(sshd.folder / "sshd_config"), "")
    # Files a person reads, and the merged view of both devices.
    out = tmp_path / "ssh-test"
    assert {"report.json", "report.csv", "report.md", "pareto.png", "confusion-float32.png",
            "confusion-int8.png"} <= {p.name for p in out.iterdir()}
    merged = compare_reports([tmp_path / "ssh-test", tmp_path / "local-test"])
    assert merged["devices"] == ["ssh-test", "local-test"] and len(merged["rows"]) == 8
    assert (tmp_path / "compare" / "pareto.png").stat().st_size > 5000
    assert "| ssh-test |" in (tmp_path / "compare" / "compare.md").read_text()


def _bare_venv_with_numpy(folder: Path) -> Path:
    """A Python with numpy but no interpreter package: a fresh venv with the device venv's numpy linked in."""
    venv = folder / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, capture_output=True)
    python = venv / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    src = subprocess.run([str(device_python()), "-c", "import numpy, os; print(os.path.dirname(numpy.__file__))"],
                         capture_output=True, text=True, check=True).stdout.strip()
    for name in ("numpy", "numpy.libs"):
        if (Path(src).parent / name).exists():
            os.symlink(Path(src).parent / name, Path(site) / name)
    return python


def _python_without_numpy() -> str:
    for candidate in ("/usr/bin/python3", "/usr/local/bin/python3"):
        if Path(candidate).exists() and subprocess.run([candidate, "-c", "import numpy"],
                                                       capture_output=True).returncode != 0:
            return candidate
    pytest.skip("every system python3 here has numpy")


@pytest.mark.parametrize("case", ["unreachable", "wrong key", "no python", "no numpy", "no interpreter"])
def test_bad_devices_get_one_line_naming_device_and_step(sshd, run_dir, tmp_path, case):
    if case == "unreachable":
        dev = sshd.device(ssh_config=str(sshd.client_config("closed", port=free_port())))
        step, words = "connect", "Connection refused"
    elif case == "wrong key":
        dev = sshd.device(ssh_config=str(sshd.client_config("wrong", key=sshd.wrong_key)))
        step, words = "connect", "Permission denied"
    elif case == "no python":
        dev = sshd.device(python="/nonexistent/bin/python3")
        step, words = "python", "not found on the device"
    elif case == "no numpy":
        dev = sshd.device(python=_python_without_numpy(), setup=("python3 -m pip install numpy ai-edge-litert",))
        step, words = "python packages", "cannot import numpy"
    else:
        dev = sshd.device(python=str(_bare_venv_with_numpy(tmp_path)))
        step, words = "interpreter package", "no usable TFLite interpreter package"
    out = tmp_path / "out"
    with pytest.raises(DeviceError) as err:
        run_bench(run_dir, dev, out_dir=out)
    line = str(err.value)
    assert line.startswith("device 'ssh-test' (ssh edgecls-test), step ") and f"step '{step}'" in line, line
    assert words in line and "\n" not in line, line
    if case == "no numpy":
        assert "setup steps: python3 -m pip install numpy ai-edge-litert" in line
    assert not out.exists()  # nothing written: no partial report


def test_crash_and_corrupt_model_fail_their_rows_only(sshd, run_dir, tmp_path):
    run = copy_run(run_dir, tmp_path / "run")
    # Beside the exported files, not over them: bench refuses a variant whose file changed since export (stale).
    export = run / "export"
    (export / "float32_dev.tflite").write_bytes((export / "float32.tflite").read_bytes())
    (export / "int8_dev.tflite").write_bytes(b"TFL3" + os.urandom(200))  # corrupt: not a flatbuffer model
    crashing = write_crashing_python(tmp_path, device_python(), when="--threads 2")
    report = run_bench(run, sshd.device(python=str(crashing), threads=(1, 2), model_suffix="_dev"),
                       out_dir=tmp_path / "out")
    rows = {(r["variant"], r["threads"]): r for r in report["rows"]}
    assert rows[("float32", 1)]["status"] == "ok" and rows[("float32", 1)]["accuracy"] > 0.8
    crashed = rows[("float32", 2)]["status"]
    assert crashed.startswith("failed: latency float32 threads=2: crashed (SIGSEGV)"), crashed
    for t in (1, 2):
        status = rows[("int8", t)]["status"]
        assert status.startswith("failed: accuracy int8: ") and "int8.tflite" in status, status  # staged name
    assert report["complete"] is False and report["rows_failed"] == 3 and report["rows_total"] == 4
    saved = json.loads((tmp_path / "out" / "report.json").read_text())
    assert saved["complete"] is False and [r["status"] for r in saved["rows"]] == [r["status"] for r in report["rows"]]
    md = (tmp_path / "out" / "report.md").read_text()
    assert "**INCOMPLETE: 3 of 4 rows failed**" in md and "SIGSEGV" in md
    csv = (tmp_path / "out" / "report.csv").read_text().splitlines()
    assert len(csv) == 5 and csv[0].startswith("device,variant,mode,delegate,threads,accuracy")


def test_a_wrong_answer_over_ssh_fails_its_row(sshd, run_dir, tmp_path):
    """The device's python answers the int8 timing with strings: that row fails with the reason, the rest is ok."""
    python = lying_python(tmp_path / "dev", bench='{"p50_ms": "0.2", "mean_ms": "0.2", "threads": 1}',
                          when="int8.tflite", real=device_python())
    report = run_bench(run_dir, sshd.device(python=str(python), threads=(1,)), out_dir=tmp_path / "out", plots=False)
    rows = {r["variant"]: r for r in report["rows"]}
    assert rows["float32"]["status"] == "ok" and rows["float32"]["latency_ms"]["p50"] > 0
    assert rows["int8"]["status"] == ("failed: latency int8 threads=1: the device's answer has p50_ms=\"0.2\" "
                                      "(expected a number)")
    assert rows["int8"]["accuracy"] > 0.8 and report["rows_failed"] == 1
