"""Start and reset times of the test kit's members (``python -m bench.testkit``).

Prints the median of several runs of: an in-process member from ``start_member`` to its
first acknowledged put; a child-process member (ours and real etcd 3.5.1) from spawn to
its first acknowledged put; a 3-member child-process cluster from spawn until every
member is ready and a put is acknowledged; the reset of a long-lived member (delete all
keys, revoke leases, auth off, users and roles gone).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable

from twisted.internet.defer import Deferred
from twisted.internet.threads import blockingCallFromThread

from etcd_twisted.testing import BlockingCluster, start_member
from etcd_twisted.testing.blocking import reactor_thread


def median_ms(f: Callable[[], float], runs: int) -> tuple[float, list[float]]:
    samples = [1000 * f() for _ in range(runs)]
    return statistics.median(samples), samples


def in_process() -> float:
    reactor = reactor_thread()
    t0 = time.perf_counter()
    member = blockingCallFromThread(reactor, lambda: Deferred.fromCoroutine(start_member(reactor)))
    member.gateway.put("k", "v")
    took = time.perf_counter() - t0
    blockingCallFromThread(reactor, lambda: Deferred.fromCoroutine(member.stop()))
    return took


def child(size: int, kind: str = "ours") -> Callable[[], float]:
    def run() -> float:
        t0 = time.perf_counter()
        cluster = BlockingCluster(tempfile.mkdtemp(prefix="kit-bench-"), size, kind=kind).start()
        cluster.gateway.put("k", "v")
        took = time.perf_counter() - t0
        cluster.stop()
        return took

    return run


def reset(cluster: BlockingCluster) -> Callable[[], float]:
    def run() -> float:
        for i in range(10):
            cluster.gateway.put(f"k{i}", "v")
        cluster.gateway.call("lease/grant", {"TTL": 60})
        t0 = time.perf_counter()
        cluster.reset()
        return time.perf_counter() - t0

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    reactor_thread()
    rows = [
        ("in-process member: start to first put", median_ms(in_process, runs)),
        ("child-process member (ours): spawn to first put", median_ms(child(1), runs)),
        (
            "child-process member (etcd 3.5.1): spawn to first put",
            median_ms(child(1, "etcd"), runs),
        ),
        ("3-member cluster (ours): spawn to ready + put", median_ms(child(3), runs)),
        ("3-member cluster (etcd 3.5.1): spawn to ready + put", median_ms(child(3, "etcd"), runs)),
    ]
    for kind in ("ours", "etcd"):
        with BlockingCluster(tempfile.mkdtemp(prefix="kit-bench-"), 1, kind=kind) as shared:
            label = "etcd 3.5.1" if kind == "etcd" else kind
            rows.append(
                (f"reset of a long-lived member ({label})", median_ms(reset(shared), 4 * runs))
            )
    for label, (median, samples) in rows:
        spread = ", ".join(f"{s:.0f}" for s in sorted(samples))
        print(f"{label:55} {median:8.1f} ms   ({spread})")


if __name__ == "__main__":
    main()
