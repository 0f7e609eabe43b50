"""A peer connection after its handshake: frames, keep-alive pings, and an idle timeout.

Every link is opened by one member (the dialer) and accepted by another. Both ends
check once per ``ping_interval`` that they heard something within ``idle_timeout``
and drop the connection otherwise (a half-open TCP connection is found this way);
the dialer also sends a ``PING`` each time and times the ``PONG`` — that is the
peer's round trip.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IAddress, IDelayedCall, IReactorTime
from twisted.internet.protocol import ClientFactory, Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from etcd_twisted.peer import codec
from etcd_twisted.peer.handshake import (
    Answer,
    HandshakeError,
    HeadReader,
    Hello,
    encode_request,
    parse_answer,
)

_TOKEN = struct.Struct(">Q")


@dataclass(frozen=True)
class Timing:
    """How often links ping and how long they tolerate silence (etcd: 5 s read timeout)."""

    ping_interval: float = 1.0
    idle_timeout: float = 5.0


class LinkRefused(HandshakeError):
    """The acceptor answered the upgrade request with an error."""

    def __init__(self, answer: Answer, reason: str) -> None:
        super().__init__(answer.status, reason)
        self.cluster_id = answer.cluster_id


class Link(Protocol):
    """Frames after a handshake that the subclass performs in ``handshake_data``."""

    log = Logger()

    def __init__(self, clock: IReactorTime, timing: Timing, dialer: bool) -> None:
        self.clock = clock
        self.timing = timing
        self._dialer = dialer
        self._decoder: codec.FrameDecoder | None = None
        self._heard = 0.0
        self._timer: IDelayedCall | None = None
        self._ping: tuple[int, float] | None = None
        self._ping_count = 0
        self.closing = False
        self._producing = False
        #: Called with each measured round trip in seconds (dialers only).
        self.on_round_trip: Callable[[float], None] = lambda seconds: None

    # --- Protocol

    def connectionMade(self) -> None:
        self._heard = self.clock.seconds()
        self._timer = self.clock.callLater(self.timing.ping_interval, self._tick)

    def dataReceived(self, data: bytes) -> None:
        if self.closing:
            return
        self._heard = self.clock.seconds()
        if self._decoder is None:
            try:
                self.handshake_data(data)
            except HandshakeError as e:
                self.handshake_failed(e)
            return
        self._frames(data)

    def connectionLost(self, reason: Failure | None = None) -> None:
        self.closing = True
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        self.link_lost(reason)

    # --- for subclasses

    def handshake_data(self, data: bytes) -> None:
        """Bytes received before frames start; raise ``HandshakeError`` to refuse."""
        raise NotImplementedError

    def handshake_failed(self, error: HandshakeError) -> None:
        """The handshake did not succeed; the default drops the connection."""
        self.abort()

    def frame_received(self, kind: int, payload: bytes) -> None:
        """A frame other than ``PING``/``PONG``."""
        raise NotImplementedError

    def link_lost(self, reason: Failure | None) -> None:
        """The connection is gone."""

    def start_frames(self, rest: bytes) -> None:
        """The handshake is done: the bytes from ``rest`` on are frames."""
        self._decoder = codec.FrameDecoder()
        if rest:
            self._frames(rest)

    def write(self, data: bytes) -> None:
        """Write bytes (whole frames) to the connection."""
        self.transport.write(data)

    def register_producer(self) -> None:
        """Register this link as the transport's streaming producer (it implements it)."""
        self._producing = True
        self.transport.registerProducer(self, True)

    def close(self) -> None:
        """Close after pending writes (unregistering first: TLS waits for that)."""
        self.closing = True
        if self._producing:
            self._producing = False
            self.transport.unregisterProducer()
        self.transport.loseConnection()

    def abort(self) -> None:
        """Drop the connection now."""
        self.closing = True
        self.transport.abortConnection()

    # --- internals

    def _frames(self, data: bytes) -> None:
        assert self._decoder is not None
        try:
            frames = self._decoder.feed(data)
        except codec.FrameError as e:
            self.log.warn("peer link: {error}; dropping it", error=e)
            self.abort()
            return
        for kind, payload in frames:
            if self.closing:
                return
            if kind == codec.PING:
                self.write(codec.encode(codec.PONG, payload))
            elif kind == codec.PONG:
                self._pong(payload)
            else:
                self.frame_received(kind, payload)

    def _tick(self) -> None:
        now = self.clock.seconds()
        if now - self._heard > self.timing.idle_timeout:
            self.log.warn("peer link silent for {idle:.1f}s; dropping it", idle=now - self._heard)
            self._timer = None
            self.abort()
            return
        if self._dialer and self._decoder is not None:
            self._ping_count += 1
            self._ping = (self._ping_count, now)
            self.write(codec.encode(codec.PING, _TOKEN.pack(self._ping_count)))
        self._timer = self.clock.callLater(self.timing.ping_interval, self._tick)

    def _pong(self, payload: bytes) -> None:
        if self._ping is None or len(payload) != _TOKEN.size:
            return
        token, sent = self._ping
        if _TOKEN.unpack(payload)[0] == token:
            self._ping = None
            self.on_round_trip(self.clock.seconds() - sent)


