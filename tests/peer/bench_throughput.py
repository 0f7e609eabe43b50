"""Throughput between two transports over loopback: 256-byte-payload MsgApp messages.

Run: ``.venv/bin/python -m tests.peer.bench_throughput [count] [batch]``. Both members
share this process (and its one reactor thread), so the figure includes encoding,
the kernel round trip and decoding plus delivery to a no-op ``on_message``.
"""

from __future__ import annotations

import sys
import tempfile
import time

from twisted.internet.defer import Deferred
from twisted.internet.task import react

from etcd_twisted._pb import raft_pb2
from tests.peer.fakes import app
from tests.peer.loopback import sleep, start_members, wait_for


async def bench(count: int, batch: int) -> None:
    received = 0

    def on_message(message: raft_pb2.Message) -> None:
        nonlocal received
        received += 1

    with tempfile.TemporaryDirectory() as tmp:
        a, b = await start_members([1, 2], tmp, on_message=on_message)
        await wait_for(lambda: a.transport.is_active(2))
        template = [app(2, 1, i) for i in range(batch)]
        size = len(template[0].SerializeToString()) + 5
        queue = a.transport.peers[2].queue
        start = time.perf_counter()
        sent = 0
        while sent < count:
            if len(queue) + batch <= a.transport.buffer_size:
                a.transport.send(template)
                sent += batch
            await sleep(0)
        await wait_for(lambda: received >= sent, timeout=120)
        elapsed = time.perf_counter() - start
        print(
            f"{sent} messages of {size} bytes on the wire in {elapsed:.2f}s: "
            f"{sent / elapsed:,.0f} msg/s, {sent * size / elapsed / 1e6:.1f} MB/s "
            f"(dropped {a.transport.dropped})"
        )
        await a.stop()
        await b.stop()


def main(reactor: object, count: str = "500000", batch: str = "256") -> Deferred[None]:
    return Deferred.fromCoroutine(bench(int(count), int(batch)))


if __name__ == "__main__":
    react(main, sys.argv[1:])
