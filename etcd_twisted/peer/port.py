"""One peer port, two uses: raft links and the peer HTTP API, told apart by the request line.

A connection whose first bytes are ``POST /raft/stream `` or ``POST /raft/snapshot ``
goes to the raft link factory; anything else goes to the HTTP site, which answers
``/version``, ``/members`` and errors as usual. Bytes read while deciding are
replayed to the chosen protocol, which then owns the transport (see ``sniff``).
"""

from __future__ import annotations

from twisted.internet.interfaces import IReactorTime
from twisted.internet.protocol import Factory

from etcd_twisted.peer.handshake import PATHS
from etcd_twisted.sniff import DEFAULT_SNIFF_TIMEOUT, RoutingFactory

_RAFT_LINES = tuple(f"POST {path} ".encode() for path in PATHS)


def is_raft(prefix: bytes) -> bool | None:
    """Whether a connection starting with ``prefix`` opens a raft link (None: need more)."""
    for line in _RAFT_LINES:
        if prefix.startswith(line):
            return True
        if line.startswith(prefix):
            return None
    return False


def classify(prefix: bytes) -> str | None:
    """The route for a peer-port connection: ``"raft"``, ``"http"``, or None (need more)."""
    raft = is_raft(prefix)
    if raft is None:
        return None
    return "raft" if raft else "http"


class PeerPortFactory(RoutingFactory):
    """Routes each peer-port connection to ``raft`` (links) or ``http`` (the peer API)."""

    def __init__(
        self,
        raft: Factory,
        http: Factory,
        clock: IReactorTime,
        timeout: float = DEFAULT_SNIFF_TIMEOUT,
    ) -> None:
        super().__init__({"raft": raft, "http": http}, classify, clock, timeout)
        self.raft = raft
        self.http = http
