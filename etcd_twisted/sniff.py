"""One port, several protocols: route each connection by its first bytes.

:class:`RoutingFactory` holds named factories and a classifier that names one of them
from a connection's first bytes (or says it needs more, or that they are garbage).
Bytes read while deciding are replayed to the chosen protocol, which then talks to the
real transport directly; only inbound data passes through the router. A connection
that stalls before it can be classified is timed out, and garbage is closed.

The client port's :class:`SniffingFactory` sends the HTTP/2 client preface to gRPC and
anything that opens like an HTTP/1 request line (a method token and a space) to HTTP; the peer port routes raft links the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from twisted.internet.interfaces import IAddress, IDelayedCall, IReactorTime, ITransport
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure

HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#: The longest HTTP/1 method token we wait for before calling a connection garbage.
_MAX_METHOD_LENGTH = 16
DEFAULT_SNIFF_TIMEOUT = 10.0
#: The characters of an HTTP token (RFC 9110 ``tchar``): what a method may be made of.
_TOKEN_CHARS = b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def classify(prefix: bytes) -> str | None:
    """Say what a connection's first bytes are: "h2", "http", "garbage", or None (need more)."""
    if HTTP2_PREFACE.startswith(prefix[: len(HTTP2_PREFACE)]):
        return "h2" if len(prefix) >= len(HTTP2_PREFACE) else None
    space = prefix.find(b" ", 0, _MAX_METHOD_LENGTH + 1)
    method = prefix if space < 0 else prefix[:space]
    if not method or method.translate(None, _TOKEN_CHARS):
        return "garbage"  # Go's server takes any token as a method (and answers 405)
    if space >= 0:
        return "http"
    return None if len(prefix) <= _MAX_METHOD_LENGTH else "garbage"


#: ``classify(first_bytes)``: a route name, ``"garbage"``, or None when more bytes are needed.
Classifier = Callable[[bytes], "str | None"]


class RoutingProtocol(Protocol):
    """Buffers a connection's first bytes, then hands it to the protocol they call for."""

    log = Logger()

    def __init__(self, factory: RoutingFactory, addr: IAddress) -> None:
        self._factory = factory
        self._addr = addr
        self._buffer = b""
        self._inner: Protocol | None = None
        self._timeout: IDelayedCall | None = None

    def connectionMade(self) -> None:
        self._factory.connections.add(self)
        self._timeout = self._factory.clock.callLater(self._factory.timeout, self._timed_out)

    def dataReceived(self, data: bytes) -> None:
        if self._inner is not None:
            self._inner.dataReceived(data)
            return
        self._buffer += data
        kind = self._factory.classify(self._buffer)
        if kind is None:
            return
        self._cancel_timeout()
        target = self._factory.routes.get(kind)
        if target is None:
            self._factory.garbage_connections += 1
            self.transport.abortConnection()
            return
        inner = target.buildProtocol(self._addr)
        if inner is None:
            self.transport.loseConnection()
            return
        self._inner = inner
        buffered, self._buffer = self._buffer, b""
        inner.makeConnection(self.transport)
        inner.dataReceived(buffered)

    def connectionLost(self, reason: Failure | None = None) -> None:
        self._factory.connections.discard(self)
        self._cancel_timeout()
        if self._inner is not None:
            self._inner.connectionLost(reason)

    def _timed_out(self) -> None:
        self._timeout = None
        self._factory.timed_out_connections += 1
        transport: ITransport = self.transport
        transport.abortConnection()

    def _cancel_timeout(self) -> None:
        if self._timeout is not None:
            if self._timeout.active():
                self._timeout.cancel()
            self._timeout = None


class RoutingFactory(Factory):
    """Builds :class:`RoutingProtocol` s that route to one of ``routes`` by ``classify``."""

    def __init__(
        self,
        routes: Mapping[str, Factory],
        classify: Classifier,
        clock: IReactorTime,
        timeout: float = DEFAULT_SNIFF_TIMEOUT,
    ) -> None:
        self.routes = dict(routes)
        self.classify = classify
        self.clock = clock
        self.timeout = timeout
        self.garbage_connections = 0
        self.timed_out_connections = 0
        #: Connections still open (routed or not).
        self.connections: set[RoutingProtocol] = set()

    def buildProtocol(self, addr: IAddress) -> RoutingProtocol:
        return RoutingProtocol(self, addr)

    def close_connections(self) -> None:
        """Close every open connection (on shutdown, after gRPC calls had their grace)."""
        for connection in list(self.connections):
            connection.transport.loseConnection()


class SniffingFactory(RoutingFactory):
    """The client port: HTTP/2 (gRPC) to ``grpc``, HTTP/1 to ``http``."""

    def __init__(
        self,
        grpc: Factory,
        http: Factory,
        clock: IReactorTime,
        timeout: float = DEFAULT_SNIFF_TIMEOUT,
    ) -> None:
        super().__init__({"h2": grpc, "http": http}, classify, clock, timeout)
        self.grpc = grpc
        self.http = http
