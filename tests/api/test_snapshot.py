"""Tests for etcd_twisted.api.snapshot: the Snapshot stream's messages, backpressure and auth."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, fail, succeed
from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted._pb import rpc_pb2
from etcd_twisted.api.snapshot import CHUNK_BYTES, fixed_chunks, snapshot_handler
from etcd_twisted.auth.errors import AuthError
from etcd_twisted.backend import Backend, BackendSnapshot, buckets
from etcd_twisted.backend.bbolt_read import BboltReader
from etcd_twisted.grpc import GrpcError, Metadata, StatusCode


class FakeAuthFrontend:
    def __init__(self, admins: set[str | None]) -> None:
        self.admins = admins

    def auth_info(self, token: str | None) -> str | None:
        return token

    def check_admin(self, info: str | None) -> None:
        if info not in self.admins:
            raise AuthError("auth: permission denied")


class RecordingBackend:
    """The backend, remembering the snapshots taken from it."""

    def __init__(self, backend: Backend) -> None:
        self._backend = backend
        self.snapshots: list[BackendSnapshot] = []

    def snapshot(self) -> BackendSnapshot:
        snap = self._backend.snapshot()
        self.snapshots.append(snap)
        return snap


class FakeState:
    """The member state's backend (``EtcdServer.state.backend``)."""

    def __init__(self, backend: RecordingBackend) -> None:
        self.backend = backend


class FakeServer:
    leader_id = 1

    def __init__(self, backend: RecordingBackend, admins: set[str | None]) -> None:
        self.state = FakeState(backend)
        self.auth_frontend = FakeAuthFrontend(admins)


class FakeContext:
    def __init__(self, token: str | None = None) -> None:
        self.metadata = Metadata([("token", token)] if token else [])


class FakeStream:
    """Collects messages; ``hold`` makes each send wait until ``release``."""

    def __init__(self) -> None:
        self.messages: list[rpc_pb2.SnapshotResponse] = []
        self.hold = False
        self.waiting: list[Deferred[None]] = []
        self.broken = False

    def send(self, message: rpc_pb2.SnapshotResponse) -> Deferred[None]:
        if self.broken:
            return fail(GrpcError(StatusCode.CANCELLED, "context canceled"))
        self.messages.append(message)
        if not self.hold:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self.waiting.append(d)
        return d

    def release(self) -> None:
        waiting, self.waiting = self.waiting, []
        for d in waiting:
            d.callback(None)


