"""A TCP proxy in front of one member's peer port, with faults per direction.

Every other member dials the proxy (it is the member's advertised peer URL) and
the proxy dials the member.  Each connection has two directions: ``"in"`` (the
dialer's bytes, towards the member) and ``"out"`` (the member's answers).  A
`Rule` per direction, optionally only for connections from one member (the
proxy reads ``X-Server-From`` in the peer handshake to tell who dialed), says
what happens to each chunk of bytes:

* pass: forwarded as is;
* blackhole: discarded (the connection stays open, like a partition: the peer's
  pings go unanswered and it redials, into the same hole).  A connection that
  lost bytes is reset when its blackhole is lifted, since a byte stream with a
  hole in it cannot be resumed;
* delay: forwarded after ``delay ± jitter`` seconds, in order;
* drop a share: with probability ``drop`` a chunk is lost, and as a stream with a
  hole is useless the connection is reset (what a link that loses packets until
  TCP gives up looks like to raft).

Buffers are bounded: a direction whose delayed bytes exceed ``max_buffer``, or
whose destination's socket buffer is full, stops reading its source (TCP back
pressure) until it drains.
"""

from __future__ import annotations

import random
import re
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any

from twisted.internet.defer import Deferred, gatherResults, succeed
from twisted.internet.interfaces import IDelayedCall, IListeningPort
from twisted.internet.protocol import ClientFactory, Factory, Protocol
from twisted.python.failure import Failure

IN, OUT = "in", "out"
DIRECTIONS = (IN, OUT)
#: The longest peer handshake head the proxy reads to find the dialer.
MAX_HEAD = 8192
_FROM = re.compile(rb"\r\nX-Server-From:\s*([0-9a-fA-F]+)\s*\r\n", re.IGNORECASE)


@dataclass(frozen=True)
class Rule:
    """What happens to the bytes of one direction."""

    blackhole: bool = False
    delay: float = 0.0
    jitter: float = 0.0
    drop: float = 0.0

    @property
    def passes(self) -> bool:
        """Whether bytes go through untouched."""
        return not self.blackhole and not self.delay and not self.jitter and not self.drop


PASS = Rule()


class _Pipe:
    """One direction of one connection; the push producer its destination sees."""

    def __init__(self, conn: _Connection, direction: str) -> None:
        self.conn = conn
        self.direction = direction
        self.src: Protocol | None = None
        self.dst: Protocol | None = None
        self.queue: deque[tuple[float, bytes]] = deque()
        self.queued = 0
        self.high_water = 0
        self.last_due = 0.0
        self.timer: IDelayedCall | None = None
        self.dest_paused = False
        self.reading_paused = False
        self.close_after_flush = False

    # IPushProducer, registered with the destination's transport
    def pauseProducing(self) -> None:
        self.dest_paused = True
        self._update()

    def resumeProducing(self) -> None:
        self.dest_paused = False
        self._update()

    def stopProducing(self) -> None:
        self.cancel()

    def _update(self) -> None:
        want = self.dest_paused or self.queued > self.conn.proxy.max_buffer
        if self.src is None or self.src.transport is None or want == self.reading_paused:
            return
        self.reading_paused = want
        if want:
            self.src.transport.pauseProducing()
        else:
            self.src.transport.resumeProducing()

    def send(self, data: bytes) -> None:
        proxy = self.conn.proxy
        rule = proxy.rule(self.direction, self.conn.source)
        if rule.blackhole:
            proxy.stats["blackholed_bytes"] += len(data)
            self.conn.tainted = True
            return
        if rule.drop and proxy.rng.random() < rule.drop:
            proxy.stats["dropped_chunks"] += 1
            self.conn.abort()
            return
        if not rule.delay and not rule.jitter and not self.queue:
            self._write(data)
            return
        now = proxy.reactor.seconds()
        due = now + max(0.0, rule.delay + proxy.rng.uniform(-rule.jitter, rule.jitter))
        due = max(due, self.last_due)
        self.last_due = due
        self.queue.append((due, data))
        self.queued += len(data)
        self.high_water = max(self.high_water, self.queued)
        proxy.stats["delayed_chunks"] += 1
        self._update()
        self._schedule()

    def _write(self, data: bytes) -> None:
        if self.dst is not None and self.dst.transport is not None:
            self.conn.proxy.stats[f"{self.direction}_bytes"] += len(data)
            self.dst.transport.write(data)

    def _schedule(self) -> None:
        if self.timer is not None or not self.queue:
            return
        delay = max(0.0, self.queue[0][0] - self.conn.proxy.reactor.seconds())
        self.timer = self.conn.proxy.reactor.callLater(delay, self._flush)

    def _flush(self) -> None:
        self.timer = None
        now = self.conn.proxy.reactor.seconds()
        while self.queue and self.queue[0][0] <= now:
            _, data = self.queue.popleft()
            self.queued -= len(data)
            self._write(data)
        self._update()
        if self.queue:
            self._schedule()
        elif self.close_after_flush and self.dst is not None and self.dst.transport is not None:
            self.dst.transport.loseConnection()

    def source_closed(self) -> None:
        """The source side closed: close the destination once queued bytes are out."""
        if self.queue:
            self.close_after_flush = True
        elif self.dst is not None and self.dst.transport is not None:
            self.dst.transport.loseConnection()

    def cancel(self) -> None:
        if self.timer is not None and self.timer.active():
            self.timer.cancel()
        self.timer = None
        self.queue.clear()
        self.queued = 0


