"""A Linux device over ssh: the OpenSSH client, run with argument lists (never a local shell string).

ssh reads ~/.ssh/config as usual (host aliases, keys, jump hosts), or the
file named by ``ssh_config:`` in the device recipe (``ssh -F``); ``ssh_options:``
become ``-o Key=Value`` and win over both. One master connection is shared by
all steps (ControlMaster, closed at the end). Files travel as one tar stream
into a fresh folder under ``work_dir`` that is removed afterwards. The command
a device runs is a string for its login shell (that is how ssh works), built
with ``shlex.quote`` from an argument list.
"""
from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import tarfile
import tempfile
from typing import Sequence

from edgecls.devices.base import RUNTIME_NAME, DeviceError, run_command
from edgecls.devices.zipapp import ZipappRunner, model_name

_SSH_HINTS = (
    ("permission denied", "the device refused the login: check the key (IdentityFile in your ssh config or the "
                          "recipe's ssh_options) and that its public key is in the device's ~/.ssh/authorized_keys"),
    ("connection refused", "nothing answers on that port: is sshd running on the device, and is the port right?"),
    ("could not resolve hostname", "unknown host name: check host: in the device recipe (a name, user@host or an "
                                   "alias from your ssh config)"),
    ("name or service not known", "unknown host name: check host: in the device recipe"),
    ("timed out", "no answer: is the device on, and reachable from this network?"),
    ("no route to host", "no route to the device: is it on this network?"),
    ("host key verification failed", "the device's host key is unknown or has changed: connect once with ssh by "
                                     "hand to check and accept it"),
    ("connection closed", "the device closed the connection"),
)


def rquote(arg: str) -> str:
    """Quote one argument for the device's POSIX shell, keeping a leading ~/ meaning the home folder."""
    if arg == "~":
        return '"$HOME"'
    if arg.startswith("~/"):
        return '"$HOME"/' + shlex.quote(arg[2:])
    return shlex.quote(arg)


def remote_command(argv: Sequence[str]) -> str:
    return " ".join(rquote(a) for a in argv)


def explain_ssh(stderr: str) -> str:
    """ssh's last complaint, starting 'ssh:', with a hint of what to check."""
    lines = [ln.strip() for ln in (stderr or "").splitlines() if ln.strip()]
    text = lines[-1] if lines else "the connection ended with no message (ssh exit status 255)"
    text = text if text.startswith("ssh:") else f"ssh: {text}"
    low = (stderr or "").lower()
    for needle, hint in _SSH_HINTS:
        if needle in low:
            return f"{text} ({hint})"
    return text


def _option(value) -> str:
    if isinstance(value, bool):  # YAML reads yes/no as booleans
        return "yes" if value else "no"
    return str(value)


class SshRunner(ZipappRunner):
    kind = "ssh"
    remote_shell = True

    def __init__(self, device):
        super().__init__(device)
        self.workdir: str | None = None
        self._control: str | None = None
        self._connected = False

    # -- ssh itself
    def base_argv(self) -> list[str]:
        d = self.device
        argv = ["ssh"]
        if d.ssh_config:
            argv += ["-F", os.path.expanduser(d.ssh_config)]
        for key, value in d.ssh_options.items():  # first: ssh keeps the first value it gets for an option
            argv += ["-o", f"{key}={_option(value)}"]
        if d.port:
            argv += ["-p", str(d.port)]
        if d.user:
            argv += ["-l", d.user]
        argv += ["-o", "BatchMode=yes", "-o", f"ConnectTimeout={d.connect_timeout}", "-o", "ServerAliveInterval=15",
                 "-o", "ServerAliveCountMax=4", "-o", "LogLevel=ERROR"]
        if self._control:
            argv += ["-o", "ControlMaster=auto", "-o", f"ControlPath={self._control}/%C", "-o", "ControlPersist=600"]
        return argv

    def shell(self, step: str, command: str, *, timeout: float | None = None,
              stdin=None) -> subprocess.CompletedProcess:
        """Run ``command`` (a string for the device's shell) through ssh."""
        argv = self.base_argv() + ["--", self.device.host, command]
        proc = run_command(self.device, step, argv, timeout=timeout or self.device.timeout, stdin=stdin,
                           missing_hint="install the OpenSSH client (apt install openssh-client)")
        if proc.returncode == 255 and self._connected:  # ssh's own failure (a program rarely exits 255)
            raise self.fail(step, explain_ssh(proc.stderr))
        return proc

    def exec(self, step: str, argv: Sequence[str], *, timeout: float | None = None,
             stdin=None) -> subprocess.CompletedProcess:
        # "; exit $?": the shell waits for the program instead of exec'ing it, so a program killed by a signal
        # comes back as exit status 128 + N (ssh itself would only say 255, as for a lost connection).
        return self.shell(step, remote_command(argv) + "; exit $?", timeout=timeout, stdin=stdin)

    def path(self, name: str) -> str:
        if self.workdir is None:
            raise RuntimeError("stage() first")
        return f"{self.workdir}/{name}"

    # -- the steps
    def connect(self) -> None:
        self._control = tempfile.mkdtemp(prefix="edgecls-ssh-")  # short: socket paths are limited to ~100 bytes
        proc = self.shell("connect", "echo edgecls-ok", timeout=self.device.connect_timeout + 30)
        if proc.returncode != 0 or "edgecls-ok" not in proc.stdout:
            raise DeviceError(self.device, "connect", explain_ssh(proc.stderr or proc.stdout))
        self._connected = True

    def stage(self, models, data, runtime) -> None:
        base = (self.device.work_dir or "/tmp/edgecls-device").rstrip("/") or "/"
        proc = self.shell("copy", f"mkdir -p -- {rquote(base)} && mktemp -d {rquote(base)}/edgecls.XXXXXX")
        folder = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
        if proc.returncode != 0 or not folder.startswith("/"):
            raise DeviceError(self.device, "copy", f"cannot make a folder in {base} on the device: "
                              f"{explain_ssh(proc.stderr) if proc.stderr.strip() else 'no answer'}")
        self.workdir = folder
        files = {model_name(v): p for v, p in models.items()}
        if data is not None:
            files["test.npz"] = data
        if runtime is not None:
            files[RUNTIME_NAME] = runtime
        with tempfile.TemporaryDirectory(prefix="edgecls-stage-") as tmp:
            tar_path = os.path.join(tmp, "stage.tar")
            with tarfile.open(tar_path, "w") as tar:
                for name, path in sorted(files.items()):
                    tar.add(os.fspath(path), arcname=name, recursive=False)
            size = os.path.getsize(tar_path)
            with open(tar_path, "rb") as fh:
                proc = self.shell("copy", f"tar -xf - -C {rquote(folder)}", stdin=fh)
        if proc.returncode != 0:
            raise DeviceError(self.device, "copy", f"copying {len(files)} files ({size / 2**20:.1f} MiB) to "
                              f"{folder} failed: {explain_ssh(proc.stderr)}")

    def close(self) -> None:
        try:
            if self.workdir and self._connected:
                self.shell("cleanup", f"rm -rf -- {rquote(self.workdir)}", timeout=60)
        except DeviceError:
            pass  # the report says what was measured; a folder left in /tmp is not worth failing for
        finally:
            self.workdir = None
            if self._control:
                subprocess.run(self.base_argv() + ["-O", "exit", "--", self.device.host], capture_output=True,
                               timeout=30)
                shutil.rmtree(self._control, ignore_errors=True)
                self._control = None
