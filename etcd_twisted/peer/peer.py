"""One remote member as the transport sees it: URLs, outbound queue, stream, snapshot sends."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Protocol

from twisted.internet.defer import Deferred, fail
from twisted.internet.interfaces import IReactorTime, IStreamClientEndpoint
from twisted.logger import Logger
from twisted.python.failure import Failure

from etcd_twisted._pb import raft_pb2
from etcd_twisted.membership.ids import format_id
from etcd_twisted.peer import codec
from etcd_twisted.peer.dialer import Redialer
from etcd_twisted.peer.endpoint import host_header
from etcd_twisted.peer.handshake import SNAPSHOT_PATH, STREAM_PATH, Hello
from etcd_twisted.peer.link import LinkRefused, Timing, factory_for
from etcd_twisted.peer.snapshot import DbSnapshot, RunInThread, SnapshotSender
from etcd_twisted.peer.stream import OutboundStream


class Owner(Protocol):
    """What a peer needs from its transport."""

    clock: IReactorTime
    timing: Timing
    run_in_thread: RunInThread

    def hello(self, path: str, to_id: int) -> Hello: ...
    def endpoint(self, url: str) -> IStreamClientEndpoint: ...
    def retry_policy(self) -> Callable[[int], float]: ...
    def peer_unreachable(self, peer_id: int) -> None: ...
    def peer_refused(self, peer_id: int, error: LinkRefused) -> None: ...
    def peer_round_trip(self, peer_id: int, seconds: float) -> None: ...


class Peer:
    """Keeps a stream open to one member and writes its queued messages in order."""

    log = Logger()

    def __init__(self, owner: Owner, peer_id: int, urls: list[str], buffer_size: int) -> None:
        self.id = peer_id
        self.urls = list(urls)
        self._owner = owner
        self._url_index = 0
        self._buffer_size = buffer_size
        self.queue: deque[raft_pb2.Message] = deque()
        self.active_since: float | None = None
        self.round_trip: float | None = None
        self.sending_snapshot: SnapshotSender | None = None
        self._failures_logged = False
        self._dialer = Redialer(
            owner.clock, self._dial, self._opened, self._dial_failed, owner.retry_policy()
        )

    def __repr__(self) -> str:
        return f"<Peer {format_id(self.id)} {self.urls}>"

    # --- lifecycle

    def start(self) -> None:
        """Start dialing."""
        self._dialer.start()

    def stop(self) -> Deferred[None]:
        """Close the stream and abandon any snapshot send; fires once the stream is closed."""
        self.queue.clear()
        if self.sending_snapshot is not None:
            self.sending_snapshot.release()
            if self.sending_snapshot.transport is not None:
                self.sending_snapshot.abort()
        return self._dialer.stop()

    def update(self, urls: list[str]) -> None:
        """New URLs: if they changed, reconnect using them."""
        if sorted(urls) != sorted(self.urls):
            self.urls = list(urls)
            self._url_index = 0
            self._dialer.redial()

    def dial_soon(self) -> None:
        """The member dialed us, so it is up: if our stream to it is waiting out a backoff,
        dial now (a restarted member would otherwise hear nothing for up to 5 s)."""
        self._dialer.dial_soon()

    # --- messages

    def enqueue(self, message: raft_pb2.Message) -> bool:
        """Queue a message; False (dropped) if the queue is full."""
        if len(self.queue) >= self._buffer_size:
            return False
        self.queue.append(message)
        return True

    def flush(self) -> None:
        """Write every queued message to the stream in one write, if it can take them."""
        link = self._dialer.link
        if link is None or link.paused or not self.queue:
            return
        data = codec.encode_messages(self.queue)
        self.queue.clear()
        link.write(data)

    # --- snapshots

    def send_snapshot(self, message: raft_pb2.Message, db: DbSnapshot) -> Deferred[None]:
        """Stream ``db`` after ``message`` on a link of its own; fires once the peer took it."""
        if self.sending_snapshot is not None:
            db.close()
            return fail(RuntimeError("a snapshot is already being sent to this peer"))
        url = self._url()
        owner = self._owner
        sender = SnapshotSender(
            owner.clock,
            owner.timing,
            owner.hello(SNAPSHOT_PATH, self.id),
            host_header(url),
            message,
            db,
            owner.run_in_thread,
        )
        self.sending_snapshot = sender
        try:
            d = owner.endpoint(url).connect(factory_for(sender))
        except Exception:
            d = fail()
        d.addCallback(lambda _: sender.done)

        def finished(result: object) -> object:
            sender.release()
            self.sending_snapshot = None
            return result

        return d.addBoth(finished)

    # --- the stream

    def _url(self) -> str:
        return self.urls[self._url_index % len(self.urls)]

    def _dial(self) -> Deferred[OutboundStream]:
        url = self._url()
        owner = self._owner
        link = OutboundStream(
            owner.clock, owner.timing, owner.hello(STREAM_PATH, self.id), host_header(url)
        )
        link.on_round_trip = self._round_trip
        try:
            d = owner.endpoint(url).connect(factory_for(link))
        except Exception:
            return fail()
        return d.addCallback(lambda _: link.opened)

    def _opened(self, link: OutboundStream) -> None:
        self.active_since = self._owner.clock.seconds()
        self._failures_logged = False
        self.log.info("peer {peer} active at {url}", peer=format_id(self.id), url=self._url())
        link.on_resume = self.flush
        link.closed.addCallback(self._lost)
        self.flush()

    def _lost(self, _: None) -> None:
        self.active_since = None
        self.round_trip = None
        self.log.warn("lost the stream to peer {peer}", peer=format_id(self.id))
        self._owner.peer_unreachable(self.id)

    def _dial_failed(self, failure: Failure) -> None:
        self._url_index += 1
        if isinstance(failure.value, LinkRefused):
            self._owner.peer_refused(self.id, failure.value)
        elif not self._failures_logged:
            self._failures_logged = True
            self.log.warn(
                "cannot reach peer {peer}: {error}; retrying with backoff",
                peer=format_id(self.id),
                error=failure.getErrorMessage(),
            )
        self._owner.peer_unreachable(self.id)

    def _round_trip(self, seconds: float) -> None:
        self.round_trip = seconds
        self._owner.peer_round_trip(self.id, seconds)