class _Connection:
    """A dialer's connection and the proxy's connection to the member."""

    def __init__(self, proxy: PeerProxy) -> None:
        self.proxy = proxy
        self.source: int | None = None
        self.identified = False
        self.head = b""
        self.tainted = False
        self.inbound: _Inbound | None = None
        self.outbound: _Outbound | None = None
        self.pending = b""
        self.pipes = {IN: _Pipe(self, IN), OUT: _Pipe(self, OUT)}
        self.closed = False
        self.connector: Any = None
        self.done: Deferred[None] = Deferred()

    def inbound_data(self, data: bytes) -> None:
        if not self.identified:
            self.head += data
            match = _FROM.search(self.head)
            if match is None and b"\r\n\r\n" not in self.head and len(self.head) < MAX_HEAD:
                return
            self.identified = True
            self.source = int(match.group(1), 16) if match else None
            data, self.head = self.head, b""
        if self.outbound is None:
            self.pending += data
        else:
            self.pipes[IN].send(data)

    def upstream_ready(self, outbound: _Outbound) -> None:
        assert self.inbound is not None
        self.outbound = outbound
        pin, pout = self.pipes[IN], self.pipes[OUT]
        pin.src, pin.dst = self.inbound, outbound
        pout.src, pout.dst = outbound, self.inbound
        outbound.transport.registerProducer(pin, True)
        self.inbound.transport.registerProducer(pout, True)
        self.inbound.transport.resumeProducing()
        if self.pending:
            data, self.pending = self.pending, b""
            pin.send(data)

    def abort(self) -> None:
        """Reset both sides now."""
        self.proxy.stats["resets"] += 1
        if self.outbound is None and self.connector is not None:
            if self.connector.state == "connecting":
                self.connector.stopConnecting()
        for side in (self.inbound, self.outbound):
            if side is not None and side.transport is not None:
                side.transport.abortConnection()

    def lost(self, side: Protocol) -> None:
        if side is self.inbound:
            self.pipes[IN].source_closed()
            other = self.outbound
        else:
            self.pipes[OUT].source_closed()
            other = self.inbound
        gone = other is None or not other.alive
        if gone and not self.closed:
            self.closed = True
            for pipe in self.pipes.values():
                pipe.cancel()
            self.proxy.connections.discard(self)
            self.done.callback(None)


class _Side(Protocol):
    alive = False

    def __init__(self, conn: _Connection) -> None:
        self.conn = conn

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self.alive = False
        self.conn.lost(self)


