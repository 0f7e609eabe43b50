"""Server CPU time per request for put, txn and range, read from /proc: ours at two checkouts.

Usage: .venv/bin/python bench/cpu_per_request.py [--requests N] [--window W] [--rounds R]
                                                  REPO [REPO ...]

Each REPO is a checkout of this project (its own ``etcd_twisted`` is imported by the
member it starts, with this venv's packages). For every round, every REPO in turn
(alternating order) gets a fresh member on loopback; a grpcio client sends N puts
(random keys over a 10k space, 256-byte values), N txns (a compare on the key's
version and a put), then N serializable and N linearizable ranges, W calls in
flight; the member's user+system CPU time over each phase, divided by N, is the
figure (the wall-clock requests per second of each phase are printed too). CPU time is what a request costs the server,
which load from other processes disturbs far less than throughput. Prints the
median per REPO and workload, and the ratio to the first REPO.
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

import grpc

from etcd_twisted._pb import rpc_pb2, rpc_pb2_grpc

TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def start_member(repo: str, data_dir: str) -> tuple[subprocess.Popen[bytes], str]:
    client, peer = free_port(), free_port()
    url = f"http://127.0.0.1:{client}"
    env = dict(os.environ, PYTHONPATH=repo)
    proc = subprocess.Popen(
        [
            os.path.join(os.path.dirname(sys.executable), "twistd"), "--nodaemon", "--pidfile=",
            "etcd",
            "--data-dir", data_dir, "--listen-client-urls", url, "--advertise-client-urls", url,
            "--listen-peer-urls", f"http://127.0.0.1:{peer}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
            "--initial-cluster", f"default=http://127.0.0.1:{peer}",
        ],
        cwd=repo, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    return proc, f"127.0.0.1:{client}"


def wait_ready(stub: rpc_pb2_grpc.KVStub) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            stub.Put(rpc_pb2.PutRequest(key=b"ready", value=b"1"), timeout=2)
            return
        except grpc.RpcError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def drive(call: Callable[[int], grpc.Future], n: int, window: int) -> None:
    """Issue ``n`` calls with ``window`` in flight."""
    pending: list[grpc.Future] = []
    for i in range(n):
        pending.append(call(i))
        if len(pending) >= window:
            pending.pop(0).result()
    for f in pending:
        f.result()


def measure(repo: str, n: int, window: int) -> dict[str, float]:
    rng = random.Random(7)
    keys = [b"key-%05d" % rng.randrange(10_000) for _ in range(n)]
    value = b"v" * 256
    with tempfile.TemporaryDirectory() as tmp:
        proc, target = start_member(repo, os.path.join(tmp, "m.etcd"))
        try:
            channel = grpc.insecure_channel(target)
            kv = rpc_pb2_grpc.KVStub(channel)
            wait_ready(kv)
            phases: dict[str, Callable[[int], grpc.Future]] = {
                "put": lambda i: kv.Put.future(rpc_pb2.PutRequest(key=keys[i], value=value)),
                "txn": lambda i: kv.Txn.future(
                    rpc_pb2.TxnRequest(
                        compare=[
                            rpc_pb2.Compare(
                                key=keys[i],
                                target=rpc_pb2.Compare.VERSION,
                                result=rpc_pb2.Compare.GREATER,
                                version=-1,
                            )
                        ],
                        success=[
                            rpc_pb2.RequestOp(
                                request_put=rpc_pb2.PutRequest(key=keys[i], value=value)
                            )
                        ],
                    )  # fmt: skip
                ),
                "range_ser": lambda i: kv.Range.future(
                    rpc_pb2.RangeRequest(key=keys[i], serializable=True)
                ),
                "range_lin": lambda i: kv.Range.future(rpc_pb2.RangeRequest(key=keys[i])),
            }
            out = {}
            for name, call in phases.items():
                before, started = cpu_seconds(proc.pid), time.monotonic()
                drive(call, n, window)
                out[name] = (cpu_seconds(proc.pid) - before) / n * 1e6
                out[f"{name}/s"] = n / (time.monotonic() - started)
            channel.close()
            return out
        finally:
            proc.terminate()
            proc.wait(20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("repos", nargs="+")
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--window", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    samples: dict[str, list[dict[str, float]]] = {repo: [] for repo in args.repos}
    for round_ in range(args.rounds):
        order = args.repos if round_ % 2 == 0 else list(reversed(args.repos))
        for repo in order:
            result = measure(repo, args.requests, args.window)
            samples[repo].append(result)
            print(
                f"round {round_} {repo}: "
                + ", ".join(
                    f"{k} {v:.0f}" + ("" if k.endswith("/s") else " µs") for k, v in result.items()
                )
            )
    print(
        f"\nserver CPU µs per request, median of {args.rounds} (load average {os.getloadavg()[0]:.1f})"
    )
    first = args.repos[0]
    for workload in ("put", "txn", "range_ser", "range_lin"):
        base = statistics.median(s[workload] for s in samples[first])
        cells = []
        for repo in args.repos:
            med = statistics.median(s[workload] for s in samples[repo])
            spread = max(s[workload] for s in samples[repo]) - min(
                s[workload] for s in samples[repo]
            )
            cells.append(f"{repo}: {med:.0f} ±{spread / 2:.0f} ({med / base:.2f}x)")
        print(f"  {workload:10s} " + " | ".join(cells))
    print("wall-clock requests per second, median (ratio to the first REPO)")
    for workload in ("put", "txn", "range_ser", "range_lin"):
        base = statistics.median(s[f"{workload}/s"] for s in samples[first])
        cells = []
        for repo in args.repos:
            med = statistics.median(s[f"{workload}/s"] for s in samples[repo])
            cells.append(f"{repo}: {med:.0f}/s ({med / base:.2f}x)")
        print(f"  {workload:10s} " + " | ".join(cells))


if __name__ == "__main__":
    main()
