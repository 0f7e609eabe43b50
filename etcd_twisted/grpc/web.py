"""The HTTP/2 streams of a gRPC connection that are not gRPC calls, served by ``twisted.web``.

Go's etcd hands an HTTP/2 request to gRPC only when its content type says
``application/grpc``; anything else (``curl --http2 /version``, a JSON gateway
``POST /v3/kv/range``, a streaming ``/v3/watch``) goes to the same HTTP handlers
as HTTP/1. `WebStreams` does that for `GrpcProtocol`, which owns the h2 connection:
each such stream becomes a ``twisted.web`` request whose channel is a `WebStream`,
writing its response through the shared h2 connection within the peer's flow-control
windows (what a window holds back waits in the stream's buffer).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from h2.connection import H2Connection
from h2.errors import ErrorCodes
from h2.exceptions import StreamClosedError
from twisted.internet.interfaces import IAddress, IPushProducer
from twisted.python.failure import Failure
from twisted.web.http_headers import Headers
from twisted.web.server import Site
from zope.interface import implementer

__all__ = ["WebStream", "WebStreams"]

#: Response headers that mean something only to HTTP/1 connections (RFC 9113 8.2.2).
_CONNECTION_HEADERS = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade"}
)


class WebStreams:
    """The non-gRPC streams of one HTTP/2 connection, each a request to ``site``.

    ``acknowledge(stream_id, size)`` returns receive-window credit for body bytes
    taken; ``wrote()`` asks the connection to send what h2 has queued;
    ``peer_certificate()`` is the TLS client certificate, if any.
    """

    def __init__(
        self,
        site: Site,
        h2: H2Connection,
        acknowledge: Callable[[int, int], None],
        wrote: Callable[[], None],
        peer: IAddress,
        host: IAddress,
        secure: bool,
        peer_certificate: Callable[[], Any] = lambda: None,
    ) -> None:
        self.site = site
        self.h2 = h2
        self.acknowledge = acknowledge
        self.wrote = wrote
        self.peer = peer
        self.host = host
        self.secure = secure
        self.peer_certificate = peer_certificate
        self.streams: dict[int, WebStream] = {}

    def open(self, stream_id: int, headers: Sequence[tuple[bytes, bytes]]) -> None:
        """A request's headers arrived on a new stream."""
        self.streams[stream_id] = WebStream(self, stream_id, headers)

    def received(self, stream_id: int, data: bytes, size: int, ended: bool) -> bool:
        """Body bytes (``size`` of flow-controlled length) for a stream; False if not ours."""
        stream = self.streams.get(stream_id)
        if stream is None:
            return False
        if size:
            self.acknowledge(stream_id, size)
        stream.body_received(data)
        if ended:
            stream.request_complete()
        return True

    def ended(self, stream_id: int) -> bool:
        """The client ended its side of a stream; False if not ours."""
        stream = self.streams.get(stream_id)
        if stream is None:
            return False
        stream.request_complete()
        return True

    def reset(self, stream_id: int) -> bool:
        """The client reset a stream; False if not ours."""
        stream = self.streams.pop(stream_id, None)
        if stream is None:
            return False
        stream.lost(Failure(ConnectionError("stream reset by the client")))
        return True

    def window_opened(self) -> None:
        """The peer opened a flow-control window: send what waited for it."""
        for stream in list(self.streams.values()):
            stream.send_buffered()

    def connection_lost(self, reason: Failure) -> None:
        """The connection is gone: every request on it is lost."""
        streams, self.streams = self.streams, {}
        for stream in streams.values():
            stream.lost(reason)


