"""Hostile HTTP/2 clients against real etcd 3.5.1 and ours, side by side.

Each server is started fresh on 127.0.0.1, loaded with ``--keys`` keys (Txns of 128
puts through grpcio), and then attacked one attack at a time while a probe on its own
connection does a put and a get every 0.2 s. For each attack the table shows the
probe's worst and p99 latency during the attack (failures count as the timeout), the
server's peak RSS above its level before the attack, and what happened to the
attacking connections. Every attack is bounded in connections, bytes and seconds.

    .venv/bin/python -m bench.hostile            # both servers, 100k keys
    .venv/bin/python -m bench.hostile --only ours --keys 1000
"""

from __future__ import annotations

import argparse
import gzip
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import grpc
from hpack import Decoder, Encoder
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    SettingsFrame,
)

from bench import procs
from bench.client import first_write
from etcd_twisted._pb import rpc_pb2, rpc_pb2_grpc

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
RANGE = "/etcdserverpb.KV/Range"
PROBE_TIMEOUT = 2.0


def channel(endpoint: str) -> grpc.Channel:
    """A client channel with grpcio's default connect timeout (``bench.client``'s
    fast-reconnect options allow ~100 ms for the handshake, too little under attack)."""
    return grpc.insecure_channel(endpoint, options=[("grpc.use_local_subchannel_pool", 1)])


def request_headers(path: str = RANGE, **extra: str) -> list[tuple[str, str]]:
    return [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", path),
        (":authority", "127.0.0.1"),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
        *extra.items(),
    ]


def grpc_message(payload: bytes, compressed: bool = False) -> bytes:
    return bytes((int(compressed),)) + len(payload).to_bytes(4, "big") + payload


