"""MultiWorkerMirroredStrategy with real worker processes on 127.0.0.1: training, a worker killed
with SIGKILL and restarted, the chief as the only writer, and bad cluster specs."""
from __future__ import annotations

import csv
import json
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

from tests.helpers import RECIPES, run_cli

DIGITS = str(RECIPES / "digits.yaml")
EPOCHS = 10


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def start_workers(run, ports, *extra):
    hosts = ",".join(f"localhost:{p}" for p in ports)
    return [subprocess.Popen([sys.executable, "-m", "edgecls", "train", DIGITS, "--run-dir", str(run),
                              "--set", f"train.epochs={EPOCHS}", "--worker-hosts", hosts, "--task-index", str(i),
                              *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for i in range(len(ports))]


def history_rows(run) -> int:
    path = run / "train" / "history.csv"
    if not path.exists():
        return 0
    with open(path, newline="") as fh:
        return len(list(csv.DictReader(fh)))


def test_two_workers_survive_a_killed_worker(tmp_path):
    run = tmp_path / "run"
    chief, worker = start_workers(run, free_ports(2))
    deadline = time.time() + 300
    while history_rows(run) < 2:
        assert time.time() < deadline and chief.poll() is None, chief.stderr.read()[-3000:] if chief.poll() else ""
        time.sleep(0.5)
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    try:
        _, err = chief.communicate(timeout=120)  # MWMS's health check notices the dead peer
    except subprocess.TimeoutExpired:
        chief.kill()
        pytest.fail("the chief did not notice that its peer died")
    assert chief.returncode == 1 and "a worker stopped answering" in err and "--resume" in err, err[-2000:]
    done = history_rows(run)

    procs = start_workers(run, free_ports(2), "--resume")
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs[0][1][-3000:] + outs[1][1][-3000:]
    first = int(re.search(rf"epoch (\d+)/{EPOCHS}", outs[0][1]).group(1))
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

    a, b = free_ports(2)
    t0 = time.time()
    res = run_cli("train", DIGITS, "--run-dir", str(tmp_path / "c"), "--worker-hosts",
                  f"localhost:{a},localhost:{b}", "--task-index", "0", "--set", "train.join_timeout=5", timeout=120)
    assert res.returncode == 1, res.stderr[-2000:]
    assert f"worker(s) localhost:{b} did not join within 5 s" in res.stderr and "Traceback" not in res.stderr
    assert time.time() - t0 < 60
    assert not (tmp_path / "c" / "train").exists()
