"""Hostile requests on the client port, against real etcd 3.5.1 and ours side by side.

Each server is a single member holding 100k keys. While an attack runs, a probe does a
put and a get (1 s timeouts) every 0.2 s on its own connection, and the server's RSS is
sampled every 0.1 s. The table shows, per attack and server: the answer the attacker
got, how long it took, the other client's worst and p99 latency (and failed probes)
during the attack, and the peak RSS above the level before it.

Attacks: a 100 MB gateway POST (Content-Length and chunked), JSON nested 10000 and 10001
deep, a 5000-digit integer, a 1 MiB + 5 KiB request head, an LF-only request, 200
mangled HTTP/1 requests, a Txn of 100k ops, three concurrent full ranges and a Txn
nested 101 deep (last: before this work it stopped our member for good).

    .venv/bin/python -m bench.hostile_gateway [--keys 100000] [--only etcd|ours]
"""

from __future__ import annotations

import argparse
import multiprocessing
import random
import socket
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc

from bench.client import channel, first_write
from bench.procs import KINDS, Server, install_cleanup, new_servers, rss_kib, start, stop_all
from etcd_twisted._pb import rpc_pb2

PROBE_INTERVAL = 0.2
PROBE_TIMEOUT = 1.0
ATTACK_TIMEOUT = 60.0
BIG_BODY = 100 << 20


# --- measuring -------------------------------------------------------------------------


def _probe_loop(endpoint: str, stop: Any, out: Any) -> None:
    """Put + get every 0.2 s on its own channel until ``stop`` is set; sends
    ``(start, seconds or inf)`` pairs to ``out`` at the end."""
    ch = channel(endpoint)
    put = ch.unary_unary("/etcdserverpb.KV/Put", rpc_pb2.PutRequest.SerializeToString, lambda b: b)
    get = ch.unary_unary(
        "/etcdserverpb.KV/Range", rpc_pb2.RangeRequest.SerializeToString, lambda b: b
    )
    samples = []
    while not stop.is_set():
        t0 = time.monotonic()
        try:
            put(rpc_pb2.PutRequest(key=b"probe", value=b"x"), timeout=PROBE_TIMEOUT)
            get(rpc_pb2.RangeRequest(key=b"probe"), timeout=PROBE_TIMEOUT)
            samples.append((t0, time.monotonic() - t0))
        except grpc.RpcError:
            samples.append((t0, float("inf")))
        stop.wait(max(0.0, PROBE_INTERVAL - (time.monotonic() - t0)))
    out.put(samples)


class Probe:
    """The other client, in its own process (so the attacker's CPU use in this one
    cannot delay it); CLOCK_MONOTONIC is shared, so its times line up with ours."""

    def __init__(self, endpoint: str) -> None:
        context = multiprocessing.get_context("spawn")
        self._stop = context.Event()
        self._out = context.Queue()
        self._process = context.Process(
            target=_probe_loop, args=(endpoint, self._stop, self._out), daemon=True
        )
        self.samples: list[tuple[float, float]] = []

    def start(self) -> None:
        self._process.start()

    def stop(self) -> None:
        self._stop.set()
        self.samples = self._out.get(timeout=30)
        self._process.join(10)

    def between(self, start: float, end: float) -> list[float]:
        return [s for t, s in self.samples if start <= t <= end]


