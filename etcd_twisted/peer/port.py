"""One peer port, two uses: raft links and the peer HTTP API, told apart by the request line.

A connection whose first bytes are ``POST /raft/stream `` or ``POST /raft/snapshot ``
goes to the raft link factory; anything else goes to the HTTP site, which answers
``/version``, ``/members`` and errors as usual. Bytes read while deciding are
replayed to the chosen protocol, which then owns the transport.
"""

from __future__ import annotations

from twisted.internet.interfaces import IAddress, IDelayedCall, IReactorTime
from twisted.internet.protocol import Factory, Protocol
from twisted.python.failure import Failure

from etcd_twisted.peer.handshake import PATHS

_RAFT_LINES = tuple(f"POST {path} ".encode() for path in PATHS)
DEFAULT_SNIFF_TIMEOUT = 10.0


def is_raft(prefix: bytes) -> bool | None:
    """Whether a connection starting with ``prefix`` opens a raft link (None: need more)."""
    for line in _RAFT_LINES:
        if prefix.startswith(line):
            return True
        if line.startswith(prefix):
            return None
    return False


class _Sniffer(Protocol):
    def __init__(self, factory: PeerPortFactory, addr: IAddress) -> None:
        self._factory = factory
        self._addr = addr
        self._buffer = b""
        self._inner: Protocol | None = None
        self._timeout: IDelayedCall | None = None

    def connectionMade(self) -> None:
        self._timeout = self._factory.clock.callLater(self._factory.timeout, self._timed_out)

    def dataReceived(self, data: bytes) -> None:
        if self._inner is not None:
            self._inner.dataReceived(data)
            return
        self._buffer += data
        raft = is_raft(self._buffer)
        if raft is None:
            return
        self._cancel_timeout()
        target = self._factory.raft if raft else self._factory.http
        inner = target.buildProtocol(self._addr)
        if inner is None:
            self.transport.loseConnection()
            return
        self._inner = inner
        buffered, self._buffer = self._buffer, b""
        inner.makeConnection(self.transport)
        inner.dataReceived(buffered)

    def connectionLost(self, reason: Failure | None = None) -> None:
        self._cancel_timeout()
        if self._inner is not None:
            self._inner.connectionLost(reason)

    def _timed_out(self) -> None:
        self._timeout = None
        self.transport.abortConnection()

    def _cancel_timeout(self) -> None:
        if self._timeout is not None and self._timeout.active():
            self._timeout.cancel()
        self._timeout = None


class PeerPortFactory(Factory):
    """Routes each peer-port connection to ``raft`` (links) or ``http`` (the peer API)."""

    def __init__(
        self,
        raft: Factory,
        http: Factory,
        clock: IReactorTime,
        timeout: float = DEFAULT_SNIFF_TIMEOUT,
    ) -> None:
        self.raft = raft
        self.http = http
        self.clock = clock
        self.timeout = timeout

    def buildProtocol(self, addr: IAddress) -> Protocol:
        return _Sniffer(self, addr)
