"""Start N edgecls training workers on this machine with MultiWorkerMirroredStrategy.

    python examples/launch_local_workers.py recipes/digits.yaml --workers 2 [--base-port 23456] [-- --run-dir runs/mw]

Each worker is `edgecls train RECIPE --worker-hosts localhost:P0,localhost:P1,... --task-index i`;
worker 0 is the chief and the only one that writes the run directory. On a GPU
cluster, run the same command on each host with the real host names (see
docs/distributed.md). Arguments after `--` go to every worker.
"""
from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import threading


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipe")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--base-port", type=int, default=23456)
    argv = sys.argv[1:]
    split = argv.index("--") if "--" in argv else len(argv)
    args, extra = parser.parse_args(argv[:split]), argv[split + 1:]  # after --: for every worker
    hosts = ",".join(f"localhost:{args.base_port + i}" for i in range(args.workers))
    procs = [subprocess.Popen([sys.executable, "-m", "edgecls", "train", args.recipe, "--worker-hosts", hosts,
                               "--task-index", str(i), *extra], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True) for i in range(args.workers)]

    def relay(i: int, proc: subprocess.Popen) -> None:
        for line in proc.stdout:
            print(f"[worker {i}] {line}", end="", flush=True)

    threads = [threading.Thread(target=relay, args=(i, p), daemon=True) for i, p in enumerate(procs)]
    for t in threads:
        t.start()
    try:
        codes = [p.wait() for p in procs]
    except KeyboardInterrupt:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        codes = [p.wait() for p in procs]
    for t in threads:
        t.join()
    print(f"workers exited with {codes}")
    return max(codes, key=abs)


if __name__ == "__main__":
    sys.exit(main())
