"""A WAL writer meant to be killed: appends batches, printing each batch id once it is durable.

Usage: ``python crash_writer.py DIR MODE SEED`` with MODE ``direct`` (``WAL.save`` in a
loop) or ``threaded`` (``WALWriter`` with eight batches in flight). Entry data is
``batch:k:n`` padded to 256 bytes: entry ``k`` of the ``n`` in batch ``batch``.
Reopening an existing WAL continues with the next batch id.
"""

from __future__ import annotations

import random
import sys

from etcd_twisted._pb import raft_pb2
from etcd_twisted.wal import WAL, exist

SEGMENT_BYTES = 256 * 1024
ENTRY_BYTES = 256


def payload(batch: int, k: int, n: int) -> bytes:
    """The data of entry ``k`` of ``n`` in ``batch``."""
    return f"{batch}:{k}:{n}:".encode().ljust(ENTRY_BYTES, b"x")


def parse(data: bytes) -> tuple[int, int, int]:
    """``(batch, k, n)`` from entry data."""
    batch, k, n, _ = data.split(b":", 3)
    return int(batch), int(k), int(n)


class Batches:
    """Makes the next batch of entries."""

    def __init__(self, last_index: int, next_batch: int, rnd: random.Random) -> None:
        self.last = last_index
        self.batch = next_batch
        self.rnd = rnd

    def next(self) -> tuple[int, raft_pb2.HardState, list[raft_pb2.Entry]]:
        n = self.rnd.randint(1, 20)
        ents = [
            raft_pb2.Entry(term=1, index=self.last + k + 1, data=payload(self.batch, k, n))
            for k in range(n)
        ]
        state = raft_pb2.HardState(term=1, vote=1, commit=self.last)
        self.last += n
        self.batch += 1
        return self.batch - 1, state, ents


def report(batch: int) -> None:
    sys.stdout.write(f"{batch}\n")
    sys.stdout.flush()


def run_threaded(wal: WAL, batches: Batches) -> None:
    from twisted.internet import reactor

    from etcd_twisted.server.wal_writer import WALWriter

    writer = WALWriter(wal, reactor)
    writer.startService()

    def submit() -> None:
        batch, state, ents = batches.next()
        d = writer.save(state, ents)
        d.addCallback(lambda _: (report(batch), submit()))
        d.addErrback(lambda f: (f.printTraceback(), reactor.stop()))

    for _ in range(8):
        reactor.callWhenRunning(submit)
    reactor.run()


def main() -> None:
    path, mode, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if exist(path):
        wal = WAL.open(path, segment_bytes=SEGMENT_BYTES)
        _, _, ents = wal.read_all()
    else:
        wal = WAL.create(path, b"crash", segment_bytes=SEGMENT_BYTES)
        ents = []
    last = ents[-1].index if ents else 0
    next_batch = parse(ents[-1].data)[0] + 1 if ents else 1
    batches = Batches(last, next_batch, random.Random(seed))
    print("ready", flush=True)
    if mode == "threaded":
        run_threaded(wal, batches)
        return
    while True:
        batch, state, ents = batches.next()
        wal.save(state, ents)
        report(batch)


if __name__ == "__main__":
    main()