class SnapshotHandlerTests(SynchronousTestCase):
    def setUp(self) -> None:
        path = os.path.join(self.mktemp(), "db")
        self.backend = Backend(path)
        self.addCleanup(self.backend.close)
        for i in range(3000):
            self.backend.batch_tx.put(buckets.KEY, b"%017d" % i, bytes([i % 256]) * 300)
        self.backend.set_consistent_index(42, 3)
        self.thread_calls = 0
        self.recording = RecordingBackend(self.backend)

    def run_in_thread(self, f: Callable[[], Any]) -> Deferred[Any]:
        self.thread_calls += 1
        return succeed(f())

    def start(
        self, stream: FakeStream, token: str | None = None, admins: set[str | None] | None = None
    ) -> Deferred[None]:
        server = FakeServer(self.recording, admins if admins is not None else {None})
        handler = snapshot_handler(server, self.run_in_thread)
        return handler(rpc_pb2.SnapshotRequest(), FakeContext(token), stream)

    def test_messages(self) -> None:
        """32 KiB blobs with the bytes still to come, then the sha256 with remaining 0; the
        blobs make a bbolt file holding the backend (the pending batch committed)."""
        stream = FakeStream()
        self.successResultOf(self.start(stream))
        *data, last = stream.messages
        blob = b"".join(m.blob for m in data)
        self.assertEqual([len(m.blob) for m in data[:-1]], [CHUNK_BYTES] * (len(data) - 1))
        self.assertLessEqual(len(data[-1].blob), CHUNK_BYTES)
        remaining = [len(blob) - sum(len(m.blob) for m in data[: i + 1]) for i in range(len(data))]
        self.assertEqual([m.remaining_bytes for m in data], remaining)
        self.assertEqual((last.remaining_bytes, last.blob), (0, hashlib.sha256(blob).digest()))
        self.assertFalse(any(m.HasField("header") for m in stream.messages))
        path = self.mktemp()
        with open(path, "wb") as f:
            f.write(blob + last.blob)
        with BboltReader(path) as r:
            got = {name: dict(pairs) for name, pairs in r.buckets()}
        self.assertEqual(len(got[buckets.KEY]), 3000)
        self.assertEqual(got[buckets.META][b"consistent_index"], (42).to_bytes(8, "big"))
        (snap,) = self.recording.snapshots
        self.assertRaises(ValueError, list, snap.buckets())  # closed

    def test_backpressure(self) -> None:
        """No new batch is made while sent messages wait for the client's window."""
        stream = FakeStream()
        stream.hold = True
        d = self.start(stream)
        calls = self.thread_calls
        self.assertEqual(len(stream.messages), 1)
        self.assertNoResult(d)
        for _ in range(5):
            stream.release()
        self.assertEqual(self.thread_calls, calls)  # the first batch is not used up yet
        while not d.called:
            stream.release()
        self.successResultOf(d)
        self.assertGreater(self.thread_calls, calls)

    def test_writes_during_the_stream_are_not_in_it(self) -> None:
        """The file is the database as of the call: later commits change nothing in it."""
        stream = FakeStream()
        stream.hold = True
        d = self.start(stream)
        for i in range(3000, 6000):
            self.backend.batch_tx.put(buckets.KEY, b"%017d" % i, b"later")
        self.backend.force_commit()
        while not d.called:
            stream.release()
        self.successResultOf(d)
        path = self.mktemp()
        with open(path, "wb") as f:
            f.write(b"".join(m.blob for m in stream.messages[:-1]))
        with BboltReader(path) as r:
            keys = dict(r.buckets())[buckets.KEY]
            self.assertEqual(sum(1 for _ in keys), 3000)

    def test_root_only_with_auth(self) -> None:
        """A user without the root role gets etcd's unconverted auth error (UNKNOWN)."""
        stream = FakeStream()
        failure = self.failureResultOf(
            self.start(stream, token="alice", admins={"root"}), GrpcError
        )
        self.assertEqual(
            (failure.value.code, failure.value.message),
            (StatusCode.UNKNOWN, "auth: permission denied"),
        )
        self.assertEqual((stream.messages, self.recording.snapshots), ([], []))
        self.successResultOf(self.start(stream, token="root", admins={"root"}))

    def test_no_leader(self) -> None:
        """With ``hasleader`` asked and no leader, the call fails as etcd's: "no leader"."""
        server = FakeServer(self.recording, {None})
        server.leader_id = 0
        ctx = FakeContext()
        ctx.metadata = Metadata([("hasleader", "true")])
        stream = FakeStream()
        d = snapshot_handler(server, self.run_in_thread)(rpc_pb2.SnapshotRequest(), ctx, stream)
        failure = self.failureResultOf(d, GrpcError)
        self.assertEqual(
            (failure.value.code, failure.value.message),
            (StatusCode.UNAVAILABLE, "etcdserver: no leader"),
        )
        self.assertEqual(self.recording.snapshots, [])

    def test_cancelled_stream_releases_the_snapshot(self) -> None:
        """A stream that breaks ends the call and releases the read transaction."""
        stream = FakeStream()
        stream.broken = True
        self.failureResultOf(self.start(stream), GrpcError)
        (snap,) = self.recording.snapshots
        self.assertRaises(ValueError, list, snap.buckets())  # closed

    def test_fixed_chunks(self) -> None:
        """Pieces of any size are re-cut into fixed chunks, the last one shorter."""
        self.assertEqual(
            list(fixed_chunks([b"abc", b"", b"defgh", b"i"], 4)), [b"abcd", b"efgh", b"i"]
        )
        self.assertEqual(list(fixed_chunks([b"abcd"], 4)), [b"abcd"])
        self.assertEqual(list(fixed_chunks([], 4)), [])