class RawClient:
    """A hand-driven HTTP/2 client connection, to send what well-behaved clients do not."""

    def __init__(self, port: int, timeout: float = 5.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.encoder = Encoder()
        self.decoder = Decoder()
        self.inbox = b""

    def send(self, data: bytes) -> bool:
        """Send; False if the server has closed the connection."""
        try:
            self.sock.sendall(data)
            return True
        except OSError:
            return False

    def start(self) -> None:
        """The preface and SETTINGS; then, once the server's SETTINGS arrive, their ACK
        (as a real client sends it: the server's limits apply from then on)."""
        self.send(PREFACE + SettingsFrame(0).serialize())
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline and not self.closed_within(0.01):
            settings = False
            while len(self.inbox) >= 9:
                end = 9 + int.from_bytes(self.inbox[:3], "big")
                if len(self.inbox) < end:
                    break
                settings = settings or (self.inbox[3] == 4 and not self.inbox[4] & 1)
                self.inbox = self.inbox[end:]
            if settings:
                self.send(SettingsFrame(0, flags=["ACK"]).serialize())
                return

    def headers(self, sid: int, end_stream: bool = False, **extra: str) -> bytes:
        flags = ["END_HEADERS"] + (["END_STREAM"] if end_stream else [])
        block = self.encoder.encode(request_headers(**extra))
        return HeadersFrame(sid, data=block, flags=flags).serialize()

    def closed_within(self, seconds: float) -> bool:
        """Whether the server closes the connection (EOF or reset) within ``seconds``."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                return False
            except OSError:
                return True
            if not chunk:
                return True
            self.inbox += chunk
        return False

    def read_frames(self, seconds: float) -> list[tuple[str, int, object]]:
        """Frames received within ``seconds`` (or until the connection ends)."""
        self.closed_within(seconds)
        out: list[tuple[str, int, object]] = []
        data, pos = self.inbox, 0
        while len(data) - pos >= 9:
            frame, length = Frame.parse_frame_header(memoryview(data[pos : pos + 9]))
            if len(data) - pos < 9 + length:
                break
            frame.parse_body(memoryview(data[pos + 9 : pos + 9 + length]))
            pos += 9 + length
            if isinstance(frame, HeadersFrame):
                headers = dict(self.decoder.decode(bytes(frame.data)))
                out.append(("HEADERS", frame.stream_id, headers))
            elif isinstance(frame, DataFrame):
                out.append(("DATA", frame.stream_id, len(frame.data)))
            elif isinstance(frame, GoAwayFrame):
                out.append(("GOAWAY", frame.last_stream_id, frame.error_code))
            elif type(frame).__name__ == "RstStreamFrame":
                out.append(("RST_STREAM", frame.stream_id, frame.error_code))  # type: ignore[attr-defined]
        self.inbox = data[pos:]
        return out

    def close(self) -> None:
        self.sock.close()


def answer(frames: list[tuple[str, int, object]], sid: int = 1) -> str:
    """A call's outcome in a few words: grpc-status and message, a reset, or a GOAWAY."""
    parts = []
    for kind, stream, info in frames:
        if kind == "HEADERS" and stream == sid and isinstance(info, dict):
            status = info.get("grpc-status")
            if status is not None:
                message = info.get("grpc-message", "")
                parts.append(f"status {status}" + (f" {message!r}" if message else ""))
            else:
                encoding = info.get("grpc-encoding")
                parts.append("HEADERS" + (f" (grpc-encoding {encoding})" if encoding else ""))
        elif kind == "DATA" and stream == sid:
            parts.append("DATA")
        elif kind == "RST_STREAM" and stream == sid:
            parts.append(f"RST_STREAM {info}")
        elif kind == "GOAWAY":
            parts.append(f"GOAWAY {info}")
    return ", ".join(parts) or "nothing"


@dataclass
class Probe:
    """Put + get every 0.2 s on its own connection; latencies in seconds."""

    endpoint: str
    latencies: list[float] = field(default_factory=list)
    failures: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        with channel(self.endpoint) as c:
            kv = rpc_pb2_grpc.KVStub(c)
            kv.Range(rpc_pb2.RangeRequest(key=b"probe"), timeout=10)
            while not self._stop.is_set():
                t = time.monotonic()
                try:
                    kv.Put(rpc_pb2.PutRequest(key=b"probe", value=b"x"), timeout=PROBE_TIMEOUT)
                    kv.Range(rpc_pb2.RangeRequest(key=b"probe"), timeout=PROBE_TIMEOUT)
                    self.latencies.append(time.monotonic() - t)
                except grpc.RpcError:
                    self.failures += 1
                    self.latencies.append(PROBE_TIMEOUT)
                self._stop.wait(max(0.0, 0.2 - (time.monotonic() - t)))

    def stop(self) -> None:
        self._stop.set()


@dataclass
class Outcome:
    attack: str
    kind: str
    worst_ms: float
    p99_ms: float
    failures: int
    rss_mb: float
    result: str


def measure(server: procs.Server, name: str, attack: Callable[[], str]) -> Outcome:
    """Run ``attack`` with the probe and an RSS sampler going."""
    base = procs.rss_kib(server.pid)
    peak = [base]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            try:
                peak[0] = max(peak[0], procs.rss_kib(server.pid))
            except (OSError, RuntimeError):
                return
            done.wait(0.05)

    probe = Probe(server.endpoint)
    threads = [threading.Thread(target=sample), threading.Thread(target=probe.run)]
    for t in threads:
        t.start()
    time.sleep(0.5)  # the probe's first round
    probe.latencies.clear()
    probe.failures = 0
    try:
        try:
            result = attack()
        except (OSError, grpc.RpcError) as e:
            result = f"attack's own call failed: {str(e).splitlines()[0][:160]}"
        time.sleep(0.4)
    finally:
        probe.stop()
        done.set()
        for t in threads:
            t.join(10)
    lat = sorted(probe.latencies) or [0.0]
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
    return Outcome(
        name,
        server.kind,
        lat[-1] * 1000,
        p99 * 1000,
        probe.failures,
        (peak[0] - base) / 1024,
        result,
    )


# -- the attacks (each returns what happened to its connections)


def many_streams(port: int, n: int = 20000) -> str:
    """N HEADERS without END_STREAM on one connection, then a Range on another."""
    c = RawClient(port)
    c.start()
    wire = b"".join(c.headers(2 * i + 1) for i in range(n))
    sent = c.send(wire)
    t = time.monotonic()
    with channel(f"127.0.0.1:{port}") as ch:
        rpc_pb2_grpc.KVStub(ch).Range(rpc_pb2.RangeRequest(key=b"k"), timeout=30)
    took = time.monotonic() - t
    frames = c.read_frames(2.0)
    refused = sum(1 for f in frames if f[0] == "RST_STREAM" and f[2] == 7)
    closed = c.closed_within(0.1)
    c.close()
    return (
        f"sent={sent} Range on another conn {took * 1000:.0f} ms; "
        f"{refused} refused; closed={closed}"
    )


def big_frames(port: int, conns: int = 40, announced: int = (1 << 24) - 1) -> str:
    """Frame headers announcing 16 MiB DATA frames, then their bodies, on many connections."""
    clients = []
    for _ in range(conns):
        c = RawClient(port)
        c.start()
        c.send(c.headers(1) + announced.to_bytes(3, "big") + b"\x00\x00\x00\x00\x00\x01")
        clients.append(c)
    chunk = b"x" * 65536
    deadline = time.monotonic() + 8
    alive = list(clients)
    for _ in range(announced // len(chunk)):
        if not alive or time.monotonic() > deadline:
            break
        for c in list(alive):
            c.sock.settimeout(0.05)
            try:
                c.sock.send(chunk)
            except TimeoutError:
                pass
            except OSError:
                alive.remove(c)
    closed = sum(1 for c in clients if c.closed_within(0.5))
    for c in clients:
        c.close()
    return f"{closed}/{conns} closed"


def continuation_flood(port: int, conns: int = 8, total: int = 64 << 20) -> str:
    """A header block that never ends: 16 KiB CONTINUATION frames, up to 64 MiB each."""
    clients = []
    for _ in range(conns):
        c = RawClient(port)
        c.start()
        block = c.encoder.encode(request_headers())
        c.send(HeadersFrame(1, data=block, flags=[]).serialize())
        clients.append(c)
    frame = ContinuationFrame(1, data=b"\x00" * 16384).serialize()
    burst = frame * 16
    alive = list(clients)
    deadline = time.monotonic() + 8
    sent = 0
    while alive and sent < total and time.monotonic() < deadline:
        for c in list(alive):
            c.sock.settimeout(0.2)
            try:
                c.sock.sendall(burst)
            except TimeoutError:
                pass
            except OSError:
                alive.remove(c)
        sent += len(burst)
    closed = sum(1 for c in clients if c.closed_within(0.5))
    for c in clients:
        c.close()
    return f"{closed}/{conns} closed (up to {sent >> 20} MiB each)"


def garbage_after_preface(port: int, conns: int = 200) -> str:
    """The preface, then 100 bytes of garbage; how many are closed 3 s later."""
    clients = []
    for i in range(conns):
        c = RawClient(port)
        c.send(PREFACE + bytes((i * 7 + j) % 256 for j in range(100)))
        clients.append(c)
    time.sleep(3)
    closed = sum(1 for c in clients if c.closed_within(0.01))
    for c in clients:
        c.close()
    return f"{closed}/{conns} closed after 3 s"


def silent(port: int, conns: int = 50, wait: float = 12.0) -> str:
    """Connections that send nothing, only the preface, or the preface and SETTINGS."""
    quiet = [RawClient(port) for _ in range(conns)]
    preface = [RawClient(port) for _ in range(conns)]
    settings = [RawClient(port) for _ in range(conns)]
    for c in preface:
        c.send(PREFACE)
    for c in settings:
        c.start()
    time.sleep(wait)
    counts = [
        sum(1 for c in group if c.closed_within(0.01)) for group in (quiet, preface, settings)
    ]
    for c in quiet + preface + settings:
        c.close()
    return (
        f"closed after {wait:.0f} s: silent {counts[0]}/{conns}, preface only "
        f"{counts[1]}/{conns}, preface+SETTINGS {counts[2]}/{conns}"
    )


def client_goaway(port: int) -> str:
    """HEADERS of a Range, GOAWAY(0, last_stream_id=0), then the request's DATA."""
    c = RawClient(port)
    c.start()
    goaway = GoAwayFrame(0, last_stream_id=0, error_code=0).serialize()
    body = grpc_message(rpc_pb2.RangeRequest(key=b"k").SerializeToString())
    c.send(c.headers(1) + goaway)
    time.sleep(0.2)
    c.send(DataFrame(1, data=body, flags=["END_STREAM"]).serialize())
    result = answer(c.read_frames(2.0))
    c.close()
    return result


def unary_with(port: int, body: bytes, **headers: str) -> str:
    c = RawClient(port)
    c.start()
    c.send(c.headers(1, **headers) + DataFrame(1, data=body, flags=["END_STREAM"]).serialize())
    result = answer(c.read_frames(1.5))
    c.close()
    return result


def incomplete_message(port: int) -> str:
    body = grpc_message(rpc_pb2.RangeRequest(key=b"k").SerializeToString())
    return unary_with(port, body[:-1])


def gzip_request(port: int) -> str:
    payload = gzip.compress(rpc_pb2.RangeRequest(key=b"k").SerializeToString())
    return unary_with(port, grpc_message(payload, compressed=True), **{"grpc-encoding": "gzip"})


def zero_window_update(port: int) -> str:
    """WINDOW_UPDATE 0 on an open stream, then a call on another stream."""
    c = RawClient(port)
    c.start()
    body = grpc_message(rpc_pb2.RangeRequest(key=b"k").SerializeToString())
    zero = b"\x00\x00\x04\x08\x00\x00\x00\x00\x01\x00\x00\x00\x00"
    c.send(c.headers(1) + zero)
    c.send(c.headers(3) + DataFrame(3, data=body, flags=["END_STREAM"]).serialize())
    frames = c.read_frames(1.5)
    c.close()
    return f"stream 1: {answer(frames, 1)}; stream 3: {answer(frames, 3)}"


# -- running


def load(endpoint: str, keys: int) -> None:
    """``keys`` keys of 16 bytes with 64-byte values, in Txns of 128 puts, 32 at a time."""
    with channel(endpoint) as c:
        kv = rpc_pb2_grpc.KVStub(c)

        def txn(start: int) -> None:
            ops = [
                rpc_pb2.RequestOp(
                    request_put=rpc_pb2.PutRequest(key=b"key/%012d" % i, value=b"v" * 64)
                )
                for i in range(start, min(keys, start + 128))
            ]
            kv.Txn(rpc_pb2.TxnRequest(success=ops), timeout=60)

        with ThreadPoolExecutor(32) as pool:
            list(pool.map(txn, range(0, keys, 128)))


ATTACKS: dict[str, Callable[[int], str]] = {
    "20k open streams": many_streams,
    "40 x 16 MiB frames": big_frames,
    "CONTINUATION flood": continuation_flood,
    "garbage after preface": garbage_after_preface,
    "silent connections": silent,
    "client GOAWAY, then DATA": client_goaway,
    "incomplete message": incomplete_message,
    "gzip request": gzip_request,
    "WINDOW_UPDATE 0 on a stream": zero_window_update,
}


def run_server(kind: str, base: str, keys: int, attacks: Sequence[str]) -> list[Outcome]:
    (server,) = procs.new_servers(kind, base, "hostile")
    procs.start([server])
    try:
        first_write([server])
        t = time.monotonic()
        load(server.endpoint, keys)
        print(f"{kind}: {keys} keys loaded in {time.monotonic() - t:.1f} s", flush=True)
        out = []
        for name in attacks:
            outcome = measure(server, name, lambda a=ATTACKS[name]: a(server.client_port))
            print(f"  {name}: {outcome.result}", flush=True)
            out.append(outcome)
            if not server.running():
                raise RuntimeError(f"{kind} died during {name}:\n{server.log_tail()}")
        return out
    finally:
        server.stop()


def table(outcomes: Sequence[Outcome]) -> str:
    head = ("attack", "server", "worst ms", "p99 ms", "fails", "+RSS MB", "connections / answer")
    rows = [head] + [
        (
            o.attack,
            o.kind,
            f"{o.worst_ms:.0f}",
            f"{o.p99_ms:.0f}",
            str(o.failures),
            f"{o.rss_mb:.0f}",
            o.result,
        )
        for o in sorted(outcomes, key=lambda o: (list(ATTACKS).index(o.attack), o.kind))
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(head) - 1)]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(r[:-1], widths, strict=True)) + "  " + r[-1]
        for r in rows
    )


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--keys", type=int, default=100_000)
    p.add_argument("--only", choices=procs.KINDS, action="append")
    p.add_argument("--attack", choices=list(ATTACKS), action="append")
    args = p.parse_args(argv)
    procs.install_cleanup()
    base = tempfile.mkdtemp(prefix="etcd-hostile-")
    outcomes: list[Outcome] = []
    try:
        for kind in args.only or procs.KINDS:
            outcomes += run_server(kind, base, args.keys, args.attack or list(ATTACKS))
    finally:
        procs.stop_all()
        shutil.rmtree(base, ignore_errors=True)
    print()
    print(table(outcomes))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
