"""A small gRPC client on h2 and Twisted: one HTTP/2 connection, many calls.

Messages are bytes (callers serialize); a call is a `ClientCall` whose ``send``
queues a message (leaving as the server's flow-control window allows), ``end``
half-closes, and whose results come to ``on_message`` and, once, ``on_close``
(``None`` for OK, else the `GrpcError`). `unary` wraps this for one request and
one answer. The receive window is reopened as soon as bytes arrive: callers take
messages at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.errors import ErrorCodes
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    ResponseReceived,
    StreamEnded,
    StreamReset,
    TrailersReceived,
    WindowUpdated,
)
from h2.exceptions import ProtocolError, StreamClosedError
from h2.settings import SettingCodes
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import ITCPTransport
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure

from etcd_twisted.grpc.framing import MessageDecoder, encode_message
from etcd_twisted.grpc.metadata import MetadataValue, encode_metadata
from etcd_twisted.grpc.status import GrpcError, StatusCode, percent_decode

__all__ = ["ClientCall", "GrpcClientProtocol"]

_WINDOW = 1 << 24
_MAX_RECEIVE = 1 << 31


class ClientCall:
    """One call on a `GrpcClientProtocol`."""

    def __init__(
        self,
        connection: GrpcClientProtocol,
        stream_id: int,
        on_message: Callable[[bytes], Any],
        on_close: Callable[[GrpcError | None], Any],
    ) -> None:
        self._connection = connection
        self.stream_id = stream_id
        self._on_message = on_message
        self._on_close = on_close
        self._decoder = MessageDecoder(_MAX_RECEIVE)
        self._out = bytearray()
        self._end_pending = False
        self.closed = False
        self._status: GrpcError | None = None
        self._status_seen = False

    def send(self, message: bytes) -> None:
        """Queue one serialized message."""
        if self.closed or self._end_pending:
            return
        self._out += encode_message(message)
        self._connection._flush_call(self)

    def end(self) -> None:
        """Half-close once the queued messages are sent."""
        if self.closed or self._end_pending:
            return
        self._end_pending = True
        self._connection._flush_call(self)

    def cancel(self) -> None:
        """Reset the stream; ``on_close`` gets CANCELLED."""
        if self.closed:
            return
        self._connection._reset(self)
        self._close(GrpcError(StatusCode.CANCELLED, "context canceled"))

    # -- from the connection

    def _data(self, data: bytes) -> None:
        try:
            messages = self._decoder.feed(data)
        except GrpcError as e:
            self.cancel()
            self._close(e)
            return
        for message in messages:
            if self.closed:
                return
            self._on_message(message)

    def _headers(self, headers: Iterable[tuple[bytes, bytes]]) -> None:
        values = dict(headers)
        if b"grpc-status" in values:
            self._status_seen = True
            code = int(values[b"grpc-status"])
            if code:
                message = percent_decode(values.get(b"grpc-message", b""))
                self._status = GrpcError(StatusCode(code), message)
        elif values.get(b":status", b"200") != b"200":
            self._status_seen = True
            status = values[b":status"].decode()
            self._status = GrpcError(
                StatusCode.UNKNOWN, f"unexpected HTTP status code received from server: {status}"
            )

    def _ended(self) -> None:
        if not self._status_seen:
            self._status = GrpcError(
                StatusCode.INTERNAL, "server closed the stream without sending trailers"
            )
        self._close(self._status)

    def _close(self, status: GrpcError | None) -> None:
        if self.closed:
            return
        self.closed = True
        self._connection._calls.pop(self.stream_id, None)
        self._on_close(status)


class GrpcClientProtocol(Protocol):
    """An HTTP/2 (h2c) connection to one gRPC server."""

    def __init__(self, authority: str = "localhost") -> None:
        self._authority = authority.encode()
        self._h2 = H2Connection(
            H2Configuration(client_side=True, header_encoding=None, validate_inbound_headers=False)
        )
        self._calls: dict[int, ClientCall] = {}
        self.lost = False
        self.going_away = False
        self.when_lost: Deferred[None] = Deferred()

    def connectionMade(self) -> None:
        if ITCPTransport.providedBy(self.transport):
            self.transport.setTcpNoDelay(True)
        h2 = self._h2
        h2.initiate_connection()
        h2.update_settings({SettingCodes.INITIAL_WINDOW_SIZE: _WINDOW, SettingCodes.ENABLE_PUSH: 0})
        h2.increment_flow_control_window(_WINDOW)
        self.transport.write(h2.data_to_send())

    @property
    def usable(self) -> bool:
        """True while new calls may start here."""
        return not self.lost and not self.going_away

    def start_call(
        self,
        path: str,
        metadata: Iterable[tuple[str, MetadataValue]],
        on_message: Callable[[bytes], Any],
        on_close: Callable[[GrpcError | None], Any],
        timeout: float | None = None,
    ) -> ClientCall:
        """Open a call; fails at once (``on_close`` UNAVAILABLE) on a closed connection."""
        if not self.usable:
            call = ClientCall(self, 0, on_message, on_close)
            call._close(GrpcError(StatusCode.UNAVAILABLE, "transport is closing"))
            return call
        stream_id = self._h2.get_next_available_stream_id()
        headers = [
            (b":method", b"POST"),
            (b":scheme", b"http"),
            (b":path", path.encode()),
            (b":authority", self._authority),
            (b"content-type", b"application/grpc"),
            (b"te", b"trailers"),
        ]
        if timeout is not None:
            headers.append((b"grpc-timeout", b"%dm" % max(1, int(timeout * 1000))))
        headers += encode_metadata(metadata)
        call = ClientCall(self, stream_id, on_message, on_close)
        self._calls[stream_id] = call
        self._h2.send_headers(stream_id, headers)
        self._write()
        return call

    def unary(
        self,
        path: str,
        request: bytes,
        metadata: Iterable[tuple[str, MetadataValue]] = (),
        timeout: float | None = None,
    ) -> Deferred[bytes]:
        """One request, one answer: fires with the answer's bytes or fails with `GrpcError`."""
        result: Deferred[bytes] = Deferred()
        answers: list[bytes] = []

        def closed(status: GrpcError | None) -> None:
            if status is not None:
                result.errback(status)
            elif len(answers) != 1:
                result.errback(
                    GrpcError(StatusCode.INTERNAL, f"expected one response, got {len(answers)}")
                )
            else:
                result.callback(answers[0])

        call = self.start_call(path, metadata, answers.append, closed, timeout)
        call.send(request)
        call.end()
        return result

    def close(self) -> None:
        """Close the connection; open calls end UNAVAILABLE."""
        if not self.lost:
            self.transport.loseConnection()

    # -- flow

    def _flush_call(self, call: ClientCall) -> None:
        if call.closed or call.stream_id not in self._calls:
            return
        h2 = self._h2
        try:
            while call._out:
                window = min(
                    h2.local_flow_control_window(call.stream_id), h2.max_outbound_frame_size
                )
                if window <= 0:
                    break
                chunk = bytes(call._out[:window])
                del call._out[:window]
                h2.send_data(call.stream_id, chunk)
            if not call._out and call._end_pending:
                call._end_pending = False
                h2.end_stream(call.stream_id)
        except (StreamClosedError, ProtocolError):
            call._out.clear()
        self._write()

    def _reset(self, call: ClientCall) -> None:
        if self.lost:
            return
        try:
            self._h2.reset_stream(call.stream_id, ErrorCodes.CANCEL)
        except (StreamClosedError, ProtocolError):
            pass
        self._write()

    def _write(self) -> None:
        data = self._h2.data_to_send()
        if data and not self.lost:
            self.transport.write(data)

    # -- IProtocol

    def dataReceived(self, data: bytes) -> None:
        try:
            events = self._h2.receive_data(data)
        except ProtocolError:
            self._write()
            self.transport.loseConnection()
            return
        for event in events:
            call = self._calls.get(getattr(event, "stream_id", 0) or 0)
            if isinstance(event, DataReceived):
                if event.flow_controlled_length:
                    self._h2.acknowledge_received_data(
                        event.flow_controlled_length, event.stream_id
                    )
                if call is not None:
                    call._data(event.data)
            elif isinstance(event, (ResponseReceived, TrailersReceived)):
                if call is not None:
                    call._headers(event.headers)
            elif isinstance(event, StreamEnded):
                if call is not None:
                    call._ended()
            elif isinstance(event, StreamReset):
                if call is not None:
                    call._close(_reset_status(event.error_code))
            elif isinstance(event, WindowUpdated):
                targets = list(self._calls.values()) if not event.stream_id else [call]
                for target in targets:
                    if target is not None and target._out:
                        self._flush_call(target)
            elif isinstance(event, ConnectionTerminated):
                self.going_away = True
                # Streams above the last one the server processed never ran.
                for stream_id, pending in list(self._calls.items()):
                    if stream_id > (event.last_stream_id or 0):
                        pending._close(GrpcError(StatusCode.UNAVAILABLE, "transport is closing"))
        self._write()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.lost = True
        for call in list(self._calls.values()):
            call._close(GrpcError(StatusCode.UNAVAILABLE, "transport is closing"))
        self._calls.clear()
        self.when_lost.callback(None)


def _reset_status(error_code: int | None) -> GrpcError:
    if error_code == ErrorCodes.CANCEL:
        return GrpcError(StatusCode.CANCELLED, "stream reset by the server")
    return GrpcError(
        StatusCode.UNAVAILABLE, f"stream terminated by RST_STREAM with error code: {error_code}"
    )
