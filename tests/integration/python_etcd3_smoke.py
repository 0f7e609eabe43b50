"""Smoke test of python-etcd3 (the ``etcd3`` PyPI package, 0.12.0) against our server.

Not part of the suite: etcd3 0.12.0 ships protobuf modules generated for protobuf 3
and needs its own environment, which takes ~25 s to build from PyPI. Run by hand:

    python3 -m venv /tmp/pe3 && /tmp/pe3/bin/pip install etcd3
    /tmp/pe3/bin/python tests/integration/python_etcd3_smoke.py [--twistd .venv/bin/twistd]
    /tmp/pe3/bin/python tests/integration/python_etcd3_smoke.py --endpoint 127.0.0.1:2379

With protobuf 4 or later etcd3 only imports with the pure-Python protobuf runtime
(``PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python``), which this script sets. Without
``--endpoint`` it starts ``twistd etcd`` on free 127.0.0.1 ports in a temporary
directory and stops it at the end. Prints one line per check; exits 1 if any failed.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import queue
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.request
from collections.abc import Callable

os.environ.setdefault("PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION", "python")

import etcd3  # noqa: E402 - after choosing the protobuf runtime
import etcd3.exceptions  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_TWISTD = os.path.join(HERE, "..", "..", ".venv", "bin", "twistd")


def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def start_server(twistd: str, workdir: str) -> tuple[subprocess.Popen[bytes], int]:
    client, peer = free_ports(2)
    curl, purl = f"http://127.0.0.1:{client}", f"http://127.0.0.1:{peer}"
    argv = [
        twistd, "--nodaemon", "--pidfile=", "etcd", "--name", "smoke",
        "--data-dir", os.path.join(workdir, "smoke.etcd"),
        "--listen-client-urls", curl, "--advertise-client-urls", curl,
        "--listen-peer-urls", purl, "--initial-advertise-peer-urls", purl,
        "--initial-cluster", f"smoke={purl}",
    ]  # fmt: skip
    log = open(os.path.join(workdir, "server.log"), "wb")  # noqa: SIM115 - the process owns it
    process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(curl + "/health", timeout=1) as r:
                if r.status == 200:
                    return process, client
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit(f"server not healthy; see {workdir}/server.log")


def checks(c: etcd3.Etcd3Client) -> list[tuple[str, Callable[[], object]]]:
    def put_get() -> object:
        c.put("/smoke/a", "1")
        value, meta = c.get("/smoke/a")
        assert value == b"1" and meta.version == 1, (value, meta.version)
        c.put("/smoke/a", "2")
        value, meta = c.get("/smoke/a")
        assert value == b"2" and meta.version == 2, (value, meta.version)
        assert c.get("/smoke/missing") == (None, None)
        return value

    def prefix_and_delete() -> object:
        c.put("/smoke/b", "3")
        got = [(m.key, v) for v, m in c.get_prefix("/smoke/")]
        assert got == [(b"/smoke/a", b"2"), (b"/smoke/b", b"3")], got
        assert c.delete("/smoke/b") is True
        assert c.delete("/smoke/b") is False
        assert c.delete_prefix("/smoke/").deleted == 1
        return got

    def transaction() -> object:
        c.put("/smoke/t", "x")
        ok, responses = c.transaction(
            compare=[c.transactions.value("/smoke/t") == "x"],
            success=[c.transactions.put("/smoke/t", "y")],
            failure=[c.transactions.get("/smoke/t")],
        )
        assert ok and c.get("/smoke/t")[0] == b"y", (ok, responses)
        ok, _ = c.transaction(
            compare=[c.transactions.version("/smoke/t") == 99], success=[], failure=[]
        )
        assert not ok
        assert c.replace("/smoke/t", "y", "z") and c.get("/smoke/t")[0] == b"z"
        return ok

    def watch() -> object:
        events, cancel = c.watch_prefix("/smoke/w/")
        got: queue.Queue[object] = queue.Queue()

        def read() -> None:
            for ev in events:
                got.put((type(ev).__name__, ev.key, ev.value))

        threading.Thread(target=read, daemon=True).start()
        time.sleep(0.3)
        c.put("/smoke/w/1", "a")
        c.delete("/smoke/w/1")
        seen = [got.get(timeout=5), got.get(timeout=5)]
        cancel()
        assert seen == [("PutEvent", b"/smoke/w/1", b"a"), ("DeleteEvent", b"/smoke/w/1", b"")]
        return seen

    def watch_callback_and_rev() -> object:
        start = c.put("/smoke/cb", "0").header.revision
        c.put("/smoke/cb", "1")
        seen: queue.Queue[object] = queue.Queue()
        wid = c.add_watch_callback(
            "/smoke/cb", lambda r: [seen.put(e.value) for e in r.events], start_revision=start
        )
        values = [seen.get(timeout=5), seen.get(timeout=5)]
        c.cancel_watch(wid)
        assert values == [b"0", b"1"], values
        return values

    def watch_once_timeout() -> object:
        try:
            c.watch_once("/smoke/never", timeout=0.5)
        except etcd3.exceptions.WatchTimedOut:
            return "timed out"
        raise AssertionError("watch_once returned an event")

    def lease() -> object:
        lease = c.lease(2)
        c.put("/smoke/l", "v", lease=lease)
        assert lease.granted_ttl == 2 and lease.keys == [b"/smoke/l"], (
            lease.granted_ttl,
            lease.keys,
        )
        for _ in range(4):  # 2 s of refreshes
            assert lease.refresh()[0].TTL == 2
            time.sleep(0.5)
        assert c.get("/smoke/l")[0] == b"v", "expired while refreshed"
        deadline = time.monotonic() + 4
        while c.get("/smoke/l")[0] is not None:
            assert time.monotonic() < deadline, "never expired"
            time.sleep(0.1)
        assert lease.remaining_ttl == -1
        other = c.lease(60, lease_id=777)
        assert other.id == 777 and 0 < other.remaining_ttl <= 60
        other.revoke()
        return "expired"

    def lock() -> object:
        with c.lock("smoke", ttl=5) as held:
            assert held.is_acquired()
        return "ok"

    def cluster() -> object:
        members = list(c.members)
        status = c.status()
        assert len(members) == 1 and status.leader.id == members[0].id, (members, status.leader)
        return f"{members[0].name} {status.version}"

    def snapshot() -> object:
        out = io.BytesIO()
        c.snapshot(out)
        data = out.getvalue()
        db, digest = data[:-32], data[-32:]
        assert len(data) % 512 == 32 and hashlib.sha256(db).digest() == digest, len(data)
        assert db[16:20] == bytes.fromhex("edda0ced"), "not a bbolt file"
        return f"{len(db)} bytes + sha256"

    return [
        ("put/get", put_get),
        ("get_prefix/delete", prefix_and_delete),
        ("transaction/replace", transaction),
        ("watch_prefix", watch),
        ("watch callback from a revision", watch_callback_and_rev),
        ("watch_once timeout", watch_once_timeout),
        ("lease grant/refresh/expire/ttl", lease),
        ("lock", lock),
        ("members/status", cluster),
        ("snapshot", snapshot),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--endpoint", help="host:port of a running server (else start one)")
    parser.add_argument("--twistd", default=DEFAULT_TWISTD)
    args = parser.parse_args()
    process = None
    with tempfile.TemporaryDirectory() as workdir:
        if args.endpoint:
            host, port = args.endpoint.rsplit(":", 1)
        else:
            process, client = start_server(args.twistd, workdir)
            host, port = "127.0.0.1", str(client)
        failed = 0
        try:
            c = etcd3.client(host=host, port=int(port), timeout=10)
            for name, check in checks(c):
                try:
                    result = check()
                    print(f"ok    {name}: {result!r}")
                except Exception:  # noqa: BLE001 - report every check
                    failed += 1
                    print(f"FAIL  {name}:\n{traceback.format_exc()}")
        finally:
            if process is not None:
                process.terminate()
                process.wait(10)
        print(f"python-etcd3 {etcd3.__version__}: {len(checks(c)) - failed} ok, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
