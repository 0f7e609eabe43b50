"""Memory and latency while ``etcdctl snapshot save`` streams a large database.

For each server (real etcd 3.5.1 and ours): fill a fresh member with ``--mb`` MB of
values, then run ``etcdctl snapshot save`` while sampling the member's memory every
50 ms and timing sequential linearizable gets from another client. Prints, per
server: snapshot size and time, the growth of anonymous RSS (heap: what the
stream itself allocates) and of total RSS (anonymous plus the mapped database
file's pages, page cache the kernel may drop), and the gets' p50/p99/max.

    .venv/bin/python -m bench.snapshot_stream --mb 500 [--kinds etcd,ours]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from bench import procs
from bench.client import channel, first_write
from etcd_twisted._pb import rpc_pb2, rpc_pb2_grpc


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS, RssAnon and RssFile of ``pid`` in KiB."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile"):
                out[key] = int(value.split()[0])
    return out


def fill(endpoint: str, megabytes: int, value_kib: int) -> float:
    """Write ``megabytes`` MB of ``value_kib`` KiB values (8 in flight); seconds taken."""
    value = os.urandom(value_kib * 1024)
    count = megabytes * 1024 // value_kib
    started = time.monotonic()
    with channel(endpoint) as c:
        kv = rpc_pb2_grpc.KVStub(c)

        def put(i: int) -> None:
            kv.Put(rpc_pb2.PutRequest(key=b"fill/%08d" % i, value=value), timeout=60)

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(put, range(count)))
    return time.monotonic() - started


def measure(kind: str, base: str, megabytes: int, value_kib: int) -> dict[str, float]:
    (server,) = procs.new_servers(kind, base, "snap", extra=["--quota-backend-bytes", str(8 << 30)])
    procs.start([server])
    try:
        first_write([server])
        fill_seconds = fill(server.endpoint, megabytes, value_kib)
        time.sleep(1.0)
        before = memory_kib(server.pid)
        peak = dict(before)
        latencies: list[float] = []
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                now = memory_kib(server.pid)
                for key, value in now.items():
                    peak[key] = max(peak[key], value)
                time.sleep(0.05)

        def reads() -> None:
            with channel(server.endpoint) as c:
                kv = rpc_pb2_grpc.KVStub(c)
                while not done.is_set():
                    t = time.monotonic()
                    kv.Range(rpc_pb2.RangeRequest(key=b"bench/first-write"), timeout=10)
                    latencies.append(time.monotonic() - t)
                    time.sleep(0.005)

        threads = [threading.Thread(target=sample), threading.Thread(target=reads)]
        for t in threads:
            t.start()
        path = os.path.join(base, f"{kind}.snapshot.db")
        started = time.monotonic()
        saved = subprocess.run(
            [procs.binary("etcdctl"), f"--endpoints={server.endpoint}",
             "--command-timeout=600s", "snapshot", "save", path],
            capture_output=True, timeout=900,
        )  # fmt: skip
        seconds = time.monotonic() - started
        done.set()
        for t in threads:
            t.join()
        if saved.returncode:
            raise RuntimeError(saved.stderr.decode(errors="replace"))
        latencies.sort()
        return {
            "fill s": fill_seconds,
            "snapshot MB": os.path.getsize(path) / 1e6,
            "save s": seconds,
            "RssAnon before MiB": before["RssAnon"] / 1024,
            "RssAnon growth MiB": (peak["RssAnon"] - before["RssAnon"]) / 1024,
            "VmRSS growth MiB": (peak["VmRSS"] - before["VmRSS"]) / 1024,
            "gets": len(latencies),
            "get p50 ms": statistics.median(latencies) * 1000,
            "get p99 ms": latencies[int(len(latencies) * 0.99)] * 1000,
            "get max ms": latencies[-1] * 1000,
        }
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=500, help="database size to write")
    parser.add_argument("--value-kib", type=int, default=100)
    parser.add_argument("--kinds", default="etcd,ours")
    args = parser.parse_args()
    procs.install_cleanup()
    results = {}
    with tempfile.TemporaryDirectory(prefix="snapshot-stream-") as base:
        for kind in args.kinds.split(","):
            results[kind] = measure(kind, base, args.mb, args.value_kib)
            print(kind, results[kind], flush=True)
    kinds = list(results)
    print(f"\n{'':22}" + "".join(f"{k:>14}" for k in kinds))
    for row in results[kinds[0]]:
        print(f"{row:22}" + "".join(f"{results[k][row]:>14.1f}" for k in kinds))


if __name__ == "__main__":
    main()
