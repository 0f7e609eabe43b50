"""The dialing end of a message stream: carries one member's raft messages to one peer.

Each member dials every peer and writes its own messages on that connection, so
messages to a peer keep their order. The link is a streaming producer on its TCP
transport: when the kernel buffer is full the transport pauses it, the peer's queue
stops draining, and a full queue drops messages (see ``peer.Peer``).
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IPushProducer, IReactorTime
from twisted.python.failure import Failure
from zope.interface import implementer

from etcd_twisted.peer.handshake import Hello
from etcd_twisted.peer.link import DialingLink, Timing


@implementer(IPushProducer)
class OutboundStream(DialingLink):
    """Writes batches of ``MESSAGE`` frames; ``closed`` fires when the connection is gone."""

    def __init__(self, clock: IReactorTime, timing: Timing, hello: Hello, host: str) -> None:
        super().__init__(clock, timing, hello, host)
        self.paused = False
        self.closed: Deferred[None] = Deferred()
        #: Called when the transport wants more data again.
        self.on_resume: Callable[[], None] = lambda: None

    def connectionMade(self) -> None:
        self.register_producer()
        super().connectionMade()

    def frame_received(self, kind: int, payload: bytes) -> None:
        self.log.warn("unexpected frame kind {kind} on an outbound stream", kind=kind)

    def link_lost(self, reason: Failure | None) -> None:
        self.closed.callback(None)

    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False
        self.on_resume()

    def stopProducing(self) -> None:
        self.paused = True
