"""10,000 watchers on one key through the grpc-proxy: what the members pay, and events/s.

Usage: ``.venv/bin/python bench/proxy_watch.py [--kind ours|etcd] [--watchers 10000]
[--puts 100] [--direct]``. Starts a 3-member cluster (ours or etcd 3.5.1) and
``twistd etcd grpc-proxy`` in front of it, opens the watchers through the proxy
(``--processes`` client processes, each with Watch streams of 100 watchers), then reads
``etcd_debugging_mvcc_watcher_total`` from every member's ``/metrics``: coalesced, the
members hold one watcher. One client then puts ``--puts`` values on the key directly on
a member; the figure is events received by all watchers / seconds from the first put to
the last event. ``--direct`` runs the same watchers against a member without the proxy,
for comparison.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import re
import shutil
import sys
import tempfile
import threading
import time
import urllib.request

import grpc

from bench import procs
from etcd_twisted._pb import rpc_pb2, rpc_pb2_grpc
from etcd_twisted.testing import free_ports

KEY = b"proxy-watch-hot-key"
PER_STREAM = 100


def _client(target: str, streams: int, puts: int, ready: mp.Queue, done: mp.Queue) -> None:
    """One client process: ``streams`` Watch streams of PER_STREAM watchers each."""
    channel = grpc.insecure_channel(target, options=[("grpc.max_receive_message_length", -1)])
    stub = rpc_pb2_grpc.WatchStub(channel)
    created = [0] * streams
    events = [0] * streams
    finish = threading.Event()

    def requests() -> object:
        for _ in range(PER_STREAM):
            yield rpc_pb2.WatchRequest(create_request=rpc_pb2.WatchCreateRequest(key=KEY))
        finish.wait(600)

    def run(i: int) -> None:
        for response in stub.Watch(requests()):
            if response.created:
                created[i] += 1
                if created[i] == PER_STREAM:
                    ready.put(PER_STREAM)
            events[i] += len(response.events)
            if events[i] >= PER_STREAM * puts:
                break
        done.put((events[i], time.monotonic()))

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(streams)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    finish.set()


def _member_watchers(servers: list[procs.Server]) -> int:
    total = 0
    for server in servers:
        with urllib.request.urlopen(server.client_url + "/metrics", timeout=5) as r:
            text = r.read().decode()
        found = re.search(r"^etcd_debugging_mvcc_watcher_total (\S+)$", text, re.M)
        total += int(float(found.group(1))) if found else 0
    return total


def _wait_http(url: str, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(url)


def run_once(target: str, servers: list[procs.Server], args: argparse.Namespace) -> dict:
    """Open the watchers on ``target``, count the members' watchers, then write and time."""
    streams = args.watchers // PER_STREAM
    per_process = [
        streams // args.processes + (i < streams % args.processes) for i in range(args.processes)
    ]
    ready: mp.Queue = mp.Queue()
    done: mp.Queue = mp.Queue()
    clients = [
        mp.Process(target=_client, args=(target, n, args.puts, ready, done), daemon=True)
        for n in per_process
        if n
    ]
    opened = time.monotonic()
    for c in clients:
        c.start()
    for _ in range(streams):
        ready.get(timeout=300)
    open_seconds = time.monotonic() - opened
    time.sleep(0.5)
    member_watchers = _member_watchers(servers)
    kv = rpc_pb2_grpc.KVStub(grpc.insecure_channel(servers[0].endpoint))
    start = time.monotonic()
    for i in range(args.puts):
        kv.Put(rpc_pb2.PutRequest(key=KEY, value=b"%d" % i), timeout=10)
    received, last = 0, start
    for _ in range(streams):
        count, at = done.get(timeout=600)
        received += count
        last = max(last, at)
    for c in clients:
        c.join(10)
    elapsed = last - start
    return {
        "watchers": args.watchers,
        "open_s": open_seconds,
        "member_watchers": member_watchers,
        "events": received,
        "seconds": elapsed,
        "events_per_s": received / elapsed if elapsed else 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kind", choices=procs.KINDS, default="ours")
    parser.add_argument("--watchers", type=int, default=10000)
    parser.add_argument("--puts", type=int, default=100)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument(
        "--proxy", choices=("ours", "etcd"), default="ours", help="whose grpc-proxy to run"
    )
    parser.add_argument("--direct", action="store_true", help="also run without the proxy")
    parser.add_argument("--profile", metavar="PATH", help="run the proxy under cProfile into PATH")
    args = parser.parse_args()
    procs.install_cleanup()
    base = tempfile.mkdtemp(prefix="proxy-watch-")
    servers = procs.new_servers(args.kind, base, "bench", members=3)
    procs.start(servers)
    deadline = time.monotonic() + 60
    for server in servers:
        _wait_http(server.client_url + "/health", deadline)
    (port,) = free_ports(1)
    proxy_addr = f"127.0.0.1:{port}"
    endpoints = ",".join(s.endpoint for s in servers)
    profiler = [sys.executable, "-m", "cProfile", "-o", args.profile] if args.profile else []
    flags = ["grpc-proxy", "start", f"--endpoints={endpoints}", f"--listen-addr={proxy_addr}"]
    if args.proxy == "etcd":
        argv = [procs.binary("etcd"), *flags, f"--data-dir={os.path.join(base, 'proxy')}"]
    else:
        argv = [*profiler, procs.binary("twistd"), "--nodaemon", "--pidfile=", "etcd", *flags]
    proxy = procs.spawn(argv, os.path.join(base, "proxy.log"))
    try:
        _wait_http(f"http://{proxy_addr}/metrics", time.monotonic() + 30)
        rows = [(f"{args.proxy} proxy", run_once(proxy_addr, servers, args))]
        if args.direct:
            rows.append(("direct", run_once(servers[1].endpoint, servers, args)))
        print(f"members: 3 x {args.kind}; {args.watchers} watchers on one key; {args.puts} puts")
        print(
            f"{'path':<11} {'open s':>7} {'member watchers':>16} {'events':>9} {'s':>6} {'events/s':>9}"
        )
        for name, r in rows:
            print(
                f"{name:<11} {r['open_s']:>7.1f} {r['member_watchers']:>16} {r['events']:>9}"
                f" {r['seconds']:>6.2f} {r['events_per_s']:>9.0f}"
            )
    finally:
        procs.stop(proxy)
        for server in servers:
            server.stop()
        procs.stop_all()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
