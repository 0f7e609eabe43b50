"""WAL append benchmarks: raw throughput by batch size, and group commit under concurrent load.

Usage: ``.venv/bin/python bench/wal_append.py [--entries N] [--clients C] [--dir DIR]``

1. ``WAL.save`` in a loop with 256-byte entries, for several batch sizes:
   entries/s, payload MB/s and fdatasyncs.
2. ``WALWriter`` on the reactor with C clients, each saving one entry and
   waiting until it is durable before the next: entries/s and fdatasyncs per
   1,000 entries (1,000 would mean no grouping at all).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time

from twisted.internet import defer, reactor, task

from etcd_twisted._pb import raft_pb2
from etcd_twisted.server.wal_writer import WALWriter
from etcd_twisted.wal import WAL

ENTRY_BYTES = 256


def make_entries(first: int, count: int) -> list[raft_pb2.Entry]:
    data = os.urandom(ENTRY_BYTES)
    return [raft_pb2.Entry(term=1, index=i, data=data) for i in range(first, first + count)]


def raw_append(base: str, total: int, batch: int) -> None:
    path = os.path.join(base, f"raw-{batch}")
    syncs: list[float] = []
    wal = WAL.create(path, b"bench", on_sync=syncs.append)
    batches = [make_entries(i, batch) for i in range(1, total + 1, batch)]
    syncs.clear()
    start = time.perf_counter()
    for ents in batches:
        wal.save(raft_pb2.HardState(term=1, vote=1, commit=ents[0].index - 1), ents)
    elapsed = time.perf_counter() - start
    wal.close()
    n = len(batches) * batch
    print(
        f"  batch {batch:5d}: {n / elapsed:10.0f} entries/s  {n * ENTRY_BYTES / elapsed / 1e6:7.1f} MB/s"
        f"  {len(syncs)} fdatasyncs (mean {1e3 * sum(syncs) / max(1, len(syncs)):.2f} ms)"
    )
    shutil.rmtree(path)


@defer.inlineCallbacks
def group_commit(base: str, total: int, clients: int):
    path = os.path.join(base, "group")
    syncs: list[float] = []
    wal = WAL.create(path, b"bench", on_sync=syncs.append)
    writer = WALWriter(wal, reactor)
    writer.startService()
    syncs.clear()
    next_index = [1]
    data = os.urandom(ENTRY_BYTES)

    @defer.inlineCallbacks
    def client():
        while next_index[0] <= total:
            i = next_index[0]
            next_index[0] += 1
            entry = raft_pb2.Entry(term=1, index=i, data=data)
            yield writer.save(raft_pb2.HardState(term=1, vote=1, commit=i - 1), [entry])

    start = time.perf_counter()
    yield defer.gatherResults([client() for _ in range(clients)])
    elapsed = time.perf_counter() - start
    yield writer.stopService()
    wal.close()
    n = next_index[0] - 1
    print(
        f"  {clients} clients: {n / elapsed:10.0f} entries/s,"
        f" {1000 * len(syncs) / n:.1f} fdatasyncs per 1,000 entries"
        f" ({writer.writes} writes for {n} saves)"
    )
    shutil.rmtree(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--dir", default=None, help="where to write (default: a temp dir)")
    args = parser.parse_args()
    base = tempfile.mkdtemp(prefix="wal-bench-", dir=args.dir)
    try:
        print(f"WAL.save, {ENTRY_BYTES}-byte entries, {args.entries} entries")
        for batch in (1, 10, 100, 1000):
            raw_append(base, min(args.entries, 20_000) if batch == 1 else args.entries, batch)
        print(f"WALWriter group commit, one entry per save, {args.entries // 5} entries")

        @defer.inlineCallbacks
        def all_loads(_reactor):
            for clients in (1, 10, args.clients):
                yield group_commit(base, args.entries // 5, clients)

        task.react(all_loads)
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
