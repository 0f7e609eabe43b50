"""The accepting end of a peer link: checks who is dialing, then receives messages or a snapshot."""

from __future__ import annotations

from typing import Protocol

from google.protobuf.message import DecodeError
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure

from etcd_twisted._pb import raft_pb2
from etcd_twisted.peer import codec
from etcd_twisted.peer.handshake import (
    SNAPSHOT_PATH,
    HandshakeError,
    HeadReader,
    Hello,
    encode_accept,
    encode_refusal,
    parse_request,
)
from etcd_twisted.peer.link import Link, Timing
from etcd_twisted.peer.snapshot import RunInThread, SnapshotFile


class Host(Protocol):
    """What an inbound link asks of the transport."""

    clock: IReactorTime
    timing: Timing
    cluster_id: int
    snapshot_dir: str
    run_in_thread: RunInThread

    def check_hello(self, hello: Hello) -> None:
        """Raise ``HandshakeError`` to refuse the link."""

    def inbound_opened(self, link: InboundLink) -> None: ...
    def inbound_closed(self, link: InboundLink) -> None: ...
    def deliver(self, message: raft_pb2.Message) -> None: ...
    def snapshot_received(self, message: raft_pb2.Message, path: str) -> Deferred[None]: ...


class InboundLink(Link):
    """Answers the upgrade request, then feeds frames to the host."""

    def __init__(self, host: Host) -> None:
        super().__init__(host.clock, host.timing, dialer=False)
        self._host = host
        self._head = HeadReader()
        self.hello: Hello | None = None
        self._snap_message: raft_pb2.Message | None = None
        self._snap_file: SnapshotFile | None = None

    # --- handshake

    def handshake_data(self, data: bytes) -> None:
        parsed = self._head.feed(data)
        if parsed is None:
            return
        head, rest = parsed
        hello = parse_request(head)
        self._host.check_hello(hello)
        self.hello = hello
        self.write(encode_accept(self._host.cluster_id))
        self._host.inbound_opened(self)
        self.start_frames(rest)

    def handshake_failed(self, error: HandshakeError) -> None:
        self.log.warn(
            "refused a peer link: {status} {reason}", status=error.status, reason=error.reason
        )
        self.write(encode_refusal(error.status, error.reason, self._host.cluster_id))
        self.close()

    # --- frames

    def frame_received(self, kind: int, payload: bytes) -> None:
        assert self.hello is not None
        if self.hello.path == SNAPSHOT_PATH:
            self._snapshot_frame(kind, payload)
        elif kind == codec.MESSAGE:
            message = self._parse(payload)
            if message is not None:
                self._host.deliver(message)
        else:
            self.log.warn("unexpected frame kind {kind} on a message stream", kind=kind)

    def _parse(self, payload: bytes) -> raft_pb2.Message | None:
        try:
            return raft_pb2.Message.FromString(payload)
        except DecodeError:
            self.log.warn("undecodable raft message from a peer; dropping the link")
            self.abort()
            return None

    def _snapshot_frame(self, kind: int, payload: bytes) -> None:
        if self._snap_message is None:
            message = self._parse(payload) if kind == codec.MESSAGE else None
            if message is None or message.type != raft_pb2.MsgSnap:
                self._refuse_snapshot("a snapshot link must start with a MsgSnap")
                return
            self._snap_message = message
            try:
                self._snap_file = SnapshotFile(
                    self._host.snapshot_dir, message.snapshot.metadata.index
                )
            except OSError as e:
                self._refuse_snapshot(f"cannot create the snapshot file: {e}")
            return
        snap_file = self._snap_file
        if snap_file is None:
            self.log.warn("frame kind {kind} after a snapshot's end", kind=kind)
            return
        if kind == codec.SNAP_DATA:
            try:
                snap_file.write(payload)
            except OSError as e:
                self._refuse_snapshot(f"cannot write the snapshot file: {e}")
        elif kind == codec.SNAP_END:
            self._snap_file = None
            message = self._snap_message
            d = self._host.run_in_thread(snap_file.complete)
            d.addCallback(lambda path: self._host.snapshot_received(message, path))
            d.addCallbacks(self._snapshot_taken, self._snapshot_failed)
        else:
            self._refuse_snapshot(f"unexpected frame kind {kind} in a snapshot")

    def _snapshot_taken(self, _: object) -> None:
        if not self.closing:
            self.write(codec.encode(codec.SNAP_OK))
            self.close()

    def _snapshot_failed(self, failure: Failure) -> None:
        self.log.failure("receiving a snapshot failed", failure)
        self._refuse_snapshot(str(failure.value))

    def _refuse_snapshot(self, reason: str) -> None:
        if self._snap_file is not None:
            self._snap_file.discard()
            self._snap_file = None
        if not self.closing:
            self.write(codec.encode(codec.SNAP_FAILED, reason.encode()))
            self.close()

    def link_lost(self, reason: Failure | None) -> None:
        if self._snap_file is not None:
            self._snap_file.discard()
            self._snap_file = None
        if self.hello is not None:
            self._host.inbound_closed(self)