@dataclass
class RssSampler:
    pid: int
    samples: list[tuple[float, int]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self._stop.is_set():
            try:
                self.samples.append((time.monotonic(), rss_kib(self.pid)))
            except (OSError, RuntimeError):
                return
            self._stop.wait(0.1)

    def stop(self) -> None:
        self._stop.set()

    def peak_above(self, start: float, end: float) -> float:
        """Peak RSS in [start, end] minus the last sample before start, in MB."""
        before = [k for t, k in self.samples if t < start] or [self.samples[0][1]]
        during = [k for t, k in self.samples if start <= t <= end] or [before[-1]]
        return (max(during) - before[-1]) / 1024


# --- attacks (each returns a short description of the answer) --------------------------


def _recv_head(sock: socket.socket, timeout: float) -> str:
    """The status line the server answered, or how the connection ended."""
    sock.settimeout(timeout)
    data = b""
    try:
        while b"\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                return "closed" if not data else data.decode("latin-1")[:40]
            data += chunk
            if data.startswith(b"HTTP/1.1 100 "):
                data = data.partition(b"\r\n\r\n")[2]
    except TimeoutError:
        return "no answer"
    except OSError as e:
        return f"reset ({e.errno})"
    return data.split(b"\r\n", 1)[0].decode("latin-1").replace("HTTP/1.1 ", "")


def _http(port: int, request: bytes, timeout: float = 10.0) -> str:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        try:
            sock.sendall(request)
        except OSError as e:
            return f"send failed ({e.errno})"
        return _recv_head(sock, timeout)


def _post(path: str, body: bytes) -> bytes:
    return (
        b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (path.encode(), len(body))
        + body
    )


def big_post(port: int, chunked: bool) -> str:
    """100 MB of valid JSON (a put with a huge value), streamed while reading the answer."""
    n = (BIG_BODY - 40) // 4 * 4
    head = b'{"key":"YQ==","value":"'
    framing = (
        b"Transfer-Encoding: chunked" if chunked else b"Content-Length: %d" % (len(head) + n + 2)
    )
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(b"POST /v3/kv/put HTTP/1.1\r\nHost: x\r\n" + framing + b"\r\n\r\n")
    answer: list[str] = []

    def read() -> None:
        answer.append(_recv_head(sock, ATTACK_TIMEOUT))

    reader = threading.Thread(target=read)
    reader.start()
    block = b"A" * (1 << 20)

    def pieces() -> Iterator[bytes]:
        yield head
        for _ in range(n // len(block)):
            yield block
        yield b"A" * (n % len(block)) + b'"}'

    try:
        for piece in pieces():
            if answer:
                break
            sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
        if chunked and not answer:
            sock.sendall(b"0\r\n\r\n")
    except OSError:
        pass
    reader.join(ATTACK_TIMEOUT)
    sock.close()
    return answer[0] if answer else "no answer"


def deep_json(port: int, levels: int) -> str:
    body = b'{"key":"YQ==","x":' + b"[" * (levels - 1) + b"]" * (levels - 1) + b"}"
    return _http(port, _post("/v3/kv/range", body))


def huge_int(port: int) -> str:
    return _http(port, _post("/v3/kv/range", b'{"key":"YQ==","limit":1' + b"0" * 5000 + b"}"))


def big_head(port: int) -> str:
    pad = b"a" * ((1 << 20) + 5000)
    return _http(port, b"GET /version HTTP/1.1\r\nHost: x\r\nX-Pad: " + pad + b"\r\n\r\n")


def lf_only(port: int) -> str:
    return _http(port, b"GET /version HTTP/1.1\nHost: x\n\n", timeout=3.0)


def mangled_requests(port: int, count: int = 200, seed: int = 14) -> str:
    """``count`` HTTP/1 requests built from hostile pieces; tallies the answers."""
    rng = random.Random(seed)
    tally: dict[str, int] = {}
    for _ in range(count):
        eol = rng.choice([b"\r\n", b"\n"])
        body = rng.choice([b'{"key":"YQ=="}', b"{" * 300, b'{"limit":1' + b"0" * 400 + b"}",
                           b'{"key":', bytes(rng.randrange(256) for _ in range(40)), b""])  # fmt: skip
        length = rng.choice(
            [b"%d" % len(body), b"-1", b"x", b"99999999999", b"%d" % (len(body) + 9)]
        )
        head = [
            rng.choice([b"POST", b"GET", b"BREW", b"post"]) + b" "
            + rng.choice([b"/v3/kv/range", b"/v3/kv/txn", b"/version", b"/%zz", b"*"]) + b" "
            + rng.choice([b"HTTP/1.1", b"HTTP/1.0", b"HTTP/7"]),
            b"Host: x",
            rng.choice([b"Content-Length: " + length, b"Transfer-Encoding: chunked", b"X: y"]),
            rng.choice([b"", b"Expect: 100-continue", b"\x00bad", b"Connection: close"]),
        ]  # fmt: skip
        answer = _http(port, eol.join(h for h in head if h) + eol + eol + body, timeout=1.0)
        key = answer[:3] if answer[:3].isdigit() else answer
        tally[key] = tally.get(key, 0) + 1
    return " ".join(f"{k}:{v}" for k, v in sorted(tally.items()))


def _txn_call(endpoint: str, data: bytes) -> str:
    ch = channel(endpoint)
    txn = ch.unary_unary("/etcdserverpb.KV/Txn", lambda b: b, lambda b: b)
    try:
        txn(data, timeout=ATTACK_TIMEOUT)
        return "OK"
    except grpc.RpcError as e:
        return f"{e.code().name}: {e.details()[:40]}"
    finally:
        ch.close()


def many_ops_request() -> bytes:
    """A Txn of 100k puts, built before the clock starts."""
    ops = [
        rpc_pb2.RequestOp(request_put={"key": b"k%d" % i, "value": b"v"}) for i in range(100_000)
    ]
    return rpc_pb2.TxnRequest(success=ops).SerializeToString()


def nested_txn_request(levels: int = 101) -> bytes:
    txn = rpc_pb2.TxnRequest()
    level = txn
    for _ in range(levels - 1):
        level = level.success.add().request_txn
    level.success.add().request_put.key = b"nested"
    return txn.SerializeToString()


def full_ranges(endpoint: str, clients: int = 3) -> str:
    results: list[str] = []

    def one() -> None:
        ch = channel(endpoint)
        rng = ch.unary_unary("/etcdserverpb.KV/Range", rpc_pb2.RangeRequest.SerializeToString,
                             lambda b: b)  # fmt: skip
        try:
            r = rng(rpc_pb2.RangeRequest(key=b"\0", range_end=b"\0"), timeout=ATTACK_TIMEOUT)
            results.append(f"{len(r) / 1e6:.1f}MB")
        except grpc.RpcError as e:
            results.append(e.code().name)
        ch.close()

    threads = [threading.Thread(target=one) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return "/".join(results)


MANY_OPS = b""
NESTED_TXN = b""


def attacks(server: Server) -> list[tuple[str, Callable[[], str]]]:
    port, endpoint = server.client_port, server.endpoint
    return [
        ("100 MB POST (Content-Length)", lambda: big_post(port, chunked=False)),
        ("100 MB POST (chunked)", lambda: big_post(port, chunked=True)),
        ("JSON nested 10000", lambda: deep_json(port, 10_000)),
        ("JSON nested 10001", lambda: deep_json(port, 10_001)),
        ("5000-digit integer", lambda: huge_int(port)),
        ("1 MiB + 5 KiB head", lambda: big_head(port)),
        ("LF-only request", lambda: lf_only(port)),
        ("200 mangled HTTP/1", lambda: mangled_requests(port)),
        ("Txn of 100k ops", lambda: _txn_call(endpoint, MANY_OPS)),
        ("3 full ranges", lambda: full_ranges(endpoint)),
        ("Txn nested 101", lambda: _txn_call(endpoint, NESTED_TXN)),
    ]


# --- running ---------------------------------------------------------------------------


def load(endpoint: str, keys: int) -> None:
    """``keys`` keys of 100-byte values, 128 per Txn, 32 Txns in flight."""
    ch = channel(endpoint)
    txn = ch.unary_unary("/etcdserverpb.KV/Txn", rpc_pb2.TxnRequest.SerializeToString, lambda b: b)
    pending = []
    for base in range(0, keys, 128):
        ops = [rpc_pb2.RequestOp(request_put={"key": b"key%08d" % i, "value": b"v" * 100})
               for i in range(base, min(keys, base + 128))]  # fmt: skip
        pending.append(txn.future(rpc_pb2.TxnRequest(success=ops), timeout=120))
        if len(pending) >= 32:
            for f in pending:
                f.result()
            pending = []
    for f in pending:
        f.result()
    ch.close()


@dataclass
class Row:
    attack: str
    kind: str
    answer: str
    seconds: float
    worst: float
    p99: float
    failed: int
    probes: int
    rss_mb: float


def run_server(server: Server, keys: int, skip: list[str]) -> list[Row]:
    first_write([server])
    load(server.endpoint, keys)
    probe, rss = Probe(server.endpoint), RssSampler(server.pid)
    probe.start()
    sampler = threading.Thread(target=rss.run)
    sampler.start()
    time.sleep(3.0)
    answers: list[tuple[str, str, float, float, float]] = []
    try:
        for name, attack in attacks(server):
            if any(word in name for word in skip):
                continue
            start_at = time.monotonic()
            answer = attack()
            seconds = time.monotonic() - start_at
            time.sleep(1.0)  # let the probe see the aftermath
            answers.append((name, answer, seconds, start_at, time.monotonic()))
            print(f"{server.kind}: {name}: {answer} in {seconds:.2f} s", flush=True)
            if not server.running():
                print(f"{server.kind} died:\n{server.log_tail()}")
                break
    finally:
        probe.stop()
        rss.stop()
        sampler.join()
    rows = []
    for name, answer, seconds, start_at, end_at in answers:
        latencies = sorted(probe.between(start_at, end_at)) or [0.0]
        p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
        failed = sum(1 for s in latencies if s == float("inf"))
        rows.append(Row(name, server.kind, answer, seconds, latencies[-1], p99, failed,
                        len(latencies), rss.peak_above(start_at, end_at)))  # fmt: skip
    return rows


def _ms(seconds: float) -> str:
    return "fail" if seconds == float("inf") else f"{seconds * 1000:.0f}"


def _format(row: Row) -> str:
    return (f"| {row.attack} | {row.kind} | {row.answer} | {row.seconds:.2f} | {_ms(row.worst)} "
            f"| {_ms(row.p99)} | {row.failed}/{row.probes} | {row.rss_mb:+.0f} |")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--only", choices=KINDS)
    parser.add_argument(
        "--skip", action="append", default=[], help="skip attacks whose name contains this"
    )
    args = parser.parse_args()
    install_cleanup()
    global MANY_OPS, NESTED_TXN
    MANY_OPS, NESTED_TXN = many_ops_request(), nested_txn_request()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="hostile-gateway-") as base:
        for kind in [args.only] if args.only else KINDS:
            (server,) = new_servers(kind, base, "hostile")
            start([server])
            try:
                rows += run_server(server, args.keys, args.skip)
            finally:
                stop_all()
    print()
    print(
        "| attack | server | answer | s | other clients' worst ms | p99 ms | failed probes | peak RSS +MB |"
    )
    print("|---|---|---|---|---|---|---|---|")
    by_attack: dict[str, list[Row]] = {}
    for row in rows:
        by_attack.setdefault(row.attack, []).append(row)
    for group in by_attack.values():
        for row in group:
            print(_format(row))
    ours = [r.p99 for r in rows if r.kind == "ours" and r.p99 != float("inf")]
    if ours:
        print(f"\nours: median probe p99 across attacks {statistics.median(ours) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
