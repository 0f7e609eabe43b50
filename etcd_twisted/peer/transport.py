"""The raft transport: sends this member's messages to its peers and receives theirs.

``send`` never blocks: each message joins its peer's queue (bounded; a full queue
drops the message and reports the peer unreachable, as etcd does), and once per
reactor turn every queue is written to its peer's stream in one write. Inbound
links arrive on the peer port through ``server_factory`` and are checked against
the cluster id, this member's id and the removed members before anything is read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from random import Random
from typing import Any

from twisted.application.service import Service
from twisted.internet import threads
from twisted.internet.defer import Deferred, DeferredList, maybeDeferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime, IStreamClientEndpoint
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.python.failure import Failure

from etcd_twisted._pb import raft_pb2
from etcd_twisted.membership.ids import format_id
from etcd_twisted.peer.dialer import default_policy
from etcd_twisted.peer.endpoint import ClientTLS, client_endpoint
from etcd_twisted.peer.handshake import STREAM_PATH, HandshakeError, Hello
from etcd_twisted.peer.inbound import InboundLink
from etcd_twisted.peer.link import LinkRefused, Timing
from etcd_twisted.peer.peer import Peer
from etcd_twisted.peer.port import PeerPortFactory
from etcd_twisted.peer.snapshot import DbSnapshot, RunInThread

#: Messages queued per peer before sends are dropped (etcd's streamBufSize).
BUFFER_SIZE = 4096
DEFAULT_TIMING = Timing()


def _ignore(*args: object) -> None:
    """A callback that does nothing."""


class Transport(Service):
    """Raft message streams and snapshot transfers between this member and its peers."""

    name = "transport"
    log = Logger()

    def __init__(
        self,
        reactor: Any,
        local_id: int,
        cluster_id: int,
        *,
        on_message: Callable[[raft_pb2.Message], None],
        on_unreachable: Callable[[int], None],
        on_snapshot_status: Callable[[int, bool], None],
        on_snapshot: Callable[[raft_pb2.Message, str], Deferred[None] | None],
        open_snapshot: Callable[[], DbSnapshot],
        snapshot_dir: str,
        on_round_trip: Callable[[int, float], None] = _ignore,
        on_removed: Callable[[], None] = _ignore,
        is_removed: Callable[[int], bool] = lambda member_id: False,
        client_tls: ClientTLS | None = None,
        endpoint_for: Callable[[str], IStreamClientEndpoint] | None = None,
        run_in_thread: RunInThread | None = None,
        timing: Timing = DEFAULT_TIMING,
        buffer_size: int = BUFFER_SIZE,
        rng: Random | None = None,
    ) -> None:
        self.clock: IReactorTime = reactor
        self.local_id = local_id
        #: May be set later (a joining member learns it from its peers).
        self.cluster_id = cluster_id
        self.on_message = on_message
        self.on_unreachable = on_unreachable
        self.on_snapshot_status = on_snapshot_status
        self.on_snapshot = on_snapshot
        self.on_round_trip = on_round_trip
        self.on_removed = on_removed
        self.is_removed = is_removed
        self.open_snapshot = open_snapshot
        self.snapshot_dir = snapshot_dir
        self.timing = timing
        self.buffer_size = buffer_size
        self._rng = rng or Random()
        self._endpoint_for = endpoint_for or (lambda url: client_endpoint(reactor, url, client_tls))
        self.run_in_thread: RunInThread = run_in_thread or (
            lambda f, *args: threads.deferToThreadPool(reactor, reactor.getThreadPool(), f, *args)
        )
        self.peers: dict[int, Peer] = {}
        #: Open inbound links (streams and snapshots), and the stream per sender.
        self._links: set[InboundLink] = set()
        self._streams: dict[int, InboundLink] = {}
        self._dirty: set[Peer] = set()
        self._flush_call: IDelayedCall | None = None
        #: Messages dropped because a peer's queue was full.
        self.dropped = 0
        self._removed_reported = False

    # --- membership

    def add_peer(self, peer_id: int, urls: Iterable[str]) -> None:
        """Start talking to a member (no-op if known or if it is this member)."""
        if peer_id == self.local_id or peer_id in self.peers:
            return
        peer = Peer(self, peer_id, list(urls), self.buffer_size)
        self.peers[peer_id] = peer
        if self.running:
            peer.start()

    def update_peer(self, peer_id: int, urls: Iterable[str]) -> None:
        """A member's peer URLs changed."""
        peer = self.peers.get(peer_id)
        if peer is not None:
            peer.update(list(urls))

    def remove_peer(self, peer_id: int) -> Deferred[None]:
        """Stop talking to a member and close its links both ways."""
        for link in [link for link in self._links if link.hello.from_id == peer_id]:
            link.abort()
        peer = self.peers.pop(peer_id, None)
        if peer is None:
            return succeed(None)
        self._dirty.discard(peer)
        return peer.stop()

    # --- status

    def is_active(self, peer_id: int) -> bool:
        """Whether the stream to ``peer_id`` is open."""
        return self.active_since(peer_id) is not None

    def active_since(self, peer_id: int) -> float | None:
        """When (clock seconds) the stream to ``peer_id`` opened, or None if it is down."""
        peer = self.peers.get(peer_id)
        return None if peer is None else peer.active_since

    def round_trip(self, peer_id: int) -> float | None:
        """The last measured round trip to ``peer_id`` in seconds."""
        peer = self.peers.get(peer_id)
        return None if peer is None else peer.round_trip

    # --- sending

    def send(self, messages: Iterable[raft_pb2.Message]) -> None:
        """Queue messages for their peers; they are written on the next reactor turn."""
        unreachable: set[int] = set()
        for message in messages:
            peer = self.peers.get(message.to)
            if peer is None:
                self.log.debug("dropping a message for unknown peer {to}", to=message.to)
                continue
            if message.type == raft_pb2.MsgSnap:
                self._send_snapshot(peer, message)
            elif peer.enqueue(message):
                self._dirty.add(peer)
            else:
                self.dropped += 1
                unreachable.add(peer.id)
        for peer_id in unreachable:
            self.log.warn(
                "dropped raft messages to {peer}: its send buffer is full",
                peer=format_id(peer_id),
            )
            self.on_unreachable(peer_id)
        if self._dirty and (self._flush_call is None or not self._flush_call.active()):
            self._flush_call = self.clock.callLater(0, self._flush)

    def _flush(self) -> None:
        self._flush_call = None
        dirty, self._dirty = self._dirty, set()
        for peer in dirty:
            peer.flush()

    def _send_snapshot(self, peer: Peer, message: raft_pb2.Message) -> None:
        try:
            db = self.open_snapshot()
        except Exception:
            self.log.failure("cannot open the database for a snapshot to {peer}", peer=peer)
            self.on_snapshot_status(peer.id, False)
            return
        peer_id = peer.id

        def sent(_: None) -> None:
            self.log.info("sent a snapshot to {peer}", peer=format_id(peer_id))
            self.on_snapshot_status(peer_id, True)

        def failed(failure: Failure) -> None:
            self.log.warn(
                "sending a snapshot to {peer} failed: {error}",
                peer=format_id(peer_id),
                error=failure.getErrorMessage(),
            )
            self.on_unreachable(peer_id)
            self.on_snapshot_status(peer_id, False)

        peer.send_snapshot(message, db).addCallbacks(sent, failed)

    # --- receiving (the inbound link's ``Host``)

    def server_factory(self, http: Factory) -> Factory:
        """The peer port's factory: raft links here, everything else to ``http``."""
        return PeerPortFactory(_InboundFactory(self), http, self.clock)

    def check_hello(self, hello: Hello) -> None:
        """Refuse a link from another cluster, to another member, or from a removed one."""
        if hello.cluster_id != self.cluster_id:
            raise HandshakeError(412, "cluster ID mismatch")
        if hello.to_id != self.local_id:
            raise HandshakeError(412, "to field mismatch")
        if self.is_removed(hello.from_id):
            raise HandshakeError(410, "removed member")
        if hello.from_id not in self.peers:
            raise HandshakeError(404, "error sender not found")

    def inbound_opened(self, link: InboundLink) -> None:
        """Track a link; keep one stream per sender (a new one replaces the old).

        A sender's stream is news that it is up, so ours to it need not wait out its
        backoff: etcd's receivers dial, so a restarted member hears its leader at once.
        """
        self._links.add(link)
        if link.hello.path != STREAM_PATH:
            return
        old = self._streams.get(link.hello.from_id)
        self._streams[link.hello.from_id] = link
        if old is not None:
            old.abort()
        peer = self.peers.get(link.hello.from_id)
        if peer is not None:
            peer.dial_soon()

    def inbound_closed(self, link: InboundLink) -> None:
        self._links.discard(link)
        if self._streams.get(link.hello.from_id) is link:
            del self._streams[link.hello.from_id]

    def deliver(self, message: raft_pb2.Message) -> None:
        """Hand an inbound message to raft."""
        try:
            self.on_message(message)
        except Exception:
            self.log.failure("raft refused a message from {peer}", peer=message.from_)

    def snapshot_received(self, message: raft_pb2.Message, path: str) -> Deferred[None]:
        """Hand a complete snapshot (message and database file) to the server."""
        self.log.info(
            "received a snapshot at index {index} from {peer}",
            index=message.snapshot.metadata.index,
            peer=format_id(message.from_),
        )
        return maybeDeferred(self.on_snapshot, message, path)

    # --- for peers (``peer.Owner``)

    def hello(self, path: str, to_id: int) -> Hello:
        return Hello(path, self.cluster_id, self.local_id, to_id)

    def endpoint(self, url: str) -> IStreamClientEndpoint:
        return self._endpoint_for(url)

    def retry_policy(self) -> Callable[[int], float]:
        return default_policy(self._rng)

    def peer_unreachable(self, peer_id: int) -> None:
        if peer_id in self.peers:
            self.on_unreachable(peer_id)

    def peer_refused(self, peer_id: int, error: LinkRefused) -> None:
        if error.status == 410:
            # Every peer says so on every redial; the member needs telling once.
            if self._removed_reported:
                return
            self._removed_reported = True
            self.log.error(
                "peer {peer} says this member was removed from the cluster",
                peer=format_id(peer_id),
            )
            self.on_removed()
        elif error.reason == "cluster ID mismatch":
            self.log.error(
                "peer {peer} refused us: cluster ID mismatch (ours {ours}, theirs {theirs})",
                peer=format_id(peer_id),
                ours=format_id(self.cluster_id),
                theirs=format_id(error.cluster_id or 0),
            )
        else:
            self.log.warn(
                "peer {peer} refused the stream: {status} {reason}",
                peer=format_id(peer_id),
                status=error.status,
                reason=error.reason,
            )

    def peer_round_trip(self, peer_id: int, seconds: float) -> None:
        self.on_round_trip(peer_id, seconds)

    # --- Service

    def startService(self) -> None:
        super().startService()
        for peer in self.peers.values():
            peer.start()

    def stopService(self) -> Deferred[None]:
        super().stopService()
        if self._flush_call is not None and self._flush_call.active():
            self._flush_call.cancel()
        self._flush_call = None
        self._dirty.clear()
        for link in list(self._links):
            link.abort()
        stopped = DeferredList([peer.stop() for peer in self.peers.values()])
        return stopped.addCallback(lambda _: None)


class _InboundFactory(Factory):
    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    def buildProtocol(self, addr: object) -> InboundLink:
        return InboundLink(self._transport)
