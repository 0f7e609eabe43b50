"""Events/s delivered to many watch streams on one key while one client writes.

Usage: ``.venv/bin/python bench/watch_streams.py HOST:PORT [--processes 4 --streams 25
--puts 500]`` against a running member (ours or etcd). Each stream is its own Watch
call; the figure is events received by all streams / seconds from the first put to the
last event, so a sequential writer bounds it.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import threading
import time

import grpc

from etcd_twisted._pb import rpc_pb2, rpc_pb2_grpc

KEY = b"watch-streams-hot-key"


def _watchers(target: str, streams: int, events: int, out: mp.Queue) -> None:
    stub = rpc_pb2_grpc.WatchStub(grpc.insecure_channel(target))
    counts = [0] * streams

    def run(i: int) -> None:
        request = rpc_pb2.WatchRequest(create_request=rpc_pb2.WatchCreateRequest(key=KEY))
        for response in stub.Watch(iter([request])):
            counts[i] += len(response.events)
            if counts[i] >= events:
                return

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(streams)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    out.put((sum(counts), time.monotonic()))


def _writer(target: str, puts: int) -> None:
    stub = rpc_pb2_grpc.KVStub(grpc.insecure_channel(target))
    for i in range(puts):
        stub.Put(rpc_pb2.PutRequest(key=KEY, value=b"%d" % i))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target")
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--streams", type=int, default=25, help="streams per process")
    parser.add_argument("--puts", type=int, default=500)
    args = parser.parse_args()
    queue: mp.Queue = mp.Queue()
    procs = [
        mp.Process(target=_watchers, args=(args.target, args.streams, args.puts, queue))
        for _ in range(args.processes)
    ]
    for p in procs:
        p.start()
    time.sleep(2)  # let every stream be created before the first put
    start = time.monotonic()
    writer = mp.Process(target=_writer, args=(args.target, args.puts))
    writer.start()
    writer.join()
    results = [queue.get(timeout=90) for _ in procs]
    total, end = sum(r[0] for r in results), max(r[1] for r in results)
    streams = args.processes * args.streams
    print(
        f"{total} events to {streams} streams in {end - start:.2f} s = {total / (end - start):.0f}/s"
    )
    for p in procs:
        p.join(5)


if __name__ == "__main__":
    main()
