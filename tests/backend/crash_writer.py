"""A backend writer meant to be killed: applies batches and prints the consistent index it committed.

Usage: ``python crash_writer.py PATH SEED``. Batch ``i`` puts ``n`` keys
``b{i:08d}-{k:03d}`` with value ``i:n``, deletes the keys of batch ``i - 10``
and sets the consistent index to ``i``, all in the pending batch; commits run
every few milliseconds (``maybe_commit``) and now and then a ``defragment``.
After each commit it prints the consistent index, which must survive.
"""

from __future__ import annotations

import random
import sys
import time

from etcd_twisted.backend import Backend, buckets

KEEP = 10


def key(batch: int, k: int) -> bytes:
    """Key ``k`` of ``batch``."""
    return b"b%08d-%03d" % (batch, k)


def batch_range(batch: int) -> tuple[bytes, bytes]:
    """``[start, end)`` covering every key of ``batch``."""
    return b"b%08d-" % batch, b"b%08d." % batch


def main() -> None:
    path, seed = sys.argv[1], int(sys.argv[2])
    rnd = random.Random(seed)
    be = Backend(path, batch_interval=0.003, batch_limit=2000)
    tx = be.batch_tx
    i = be.consistent_index()[0] + 1
    print("ready", flush=True)
    while True:
        n = rnd.randint(1, 30)
        for k in range(n):
            tx.put(buckets.KEY, key(i, k), b"%d:%d" % (i, n))
        for old, _ in tx.range(buckets.KEY, *batch_range(i - KEEP)):
            tx.delete(buckets.KEY, old)
        be.set_consistent_index(i, 1)
        committed = be.maybe_commit(time.monotonic())
        if rnd.random() < 0.01:
            be.defragment()
            committed = True
        if committed:
            sys.stdout.write(f"{i}\n")
            sys.stdout.flush()
        i += 1


if __name__ == "__main__":
    main()
