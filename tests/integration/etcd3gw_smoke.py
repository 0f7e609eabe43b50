"""Smoke test of etcd3gw (the JSON-gateway client, PyPI ``etcd3gw``) against real etcd
3.5.1 and our server, side by side.

Not part of the suite: etcd3gw (with requests and futurist) is not a project
dependency. Run by hand:

    python3 -m venv /tmp/gw-venv && /tmp/gw-venv/bin/pip install etcd3gw
    /tmp/gw-venv/bin/python tests/integration/etcd3gw_smoke.py [--etcd .venv/bin/etcd]
        [--twistd .venv/bin/twistd] [--only ours|etcd] [-v]

It starts real etcd and ``twistd etcd`` on free 127.0.0.1 ports in a temporary
directory, runs the same checks through etcd3gw against each, and stops both at the
end. Each check asserts what etcd3gw returns and hands back a normalised result; the
script prints one line per check and server, then every check whose results differ
between the servers, then every HTTP exchange (status, reason, content type, JSON
body, streamed chunks) that differs once ids, ports, timings and lock uuids are
masked. Exits 1 if a check failed or anything differed.
"""

from __future__ import annotations

import argparse
import base64
import importlib.metadata
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import etcd3gw
import etcd3gw.watch
import requests
from etcd3gw import exceptions

HERE = os.path.dirname(os.path.abspath(__file__))
VENV_BIN = os.path.join(HERE, "..", "..", ".venv", "bin")


def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def start_server(kind: str, binary: str, workdir: str) -> tuple[subprocess.Popen[bytes], int]:
    """Start real etcd (``kind`` "etcd") or ours ("ours") on free ports; wait until healthy."""
    client, peer = free_ports(2)
    curl, purl = f"http://127.0.0.1:{client}", f"http://127.0.0.1:{peer}"
    prefix = [binary] if kind == "etcd" else [binary, "--nodaemon", "--pidfile=", "etcd"]
    argv = prefix + [
        "--name", "smoke", "--data-dir", os.path.join(workdir, f"{kind}.etcd"),
        "--listen-client-urls", curl, "--advertise-client-urls", curl,
        "--listen-peer-urls", purl, "--initial-advertise-peer-urls", purl,
        "--initial-cluster", f"smoke={purl}",
    ]  # fmt: skip
    log_path = os.path.join(workdir, f"{kind}.log")
    log = open(log_path, "wb")  # noqa: SIM115 - the process owns it
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
    raise SystemExit(f"{kind} not healthy; see {log_path}")


# -- recording the HTTP exchanges ---------------------------------------------------------

