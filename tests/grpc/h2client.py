"""A sans-socket HTTP/2 client that drives a `GrpcProtocol` in tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    ResponseReceived,
    StreamEnded,
    StreamReset,
    TrailersReceived,
)
from hyperframe.frame import DataFrame, Frame, HeadersFrame, RstStreamFrame
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted.grpc.framing import MessageDecoder, encode_message
from etcd_twisted.grpc.protocol import FAST_PATH, GrpcFactory, GrpcProtocol
from etcd_twisted.grpc.service import Registry

PEER = IPv4Address("TCP", "10.0.0.7", 40000)


@dataclass
class Response:
    """What the client saw on one stream."""

    headers: dict[bytes, bytes] | None = None
    data: bytes = b""
    trailers: dict[bytes, bytes] | None = None
    ended: bool = False
    reset: int | None = None
    decoder: MessageDecoder = field(default_factory=lambda: MessageDecoder(1 << 30, "gzip"))
    messages: list[bytes] = field(default_factory=list)
    #: Whether the body is gRPC messages (decoded into ``messages``) or plain bytes.
    grpc: bool = True

    @property
    def status(self) -> int | None:
        """The ``grpc-status``, from the trailers or a trailers-only response."""
        block = self.trailers if self.trailers is not None else self.headers
        if block is None or b"grpc-status" not in block:
            return None
        return int(block[b"grpc-status"])

    @property
    def message(self) -> bytes | None:
        """The raw ``grpc-message``."""
        block = self.trailers if self.trailers is not None else self.headers
        return None if block is None else block.get(b"grpc-message")


class HarnessCase(SynchronousTestCase):
    """A test case whose servers take the fast path or h2's public API only.

    Each concrete class runs with the fast path (when the verified h2 releases are
    installed); its ``...FallbackTests`` twin runs the same tests on h2's public API.
    """

    fast_path = FAST_PATH

    def harness(self, registry: Registry, **factory_kw: Any) -> Harness:
        return Harness(registry, fast_path=self.fast_path, **factory_kw)

    def factory(self, registry: Registry, clock: Clock, **factory_kw: Any) -> GrpcFactory:
        return GrpcFactory(registry, clock, fast_path=self.fast_path, **factory_kw)


def fallback_twin(case: type[HarnessCase]) -> type[HarnessCase]:
    """``case`` again, on h2's public API."""
    name = case.__name__.replace("Tests", "FallbackTests")
    return type(name, (case,), {"fast_path": False, "__module__": case.__module__})


class Harness:
    """A server protocol on a StringTransport and an h2 client talking to it."""

    def __init__(self, registry: Registry, auto_ack: bool = True, **factory_kw: Any) -> None:
        self.clock = Clock()
        self.factory = GrpcFactory(registry, self.clock, **factory_kw)
        proto = self.factory.buildProtocol(PEER)
        assert isinstance(proto, GrpcProtocol)
        self.proto = proto
        self.transport = StringTransport(peerAddress=PEER)
        self.proto.makeConnection(self.transport)
        self.client = H2Connection(H2Configuration(client_side=True, header_encoding=None))
        self.client.initiate_connection()
        self.auto_ack = auto_ack
        self.responses: dict[int, Response] = {}
        self.goaway: ConnectionTerminated | None = None
        self.exchange()

    def exchange(self) -> None:
        """Move bytes both ways (running due timers) until both sides are quiet."""
        while True:
            self.clock.advance(0)
            out = self.client.data_to_send()
            if out:
                self.proto.dataReceived(out)
                self.clock.advance(0)
            back = self.transport.value()
            self.transport.clear()
            if back:
                self._receive(back)
            if not out and not back and not self.client.data_to_send():
                return

    def _receive(self, data: bytes) -> None:
        """Give the client one frame at a time; after a GOAWAY (h2 refuses all
        input then) read frames ourselves, so the end of the streams in flight
        can still be seen."""
        pos = 0
        while pos < len(data):
            frame, length = Frame.parse_frame_header(memoryview(data[pos : pos + 9]))
            body = data[pos + 9 : pos + 9 + length]
            pos += 9 + length
            if self.goaway is None:
                self._client_events(self.client.receive_data(data[pos - 9 - length : pos]))
                continue
            frame.parse_body(memoryview(body))
            r = self.responses.get(frame.stream_id)
            if isinstance(frame, HeadersFrame):
                headers = dict(self.client.decoder.decode(bytes(frame.data), raw=True))
                if r.headers is None:
                    r.headers = headers
                else:
                    r.trailers = headers
            elif isinstance(frame, DataFrame):
                r.data += frame.data
                r.messages.extend(r.decoder.feed(frame.data))
            elif isinstance(frame, RstStreamFrame):
                r.reset = frame.error_code
            if r is not None and "END_STREAM" in frame.flags:
                r.ended = True

    def _client_events(self, events: list[Any]) -> None:
        for ev in events:
            if isinstance(ev, ResponseReceived):
                self.responses[ev.stream_id].headers = dict(ev.headers)
            elif isinstance(ev, DataReceived):
                r = self.responses[ev.stream_id]
                r.data += ev.data
                if r.grpc:
                    r.messages.extend(r.decoder.feed(ev.data))
                if self.auto_ack:
                    self.client.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, TrailersReceived):
                self.responses[ev.stream_id].trailers = dict(ev.headers)
            elif isinstance(ev, StreamEnded):
                self.responses[ev.stream_id].ended = True
            elif isinstance(ev, StreamReset):
                self.responses[ev.stream_id].reset = ev.error_code
            elif isinstance(ev, ConnectionTerminated):
                self.goaway = ev

    def start(
        self,
        path: str,
        metadata: list[tuple[bytes, bytes]] = (),  # type: ignore[assignment]
        *,
        method: bytes = b"POST",
        content_type: bytes = b"application/grpc",
        end: bool = False,
        flush: bool = True,
    ) -> int:
        """Open a call; returns its stream id."""
        sid = self.client.get_next_available_stream_id()
        headers = [
            (b":method", method),
            (b":scheme", b"http"),
            (b":path", path.encode()),
            (b":authority", b"localhost"),
            (b"content-type", content_type),
            (b"te", b"trailers"),
            *metadata,
        ]
        self.client.send_headers(sid, headers, end_stream=end)
        self.responses[sid] = Response(grpc=content_type.startswith(b"application/grpc"))
        if flush:
            self.exchange()
        return sid

    def send(self, sid: int, message: Any, *, end: bool = False, flush: bool = True) -> None:
        """Send one framed message (a protobuf message or raw framed bytes)."""
        data = (
            message if isinstance(message, bytes) else encode_message(message.SerializeToString())
        )
        step = self.client.max_outbound_frame_size
        for pos in range(0, max(len(data), 1), step):
            last = pos + step >= len(data)
            self.client.send_data(sid, data[pos : pos + step], end_stream=end and last)
        if flush:
            self.exchange()

    def end(self, sid: int) -> None:
        """Half-close the client's side of a stream."""
        self.client.end_stream(sid)
        self.exchange()

    def call(self, path: str, message: Any, metadata: list[tuple[bytes, bytes]] = ()) -> Response:  # type: ignore[assignment]
        """A whole unary call: headers, one message, half-close."""
        sid = self.start(path, metadata, flush=False)
        self.send(sid, message, end=True)
        return self.responses[sid]
