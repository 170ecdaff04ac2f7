"""MultiWorkerMirroredStrategy with real worker processes on 127.0.0.1: training, a worker killed
with SIGKILL and restarted, the chief as the only writer, and bad cluster specs.

A port picked free can be taken by another process before the worker binds it (the worker binds it
itself, seconds later, after importing TensorFlow; it cannot be handed a held socket). A worker that
finds its port taken ends at once saying "in use", so the tests start the whole launch again on
fresh ports when that happens (PORT_TRIES times), instead of failing for a reason that is not theirs.
"""
from __future__ import annotations

import csv
import json
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import RECIPES, run_cli

DIGITS = str(RECIPES / "digits.yaml")
EPOCHS = 10
PORT_TRIES = 3


def free_ports(n: int) -> list[int]:
    """``n`` distinct ports nothing holds now (the kernel's pick), all held until all are picked."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def lost_its_port(stderr: str) -> bool:
    """The worker's own "port N of this worker ... is in use", or gRPC's "Address already in use"."""
    return "in use" in stderr


@dataclass
class Worker:
    """One `edgecls train` worker process; its output goes to files (a pipe nobody reads would fill)."""

    proc: subprocess.Popen
    out: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def stderr(self) -> str:
        return (self.out / "stderr").read_text()


def start_workers(run, ports, logs: Path, *extra) -> list[Worker]:
    hosts = ",".join(f"localhost:{p}" for p in ports)
    workers = []
    for i in range(len(ports)):
        out = logs / f"worker-{i}"
        out.mkdir(parents=True)
        with open(out / "stdout", "w") as stdout, open(out / "stderr", "w") as stderr:
            proc = subprocess.Popen([sys.executable, "-m", "edgecls", "train", DIGITS, "--run-dir", str(run),
                                     "--set", f"train.epochs={EPOCHS}", "--worker-hosts", hosts, "--task-index",
                                     str(i), *extra], stdout=stdout, stderr=stderr, text=True)
        workers.append(Worker(proc, out))
    return workers


def launch(run, logs: Path, *extra, until=lambda: False, timeout: float = 600) -> list[Worker]:
    """Start the workers on fresh ports and wait until ``until()`` holds or every worker has ended.

    When a worker ends because its port was taken, all of them stop and start again on new ports.
    """
    for attempt in range(PORT_TRIES):
        workers = start_workers(run, free_ports(2), logs / f"try-{attempt}", *extra)
        deadline = time.time() + timeout
        while True:
            ended = [w for w in workers if w.proc.poll() is not None]
            if any(w.proc.returncode != 0 and lost_its_port(w.stderr) for w in ended):
                for w in workers:
                    w.proc.kill()
                    w.proc.wait()
                break
            if until() or len(ended) == len(workers):
                return workers
            if time.time() > deadline:
                for w in workers:
                    w.proc.kill()
                pytest.fail(f"the workers did not finish within {timeout:g} s: {workers[0].stderr[-3000:]}")
            time.sleep(0.5)
    pytest.fail(f"{PORT_TRIES} launches in a row lost a port to another process")


def history_rows(run) -> int:
    path = run / "train" / "history.csv"
    if not path.exists():
        return 0
    with open(path, newline="") as fh:
        return len(list(csv.DictReader(fh)))


def test_two_workers_survive_a_killed_worker(tmp_path):
    run = tmp_path / "run"
    chief, worker = launch(run, tmp_path / "first", until=lambda: history_rows(run) >= 2, timeout=300)
    assert chief.proc.poll() is None and history_rows(run) >= 2, chief.stderr[-3000:]
    worker.proc.send_signal(signal.SIGKILL)
    worker.proc.wait()
    try:
        chief.proc.wait(timeout=120)  # MWMS's health check notices the dead peer
    except subprocess.TimeoutExpired:
        chief.proc.kill()
        pytest.fail("the chief did not notice that its peer died")
    err = chief.stderr
    assert chief.proc.returncode == 1 and "a worker stopped answering" in err and "--resume" in err, err[-2000:]
    done = history_rows(run)

    procs = launch(run, tmp_path / "resumed", "--resume")
    errs = [p.stderr for p in procs]
    assert [p.proc.returncode for p in procs] == [0, 0], errs[0][-3000:] + errs[1][-3000:]
    first = int(re.search(rf"epoch (\d+)/{EPOCHS}", errs[0]).group(1))
    assert first > 1 and first >= done - 1, (first, done)  # from the backup, not from scratch
    assert history_rows(run) == EPOCHS
    metrics = json.loads((run / "train" / "metrics.json").read_text())
    assert metrics["replicas"] == 2 and metrics["accuracy"] >= 0.95

    # Only the chief writes the run directory: no file of the workers' processes (TensorBoard names
    # its files after the writing pid), and no Keras worker-temp folders left behind.
    worker_pids = {worker.pid, procs[1].pid}
    for path in run.rglob("*"):
        assert "workertemp" not in path.name
        pid = re.search(r"events\.out\.tfevents\.\d+\.[^.]+\.(\d+)\.", path.name)
        assert not pid or int(pid.group(1)) not in worker_pids, path


def test_bad_cluster_specs(tmp_path):
    res = run_cli("train", DIGITS, "--run-dir", str(tmp_path / "a"), "--set", "train.strategy=multi_worker",
                  env={"TF_CONFIG": '{"cluster": {"worker": ["localhost:1"]}, "task": '})
    assert res.returncode == 1 and "TF_CONFIG is not valid JSON" in res.stderr and "Traceback" not in res.stderr
    res = run_cli("train", DIGITS, "--run-dir", str(tmp_path / "a"), "--set", "train.strategy=multi_worker",
                  env={"TF_CONFIG": '{"cluster": {"worker": ["localhost:1"]}, "task": {"type": "worker", "index": 3}}'})
    assert res.returncode == 1 and "task.index 3 is out of range" in res.stderr
    res = run_cli("train", DIGITS, "--worker-hosts", "localhost", "--task-index", "0")
    assert res.returncode == 1 and "--worker-hosts: expected host:port" in res.stderr

    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port, other = busy.getsockname()[1], free_ports(1)[0]
    res = run_cli("train", DIGITS, "--run-dir", str(tmp_path / "b"), "--worker-hosts",
                  f"localhost:{port},localhost:{other}", "--task-index", "0")
    busy.close()
    assert res.returncode == 1 and f"port {port} of this worker" in res.stderr and "in use" in res.stderr

    for _ in range(PORT_TRIES):  # again on fresh ports if another process took this worker's port first
        a, b = free_ports(2)
        t0 = time.time()
        res = run_cli("train", DIGITS, "--run-dir", str(tmp_path / "c"), "--worker-hosts",
                      f"localhost:{a},localhost:{b}", "--task-index", "0", "--set", "train.join_timeout=5",
                      timeout=120)
        if not lost_its_port(res.stderr):
            break
    assert res.returncode == 1, res.stderr[-2000:]
    assert f"worker(s) localhost:{b} did not join within 5 s" in res.stderr and "Traceback" not in res.stderr
    assert time.time() - t0 < 60
    assert not (tmp_path / "c" / "train").exists()