@implementer(IPushProducer)
class WebStream:
    """One HTTP/2 stream as the channel of a ``twisted.web`` request."""

    #: ``twisted.web`` requests read their channel's transport; a stream has none of its own.
    transport = None

    def __init__(
        self, streams: WebStreams, stream_id: int, headers: Sequence[tuple[bytes, bytes]]
    ) -> None:
        self._streams = streams
        self.stream_id = stream_id
        self.site = streams.site
        self.factory = streams.site
        self._buffer: list[bytes] = []
        self._finishing = False
        self._closed = False
        self._producer: Any = None
        self._paused_producer = False
        self.request = streams.site.requestFactory(self, queued=False)
        self._command = b"GET"
        self._path = b"/"
        has_length = False
        for name, value in headers:
            if name == b":method":
                self._command = value
            elif name == b":path":
                self._path = value
            elif name == b":authority":
                self.request.requestHeaders.addRawHeader(b"host", value)
            elif not name.startswith(b":"):
                self.request.requestHeaders.addRawHeader(name, value)
                if name == b"content-length":
                    has_length = True
        length = None
        if has_length:
            raw = self.request.requestHeaders.getRawHeaders(b"content-length", [b""])[0]
            length = int(raw) if raw.isdigit() else None
        elif self._command in (b"GET", b"HEAD"):
            length = 0
        self.request.gotLength(length)
        self.request.parseCookies()

    # -- from the connection

    def body_received(self, data: bytes) -> None:
        if data:
            self.request.handleContentChunk(data)

    def request_complete(self) -> None:
        self.request.requestReceived(self._command, self._path, b"HTTP/2")

    def lost(self, reason: Failure) -> None:
        self._closed = True
        self._buffer = []
        self.request.connectionLost(reason)

    def send_buffered(self) -> None:
        """Send as much of the buffer as the windows allow; end the stream once it is
        empty and the request finished."""
        if self._closed:
            return
        h2 = self._streams.h2
        sid = self.stream_id
        try:
            while self._buffer:
                window = min(h2.local_flow_control_window(sid), h2.max_outbound_frame_size)
                if window <= 0:
                    break
                chunk = self._buffer[0]
                if len(chunk) > window:
                    self._buffer[0] = chunk[window:]
                    chunk = chunk[:window]
                else:
                    self._buffer.pop(0)
                h2.send_data(sid, chunk)
            if not self._buffer and self._finishing:
                h2.end_stream(sid)
                self._done()
        except StreamClosedError:
            self._done()
        self._streams.wrote()
        self._steer_producer()

    def _done(self) -> None:
        self._closed = True
        self._buffer = []
        self._streams.streams.pop(self.stream_id, None)

    def _steer_producer(self) -> None:
        if self._producer is None:
            return
        if self._buffer and not self._paused_producer:
            self._paused_producer = True
            self._producer.pauseProducing()
        elif not self._buffer and self._paused_producer:
            self._paused_producer = False
            self._producer.resumeProducing()

    # -- the channel, as twisted.web.http.Request uses it

    def writeHeaders(  # noqa: N802 - twisted.web's channel interface
        self, version: bytes, code: bytes, reason: bytes, headers: Headers
    ) -> None:
        if self._closed:
            return
        block = [(b":status", code)]
        for name, values in headers.getAllRawHeaders():
            lower = name.lower()
            if lower not in _CONNECTION_HEADERS:
                block.extend((lower, value) for value in values)
        try:
            self._streams.h2.send_headers(self.stream_id, block)
        except StreamClosedError:
            self._done()
        self._streams.wrote()

    def write(self, data: bytes) -> None:
        if self._closed or not data:
            return
        self._buffer.append(data)
        self.send_buffered()

    def writeSequence(self, data: Sequence[bytes]) -> None:  # noqa: N802
        for chunk in data:
            self.write(chunk)

    def requestDone(self, request: Any) -> None:  # noqa: N802
        self._finishing = True
        self.send_buffered()

    def loseConnection(self) -> None:  # noqa: N802
        self.requestDone(self.request)

    def abortConnection(self) -> None:  # noqa: N802
        if not self._closed:
            self._streams.h2.reset_stream(self.stream_id, ErrorCodes.INTERNAL_ERROR)
            self._done()
            self._streams.wrote()

    def _respondToBadRequestAndDisconnect(self) -> None:  # noqa: N802
        """What twisted.web calls on a malformed request body: 400 and end the stream."""
        if self._closed:
            return
        self._streams.h2.send_headers(self.stream_id, [(b":status", b"400")], end_stream=True)
        self._done()
        self._streams.wrote()

    def getPeer(self) -> IAddress:  # noqa: N802
        return self._streams.peer

    def getHost(self) -> IAddress:  # noqa: N802
        return self._streams.host

    def isSecure(self) -> bool:  # noqa: N802
        return self._streams.secure

    def getPeerCertificate(self) -> Any:  # noqa: N802 - as ISSLTransport names it
        """The connection's TLS client certificate (None without one)."""
        return self._streams.peer_certificate()

    def registerProducer(self, producer: Any, streaming: bool) -> None:  # noqa: N802
        self._producer = producer
        self._paused_producer = False
        self._steer_producer()

    def unregisterProducer(self) -> None:  # noqa: N802
        self._producer = None

    # -- IPushProducer (twisted.web.http.Request may pause its channel)

    def pauseProducing(self) -> None:  # noqa: N802
        """Nothing to pause: the body arrives whole before the request is processed."""

    def resumeProducing(self) -> None:  # noqa: N802
        """See `pauseProducing`."""

    def stopProducing(self) -> None:  # noqa: N802
        """See `pauseProducing`."""