UUID = re.compile(rb"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
#: Keys whose values differ between two clusters by nature (ids, ports, sizes, timing).
MASKED = {
    "cluster_id", "member_id", "raft_term", "ID", "id", "leader", "lease", "dbSize",
    "dbSizeInUse", "raftIndex", "raftAppliedIndex", "peerURLs", "clientURLs", "name",
    "version", "TTL",
}  # fmt: skip


def mask(value: Any, key: str = "") -> Any:
    """A JSON value with the cluster-specific parts replaced by ``"*"``."""
    if isinstance(value, dict):
        return {k: mask(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [mask(v, key) for v in value]
    if key == "version" and isinstance(value, str) and "." in value:
        return "*"  # the server version in /version and status; a key's version stays
    if key in MASKED - {"version"}:
        return "*"
    if key in ("value", "key") and isinstance(value, str):
        try:
            if UUID.match(base64.b64decode(value)):
                return "<uuid>"
        except ValueError:
            pass
    return value


def mask_body(body: bytes) -> Any:
    try:
        return mask(json.loads(body))
    except ValueError:
        return body.decode(errors="replace")


class Recorder:
    """Every HTTP exchange etcd3gw makes: request, status, headers, body or stream chunks."""

    def __init__(self) -> None:
        self.exchanges: list[dict[str, Any]] = []
        self._streams: dict[int, dict[str, Any]] = {}
        self.check = ""
        #: Set while polling: those exchanges' number depends on timing.
        self.quiet = False

    def hook(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        if self.quiet:
            return
        request = response.request
        body = request.body or b""
        entry: dict[str, Any] = {
            "check": self.check,
            "call": f"{request.method} {request.path_url}",
            "request": mask_body(body.encode() if isinstance(body, str) else body),
            "status": f"{response.status_code} {response.reason}",
            "headers": {
                name.lower(): "*" if name.lower() == "content-length" else value
                for name, value in response.headers.items()
                if name.lower() != "date"
            },
        }
        if kwargs.get("stream"):
            entry["chunks"] = []
            self._streams[id(response)] = entry
        else:
            entry["body"] = mask_body(response.content)
        self.exchanges.append(entry)

    def chunks(self, response: requests.Response) -> Iterator[bytes]:
        entry = self._streams.get(id(response))
        for chunk in response.iter_content(chunk_size=None, decode_unicode=False):
            if entry is not None:
                entry["chunks"].append(mask_body(chunk))
            yield chunk


RECORDERS: dict[int, Recorder] = {}
_original_watch = etcd3gw.watch._watch


def _recording_watch(response: requests.Response, callback: Callable[[Any], None]) -> None:
    """etcd3gw's stream reader, with each chunk recorded before it is parsed."""
    recorder = RECORDERS.get(id(response.connection))

    class Recorded:
        def iter_content(self, chunk_size: Any = None, decode_unicode: bool = False) -> Any:
            if recorder is None:
                return response.iter_content(chunk_size=None, decode_unicode=False)
            return recorder.chunks(response)

    _original_watch(Recorded(), callback)  # type: ignore[arg-type]


etcd3gw.watch._watch = _recording_watch


def make_client(port: int, recorder: Recorder) -> etcd3gw.Etcd3Client:
    session = requests.Session()
    session.hooks["response"].append(recorder.hook)
    client = etcd3gw.client(host="127.0.0.1", port=port, timeout=10, session=session)
    for adapter in session.adapters.values():
        RECORDERS[id(adapter)] = recorder
    return client


# -- the checks ---------------------------------------------------------------------------


def kv(meta: dict[str, Any]) -> dict[str, Any]:
    """A key's metadata dict with the lease id masked."""
    return {k: ("*" if k == "lease" else v) for k, v in meta.items()}


def error_of(call: Callable[[], object]) -> tuple[str, str, Any, tuple[Any, ...]]:
    """The exception etcd3gw raises for ``call``: class, detail (JSON masked), args."""
    try:
        result = call()
    except exceptions.Etcd3Exception as e:
        return type(e).__name__, "detail", mask_body((e.detail_text or "").encode()), e.args
    raise AssertionError(f"no error; returned {result!r}")


def collect(events: Iterator[Any], n: int, timeout: float = 5.0) -> list[Any]:
    """``n`` events from a watch iterator (read on a thread), or fail after ``timeout``."""
    got: list[Any] = []
    done = threading.Event()

    def read() -> None:
        for event in events:
            got.append(event)
            if len(got) == n:
                break
        done.set()

    threading.Thread(target=read, daemon=True).start()
    if not done.wait(timeout):
        raise AssertionError(f"{len(got)} of {n} events after {timeout}s: {got}")
    return [{**e, "kv": kv(e["kv"])} for e in got]


def checks(
    c: etcd3gw.Etcd3Client, port: int, recorder: Recorder
) -> list[tuple[str, Callable[[], object]]]:
    base = f"http://127.0.0.1:{port}"

    def version() -> object:
        body = requests.get(base + "/version", timeout=5).json()
        assert c.api_path == "/v3/", c.api_path
        assert set(body) == {"etcdserver", "etcdcluster"} and body["etcdserver"].startswith("3.5")
        return sorted(body), body["etcdcluster"]

    def put_get() -> object:
        assert c.put("/gw/a", "1") is True
        assert c.get("/gw/a") == [b"1"]
        assert c.put(b"/gw/a", b"2") is True
        ((value, meta),) = c.get("/gw/a", metadata=True)
        assert value == b"2" and meta["version"] == "2", (value, meta)
        assert c.get("/gw/missing") == []
        return value, kv(meta)

    def get_options() -> object:
        for k, v in (("/gw/b", "3"), ("/gw/c", "4"), ("/gw/d", "1")):
            c.put(k, v)
        rev = int(c.get("/gw/d", metadata=True)[0][1]["mod_revision"])
        return {
            "prefix": [(v, m["key"]) for v, m in c.get_prefix("/gw/")],
            "prefix desc": [m["key"] for _, m in c.get_prefix("/gw/", sort_order="descend")],
            "by value": [m["key"] for _, m in c.get_prefix("/gw/", "ascend", sort_target="value")],
            "all": [(v, kv(m)) for v, m in c.get_all()],
            "limit": c.get("/gw/", range_end="/gw0", limit=2),
            "keys_only": c.get("/gw/", metadata=True, range_end="/gw0", keys_only=True),
            "count_only": c.get("/gw/", range_end="/gw0", count_only=True),
            "at revision": c.get("/gw/a", revision=rev - 3),
            "serializable": c.get("/gw/a", serializable=True),
            "min_mod": c.get("/gw/", range_end="/gw0", min_mod_revision=rev),
            "max_mod": c.get("/gw/", range_end="/gw0", max_mod_revision=rev - 1),
            "min_create": c.get("/gw/", range_end="/gw0", min_create_revision=rev - 1),
            "max_create": c.get("/gw/", range_end="/gw0", max_create_revision=rev - 2),
        }

    def delete() -> object:
        assert c.delete("/gw/d") is True
        assert c.delete("/gw/d") is False
        c.put("/gw/e", "5")
        assert c.delete("/gw/e", prev_kv=True) is True
        assert c.delete("/gw/b", range_end="/gw/c") is True
        assert c.get("/gw/b") == []
        assert c.delete_prefix("/gw/") is True
        assert c.delete_prefix("/gw/") is False
        return c.get_prefix("/gw/")

    def replace() -> object:
        c.put("/gw/r", "x")
        assert c.replace("/gw/r", "x", "y") is True
        assert c.replace("/gw/r", "x", "z") is False
        assert c.replace("/gw/never", "x", "z") is False
        return c.get("/gw/r")

    def create() -> object:
        assert c.create("/gw/n", "1") is True
        assert c.create("/gw/n", "2") is False
        lease = c.lease(30)
        assert c.create("/gw/nl", "1", lease=lease) is True
        (_, meta), = c.get("/gw/nl", metadata=True)  # fmt: skip
        assert int(meta["lease"]) == lease.id, (meta, lease.id)
        lease.revoke()
        return c.get("/gw/n"), c.get("/gw/nl")

    def transaction() -> object:
        key = base64.b64encode(b"/gw/t").decode()
        c.put("/gw/t", "v")
        result = c.transaction({
            "compare": [{"key": key, "result": "EQUAL", "target": "VERSION", "version": 1}],
            "success": [
                {"request_range": {"key": key}},
                {"request_put": {"key": key, "value": base64.b64encode(b"w").decode(),
                                 "prev_kv": True}},
                {"request_delete_range": {"key": base64.b64encode(b"/gw/none").decode()}},
            ],
            "failure": [],
        })  # fmt: skip
        assert result["succeeded"] is True, result
        failed = c.transaction(
            {
                "compare": [
                    {"key": key, "result": "GREATER", "target": "MOD", "mod_revision": 10**6}
                ],
                "success": [],
                "failure": [{"request_range": {"key": key, "keys_only": True}}],
            }
        )
        assert "succeeded" not in failed, failed
        return mask(result), mask(failed)

    def status() -> object:
        s = c.status()
        assert s["version"].startswith("3.5"), s
        assert s["leader"] == s["header"]["member_id"], s
        return sorted(s), sorted(s["header"])

    def members() -> object:
        ms = c.members()
        assert len(ms) == 1 and ms[0]["name"] == "smoke", ms
        assert ms[0]["clientURLs"] == [base], ms
        return [sorted(m) for m in ms]

    def lease() -> object:
        lease = c.lease(5)
        assert lease.id > 0
        ttl = lease.ttl()
        assert 3 <= ttl <= 5, ttl
        assert c.put("/gw/l", "v", lease=lease)
        assert lease.keys() == [b"/gw/l"], lease.keys()
        assert lease.refresh() == 5
        assert c.get("/gw/l") == [b"v"]
        assert lease.revoke() is True
        assert c.get("/gw/l") == []
        return {
            "ttl after revoke": lease.ttl(),
            "keys after revoke": lease.keys(),
            "refresh after revoke": lease.refresh(),
        }

    def lease_expiry() -> object:
        lease = c.lease(2)
        c.put("/gw/x", "v", lease=lease)
        for _ in range(3):  # 1.5 s of refreshes keeps it
            assert lease.refresh() == 2
            time.sleep(0.5)
        assert c.get("/gw/x") == [b"v"], "expired while refreshed"
        deadline = time.monotonic() + 5
        recorder.quiet = True
        while c.get("/gw/x"):
            assert time.monotonic() < deadline, "never expired"
            time.sleep(0.1)
        recorder.quiet = False
        return lease.ttl(), lease.refresh()

    def lock() -> object:
        first = c.lock("gw-lock", ttl=10)
        assert first.acquire() is True
        assert first.is_acquired() is True
        second = c.lock("gw-lock", ttl=10)
        assert second.acquire() is False
        assert second.is_acquired() is False
        assert first.refresh() == 10
        assert second.release() is False
        assert first.release() is True
        assert first.is_acquired() is False
        with c.lock("gw-lock", ttl=10) as held:
            assert held.is_acquired()
            assert c.get("/locks/gw-lock") == [held.uuid.encode()]
        assert not held.is_acquired()
        try:
            c.lock("gw-unacquired").refresh()
        except exceptions.Etcd3Exception as e:
            return str(e.detail_text)
        raise AssertionError("refresh of an unacquired lock did not fail")

    def watch() -> object:
        events, cancel = c.watch("/gw/w")
        time.sleep(0.3)
        c.put("/gw/w", "a")
        c.put("/gw/wx", "not watched")
        c.delete("/gw/w")
        got = collect(events, 2)
        cancel()
        assert [e.get("type", "PUT") for e in got] == ["PUT", "DELETE"], got
        assert list(events) == []
        return got

    def watch_prefix() -> object:
        events, cancel = c.watch_prefix("/gw/p/", prev_kv=True)
        time.sleep(0.3)
        c.put("/gw/p/1", "a")
        c.put("/gw/p/1", "b")
        c.delete_prefix("/gw/p/")
        got = collect(events, 3)
        cancel()
        assert got[1]["prev_kv"]["value"] == base64.b64encode(b"a").decode(), got
        return got

    def watch_from_revision() -> object:
        start = int(c.get("/gw/r", metadata=True)[0][1]["mod_revision"])
        c.put("/gw/h/1", "x")
        c.put("/gw/h/2", "y")
        events, cancel = c.watch_prefix("/gw/", start_revision=start)
        got = collect(events, 3)
        cancel()
        return got

    def watch_filters() -> object:
        events, cancel = c.watch_prefix("/gw/f/", filters=["NOPUT"])
        time.sleep(0.3)
        c.put("/gw/f/1", "a")
        c.delete("/gw/f/1")
        got = collect(events, 1)
        cancel()
        assert got[0]["type"] == "DELETE", got
        return got

    def watch_once() -> object:
        def later() -> None:
            time.sleep(0.5)
            c.put("/gw/o", "1")

        threading.Thread(target=later, daemon=True).start()
        event = c.watch_once("/gw/o", timeout=5)
        start = int(c.get("/gw/o", metadata=True)[0][1]["mod_revision"])
        c.put("/gw/o", "2")
        historic = c.watch_once("/gw/o", timeout=5, start_revision=start)
        try:
            c.watch_once("/gw/never", timeout=0.5)
        except exceptions.WatchTimedOut:
            timed_out = True
        else:
            timed_out = False
        assert timed_out
        return kv(event["kv"]), kv(historic["kv"])

    def watch_prefix_once() -> object:
        # etcd3gw 2.7 encodes this range_end twice: the range is ["/gw/q/", b64("/gw/q0")).
        events = c.watch_prefix_once("/gw/q/", timeout=5, start_revision=1)
        return kv(events["kv"])

    def watch_compacted() -> object:
        rev = int(c.status()["header"]["revision"])
        c.post(c.get_url("/kv/compaction"), json={"revision": rev, "physical": True})
        events, cancel = c.watch("/gw/a", start_revision=2)
        time.sleep(0.5)  # the created and canceled responses (recorded as chunks)
        cancel()
        return rev > 2

    def errors() -> object:
        rev = int(c.status()["header"]["revision"])
        return {
            "future revision": error_of(lambda: c.get("/gw/a", revision=rev + 100)),
            "compacted": error_of(lambda: c.get("/gw/a", revision=1)),
            "unknown lease": error_of(
                lambda: c.put("/gw/a", "v", lease=etcd3gw.Lease(12345, client=c))
            ),
            "empty key": error_of(lambda: c.put("", "v")),
            "float for int64": error_of(lambda: c.get("/gw/a", limit=1.5)),
            "bad base64": error_of(lambda: c.post(c.get_url("/kv/range"), json={"key": "YQ"})),
            "bad json": error_of(lambda: c.post(c.get_url("/kv/range"), data="{nope", headers={})),
            "unknown path": error_of(lambda: c.post(c.get_url("/kv/nope"), json={})),
            "lease ttl unknown": etcd3gw.Lease(12345, client=c).ttl(),
            "keepalive unknown": etcd3gw.Lease(12345, client=c).refresh(),
            "revoke unknown": error_of(lambda: etcd3gw.Lease(12345, client=c).revoke()),
        }

    return [
        ("version", version),
        ("put/get", put_get),
        ("get options", get_options),
        ("delete/delete_prefix", delete),
        ("replace", replace),
        ("create", create),
        ("transaction", transaction),
        ("status", status),
        ("members", members),
        ("lease grant/ttl/keys/refresh/revoke", lease),
        ("lease refresh then expiry", lease_expiry),
        ("lock", lock),
        ("watch", watch),
        ("watch_prefix prev_kv", watch_prefix),
        ("watch_prefix start_revision", watch_from_revision),
        ("watch filters", watch_filters),
        ("watch_once", watch_once),
        ("watch_prefix_once", watch_prefix_once),
        ("watch compacted", watch_compacted),
        ("errors", errors),
    ]


def run(kind: str, port: int, verbose: bool) -> tuple[dict[str, Any], Recorder, int]:
    recorder = Recorder()
    c = make_client(port, recorder)
    results: dict[str, Any] = {}
    failed = 0
    for name, check in checks(c, port, recorder):
        recorder.check = name
        try:
            results[name] = check()
            print(f"ok    [{kind}] {name}" + (f": {results[name]!r}" if verbose else ""))
        except Exception:  # noqa: BLE001 - report every check
            failed += 1
            results[name] = "FAILED"
            recorder.quiet = False
            print(f"FAIL  [{kind}] {name}:\n{traceback.format_exc()}")
    time.sleep(0.5)  # the last streams' chunks
    return results, recorder, failed


def compare(etcd: tuple[dict[str, Any], Recorder], ours: tuple[dict[str, Any], Recorder]) -> int:
    differences = 0
    for name, expected in etcd[0].items():
        got = ours[0].get(name)
        if got != expected:
            differences += 1
            print(f"DIFF  result of {name}:\n  etcd: {expected!r}\n  ours: {got!r}")
    for name in etcd[0]:
        a = [x for x in etcd[1].exchanges if x["check"] == name]
        b = [y for y in ours[1].exchanges if y["check"] == name]
        for i, (x, y) in enumerate(zip(a, b, strict=False)):
            if x != y:
                differences += 1
                print(f"DIFF  {name}: exchange {i} ({x['call']}):")
                for key in sorted(set(x) | set(y)):
                    if x.get(key) != y.get(key):
                        print(f"  {key}:\n    etcd: {x.get(key)!r}\n    ours: {y.get(key)!r}")
        if len(a) != len(b):
            differences += 1
            print(f"DIFF  {name}: {len(a)} exchanges with etcd, {len(b)} with ours")
    return differences


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--etcd", default=os.path.join(VENV_BIN, "etcd"))
    parser.add_argument("--twistd", default=os.path.join(VENV_BIN, "twistd"))
    parser.add_argument("--only", choices=["etcd", "ours"])
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args()
    kinds = [args.only] if args.only else ["etcd", "ours"]
    runs: dict[str, tuple[dict[str, Any], Recorder]] = {}
    summary = []
    failed_total = 0
    with tempfile.TemporaryDirectory() as workdir:
        for kind in kinds:
            binary = args.etcd if kind == "etcd" else args.twistd
            process, port = start_server(kind, binary, workdir)
            try:
                results, recorder, failed = run(kind, port, args.verbose)
            finally:
                process.terminate()
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            runs[kind] = (results, recorder)
            failed_total += failed
            summary.append(f"{kind}: {len(results) - failed} of {len(results)} ok")
    differences = compare(runs["etcd"], runs["ours"]) if len(runs) == 2 else 0
    version = importlib.metadata.version("etcd3gw")
    print(f"etcd3gw {version}: " + "; ".join(summary) + f"; {differences} differences")
    return 1 if failed_total or differences else 0


if __name__ == "__main__":
    sys.exit(main())