class _Inbound(_Side):
    def connectionMade(self) -> None:
        self.alive = True
        self.conn.inbound = self
        self.transport.pauseProducing()
        proxy = self.conn.proxy
        factory = _UpstreamFactory(self.conn)
        self.conn.connector = proxy.reactor.connectTCP(
            "127.0.0.1", proxy.target_port, factory, timeout=5
        )

    def dataReceived(self, data: bytes) -> None:
        self.conn.inbound_data(data)


class _Outbound(_Side):
    def connectionMade(self) -> None:
        self.alive = True
        if self.conn.inbound is None or not self.conn.inbound.alive:
            self.transport.loseConnection()
            return
        self.conn.upstream_ready(self)

    def dataReceived(self, data: bytes) -> None:
        self.conn.pipes[OUT].send(data)


class _UpstreamFactory(ClientFactory):
    def __init__(self, conn: _Connection) -> None:
        self.conn = conn

    def buildProtocol(self, addr: Any) -> Protocol:
        return _Outbound(self.conn)

    def clientConnectionFailed(self, connector: Any, reason: Failure) -> None:
        inbound = self.conn.inbound
        if inbound is not None and inbound.transport is not None:
            inbound.transport.abortConnection()


class _ListenFactory(Factory):
    def __init__(self, proxy: PeerProxy) -> None:
        self.proxy = proxy

    def buildProtocol(self, addr: Any) -> Protocol:
        conn = _Connection(self.proxy)
        self.proxy.connections.add(conn)
        self.proxy.stats["connections"] += 1
        return _Inbound(conn)


class PeerProxy:
    """Listens on ``listen_port`` (127.0.0.1) and forwards to ``target_port``."""

    def __init__(
        self,
        reactor: Any,
        target_port: int,
        rng: random.Random | None = None,
        max_buffer: int = 4 << 20,
    ) -> None:
        self.reactor = reactor
        self.target_port = target_port
        self.rng = rng or random.Random()
        self.max_buffer = max_buffer
        self.rules: dict[tuple[str, int | None], Rule] = {}
        self.connections: set[_Connection] = set()
        self.stats: Counter[str] = Counter()
        self.port: IListeningPort | None = None

    def listen(self, port: int = 0) -> int:
        """Start listening; returns the port (``0`` picks a free one)."""
        self.port = self.reactor.listenTCP(port, _ListenFactory(self), interface="127.0.0.1")
        return self.port.getHost().port

    def rule(self, direction: str, source: int | None) -> Rule:
        """The rule for bytes in ``direction`` on a connection dialed by ``source``."""
        if source is not None:
            specific = self.rules.get((direction, source))
            if specific is not None:
                return specific
        return self.rules.get((direction, None), PASS)

    def set_rule(
        self, rule: Rule, directions: tuple[str, ...] = DIRECTIONS, source: int | None = None
    ) -> None:
        """Apply ``rule`` to ``directions``, for every dialer or only ``source``."""
        for direction in directions:
            if rule.passes:
                self.rules.pop((direction, source), None)
            else:
                self.rules[(direction, source)] = rule
        self._reset_healed()

    def clear(self) -> None:
        """Let everything pass again."""
        self.rules.clear()
        self._reset_healed()

    def _reset_healed(self) -> None:
        for conn in list(self.connections):
            if conn.tainted and not any(self.rule(d, conn.source).blackhole for d in DIRECTIONS):
                conn.tainted = False
                conn.abort()

    def stop(self) -> Deferred[Any]:
        """Stop listening and close every connection."""
        waits: list[Deferred[Any]] = []
        if self.port is not None:
            waits.append(self.port.stopListening() or succeed(None))
            self.port = None
        for conn in list(self.connections):
            for pipe in conn.pipes.values():
                pipe.cancel()
            waits.append(conn.done)
            conn.abort()
        return gatherResults(waits, consumeErrors=True)