class DialingLink(Link):
    """The dialer's end: sends the upgrade request, and starts frames on ``101``.

    ``opened`` fires with the link once the acceptor switches protocols, or fails with
    ``LinkRefused`` or the reason the connection was lost; cancelling it drops the
    connection.
    """

    def __init__(self, clock: IReactorTime, timing: Timing, hello: Hello, host: str) -> None:
        super().__init__(clock, timing, dialer=True)
        self.hello = hello
        self._host = host
        self._head: HeadReader | None = HeadReader()
        self._refusal: tuple[Answer, bytes] | None = None
        self.opened: Deferred[DialingLink] = Deferred(lambda d: self.abort())

    def connectionMade(self) -> None:
        super().connectionMade()
        self.transport.write(encode_request(self.hello, self._host))

    def handshake_data(self, data: bytes) -> None:
        if self._refusal is not None:
            answer, body = self._refusal
            self._refusal = (answer, body + data)
            self._check_refusal()
            return
        assert self._head is not None
        parsed = self._head.feed(data)
        if parsed is None:
            return
        head, rest = parsed
        self._head = None
        answer = parse_answer(head)
        if answer.status == 101:
            self.start_frames(rest)
            self.link_opened()
            if not self.opened.called:
                self.opened.callback(self)
            return
        self._refusal = (answer, rest)
        self._check_refusal()

    def _check_refusal(self) -> None:
        assert self._refusal is not None
        answer, body = self._refusal
        if len(body) >= answer.content_length:
            self._fail_open(LinkRefused(answer, body.decode("utf-8", "replace").strip()))
            self.abort()

    def handshake_failed(self, error: HandshakeError) -> None:
        self._fail_open(error)
        self.abort()

    def connectionLost(self, reason: Failure | None = None) -> None:
        if self._refusal is not None:
            answer, body = self._refusal
            self._fail_open(LinkRefused(answer, body.decode("utf-8", "replace").strip()))
        else:
            self._fail_open(reason if reason is not None else Failure(ConnectionError()))
        super().connectionLost(reason)

    def _fail_open(self, error: Exception | Failure) -> None:
        if not self.opened.called:
            self.opened.errback(error)

    def link_opened(self) -> None:
        """Frames may flow now (before ``opened`` fires)."""


class _Only(ClientFactory):
    """A client factory for one connection whose protocol already exists."""

    def __init__(self, protocol: Protocol) -> None:
        self._protocol = protocol

    def buildProtocol(self, addr: IAddress) -> Protocol:
        return self._protocol


def factory_for(protocol: Protocol) -> ClientFactory:
    """A factory that builds ``protocol`` (for ``endpoint.connect``)."""
    return _Only(protocol)
