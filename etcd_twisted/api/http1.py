"""HTTP/1 request reading as Go's ``net/http`` server reads it for etcd, with a bound
on request bodies checked before they are read.

Twisted's ``HTTPChannel`` differs from Go's server where clients and attackers notice:

- it takes only CRLF line ends, so an LF-only request waits forever; Go takes both;
- it caps the request head at 16 KiB and drops a longer line without a word; Go takes
  ``MaxHeaderBytes`` (1 MiB) plus its 4 KiB read buffer and answers a longer head with
  ``431 Request Header Fields Too Large``;
- it reads any body to the end before the request is seen, where Go runs the handler
  at once and only the gateway's handlers read the body.

:class:`GoHTTPChannel` reads lines as Go does, answers an oversize head as Go does,
answers requests outside the gateway without waiting for a body (closing afterwards), and
refuses a body longer than ``max_body_bytes`` (declared by Content-Length, or counted
as chunks arrive) at once with etcd's answer to a request too large for its gRPC
server (429, gRPC code 8), without reading it: it then half-closes, discards what the
client still sends so the client can read the answer, and drops the connection after
:data:`REFUSED_LINGER` seconds.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from twisted.internet.interfaces import IDelayedCall
from twisted.web.http import HTTPChannel, datetimeToString

from etcd_twisted.api.gojson import marshal

#: Go's ``http.DefaultMaxHeaderBytes``.
GO_MAX_HEADER_BYTES = 1 << 20
#: Go's server reads the head through a 4 KiB buffer on top of ``MaxHeaderBytes``.
GO_HEADER_SLOP = 4096
#: Seconds a refused connection stays half-open so the client reads the answer
#: (Go's ``closeWriteAndWait`` waits 500 ms).
REFUSED_LINGER = 0.5
#: Go's answer to a request it cannot parse.
_BAD_REQUEST = (
    b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Connection: close\r\n\r\n400 Bad Request"
)
_HEADERS_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Type: text/plain; charset=utf-8"
    b"\r\nConnection: close\r\n\r\n431 Request Header Fields Too Large"
)
#: etcd's CORS headers, on every answer of its handlers.
_CORS_HEADERS = (
    (b"Access-Control-Allow-Headers", b"accept, content-type, authorization"),
    (b"Access-Control-Allow-Methods", b"POST, GET, OPTIONS, PUT, DELETE"),
    (b"Access-Control-Allow-Origin", b"*"),
)
#: The headers etcd's gateway puts on its JSON answers.
_GATEWAY_HEADERS = (*_CORS_HEADERS, (b"Content-Type", b"application/json"))
_RESOURCE_EXHAUSTED = 8
#: A ``%`` not followed by two hex digits: a path Go's ``url.ParseRequestURI`` refuses.
_BAD_ESCAPE = re.compile(rb"%(?![0-9A-Fa-f]{2})")


def too_large_message(size: int, limit: int) -> str:
    """grpc-go's text for a received message over the server's limit."""
    return f"grpc: received message larger than max ({size} vs. {limit})"


def body_too_large_response(size: int, limit: int, date: bytes) -> bytes:
    """The whole HTTP answer to a body of ``size`` bytes over ``limit``: what etcd's
    gateway answers when its gRPC server refuses the message as larger than max."""
    text = too_large_message(size, limit)
    body = marshal({"error": text, "code": _RESOURCE_EXHAUSTED, "message": text}).encode()
    return _response(b"429 Too Many Requests", _GATEWAY_HEADERS, date, body)


def _response(
    status: bytes, headers: Iterable[tuple[bytes, bytes]], date: bytes, body: bytes
) -> bytes:
    lines = [b"HTTP/1.1 " + status]
    lines += [name + b": " + value for name, value in headers]
    lines += [b"Date: " + date, b"Content-Length: %d" % len(body), b"Connection: close"]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


class GoHTTPChannel(HTTPChannel):
    """``HTTPChannel`` reading requests as Go's server does (see the module docstring).

    ``max_body_bytes`` (the largest body read) and ``message_limit`` (the gRPC limit the
    refusal names) come from the factory (:func:`channel_factory`).
    """

    delimiter = b"\n"
    max_header_bytes = GO_MAX_HEADER_BYTES + GO_HEADER_SLOP
    MAX_LENGTH = max_header_bytes
    totalHeadersSize = max_header_bytes
    maxHeaders = max_header_bytes  # bounded by the size, as in Go
    max_body_bytes = 4 << 20
    message_limit = 2 << 20

    _head_bytes = 0
    _chunked_bytes = 0
    _refused = False
    _linger: IDelayedCall | None = None

    def dataReceived(self, data: bytes) -> None:
        if self._refused or self.transport.disconnecting:
            return  # discarded while a refusal lingers, or once the connection is closing
        super().dataReceived(data)
        if (
            not self._refused
            and self.line_mode
            and not self._handlingRequest
            and self._head_bytes + len(self._buffer) > self.max_header_bytes
        ):
            self._refuse(_HEADERS_TOO_LARGE)

    def lineReceived(self, line: bytes) -> None:
        self._head_bytes += len(line) + 1
        if self._head_bytes > self.max_header_bytes:
            self._refuse(_HEADERS_TOO_LARGE)
            return
        super().lineReceived(line[:-1] if line.endswith(b"\r") else line)

    def lineLengthExceeded(self, line: bytes) -> None:
        self._refuse(_HEADERS_TOO_LARGE)

    def allHeadersReceived(self) -> None:
        self._head_bytes = 0
        self._chunked_bytes = 0
        if _BAD_ESCAPE.search(self._path.partition(b"?")[0]):
            self._refuse(_BAD_REQUEST)  # Go cannot parse the request URI
            return
        if self._path == b"*" and self._command != b"OPTIONS":
            self._refuse(_response(b"400 Bad Request", _CORS_HEADERS, datetimeToString(), b""))
            return  # Go's ServeMux answer
        if self.length != 0 and not self._reads_body():
            # Outside the gateway no handler reads a body (as in etcd): answer at once
            # without waiting for it, no 100-continue, and close after the answer.
            self.length = 0
            self.requests[-1].requestHeaders.removeHeader(b"expect")
            super().allHeadersReceived()
            self.persistent = False
            return
        if self.length is not None and self.length > self.max_body_bytes:
            self._refuse_body(self.length)
            return
        super().allHeadersReceived()

    def _reads_body(self) -> bool:
        """Whether the request's handler reads its body: the gateway's POSTs."""
        return self._command == b"POST" and self._path.startswith(b"/v3/")

    def rawDataReceived(self, data: bytes) -> None:
        if not self._handlingRequest and self.length is None:  # a chunked body
            self._chunked_bytes += len(data)
            if self._chunked_bytes > self.max_body_bytes:
                self._refuse_body(self._chunked_bytes)
                return
        super().rawDataReceived(data)

    def _respondToBadRequestAndDisconnect(self) -> None:
        self._refuse(_BAD_REQUEST)

    def _refuse_body(self, size: int) -> None:
        self._refuse(body_too_large_response(size, self.message_limit, datetimeToString()))

    def _refuse(self, response: bytes) -> None:
        """Answer ``response`` and end the connection without reading more of it."""
        if self._refused:
            return
        self._refused = True
        self.length = None  # no body will be read: the request is never dispatched
        self.setRawMode()  # no more lines parsed from what is buffered
        self.clearLineBuffer()
        self.setTimeout(None)
        self.transport.write(response)
        half_close = getattr(self.transport, "loseWriteConnection", None)
        if half_close is None:
            self.transport.loseConnection()
            return
        half_close()
        self._linger = self.callLater(REFUSED_LINGER, self._end_linger)

    def _end_linger(self) -> None:
        self._linger = None
        self.transport.abortConnection()

    def connectionLost(self, reason: object) -> None:
        if self._linger is not None and self._linger.active():
            self._linger.cancel()
        self._linger = None
        super().connectionLost(reason)


def channel_factory(max_body_bytes: int, message_limit: int) -> type[GoHTTPChannel]:
    """A :class:`GoHTTPChannel` class with these limits, for ``Site.protocol``."""
    return type(
        "BoundedGoHTTPChannel",
        (GoHTTPChannel,),
        {"max_body_bytes": max_body_bytes, "message_limit": message_limit},
    )
