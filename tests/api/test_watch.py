"""Tests for etcd_twisted.api.watch: the Watch call driven through fake call objects."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted._pb import rpc_pb2
from etcd_twisted._pb.kv_pb2 import Event
from etcd_twisted.api import watch
from etcd_twisted.grpc import GrpcError, Registry, StatusCode
from etcd_twisted.mvcc.kvstore import KVStore
from etcd_twisted.mvcc.watchable_store import WatchableStore
from tests.grpc.h2client import Harness
from tests.support.memory_backend import MemoryBackend

CREATE = rpc_pb2.WatchCreateRequest


class FakeBackend:
    """A store, a clock, and headers with fixed ids."""

    def __init__(self) -> None:
        self.clock = Clock()
        self.kv = KVStore(MemoryBackend())
        self.watchable = WatchableStore(self.kv)

    def header(self, revision: int = 0) -> rpc_pb2.ResponseHeader:
        return rpc_pb2.ResponseHeader(
            cluster_id=11, member_id=22, revision=revision or self.kv.current_rev, raft_term=3
        )

    def put(self, key: bytes, value: bytes = b"v") -> int:
        txn = self.kv.write()
        txn.put(key, value)
        return txn.end()


class FakeStream:
    """Records sends; while ``hold`` is set, sends are not accepted until released."""

    def __init__(self) -> None:
        self.sent: list[rpc_pb2.WatchResponse] = []
        self.hold = False
        self.waiting: list[Deferred[None]] = []
        self.on_message: Any = None
        self.on_end: Any = None

    def set_receiver(self, on_message: Any, on_end: Any = None) -> None:
        self.on_message, self.on_end = on_message, on_end

    def send(self, message: rpc_pb2.WatchResponse) -> Deferred[None]:
        self.sent.append(message)
        if not self.hold:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self.waiting.append(d)
        return d

    def release(self) -> None:
        self.hold = False
        waiting, self.waiting = self.waiting, []
        for d in waiting:
            d.callback(None)

    def finish(self, error: GrpcError | None = None) -> None:
        raise AssertionError("the watch call never finishes by itself")

    def pop(self) -> list[rpc_pb2.WatchResponse]:
        sent, self.sent = self.sent, []
        return sent


class FakeContext:
    def __init__(self) -> None:
        self.cancelled: Deferred[GrpcError] = Deferred()

    def when_cancelled(self) -> Deferred[GrpcError]:
        return self.cancelled


class Call:
    """One Watch call on a registry built by ``watch.register``."""

    def __init__(self, backend: FakeBackend | None = None, **register_kw: Any) -> None:
        self.backend = backend or FakeBackend()
        registry = Registry()
        watch.register(registry, self.backend, **register_kw)
        self.ctx = FakeContext()
        self.stream = FakeStream()
        registry.lookup(watch.PATH).handler(self.ctx, self.stream)

    def request(self, **kw: Any) -> Deferred[None] | None:
        return self.stream.on_message(rpc_pb2.WatchRequest(**kw))

    def create(self, key: bytes, **kw: Any) -> Deferred[None] | None:
        return self.request(create_request=CREATE(key=key, **kw))


class WatchCallTests(SynchronousTestCase):
    def test_created_with_header_then_events(self) -> None:
        """created comes first with a full header; each write then gets a response."""
        call = Call()
        call.create(b"a")
        rev = call.backend.put(b"a", b"1")
        created, change = call.stream.pop()
        self.assertEqual((created.watch_id, created.created), (0, True))
        h = created.header
        self.assertEqual((h.cluster_id, h.member_id, h.raft_term, h.revision), (11, 22, 3, 1))
        self.assertEqual((change.watch_id, change.header.revision), (0, rev))
        self.assertEqual([(e.kv.key, e.kv.value) for e in change.events], [(b"a", b"1")])

    def test_ids_from_zero_and_chosen(self) -> None:
        """Server ids count from 0 per call; a client id in use is refused with etcd's reason."""
        call = Call()
        call.create(b"a")
        call.create(b"a", watch_id=5)
        call.create(b"a", watch_id=5)
        call.create(b"a")
        sent = call.stream.pop()
        self.assertEqual(
            [(r.watch_id, r.created, r.canceled) for r in sent][:2],
            [(0, True, False), (5, True, False)],
        )
        refused = sent[2]
        self.assertEqual(
            (refused.watch_id, refused.created, refused.canceled, refused.cancel_reason),
            (-1, True, True, "mvcc: duplicate watch ID provided on the WatchStream"),
        )
        self.assertEqual(sent[3].watch_id, 1)
        self.assertEqual(Call().stream.pop(), [])

    def test_negative_start_without_compaction_is_from_now(self) -> None:
        """A negative start on a store never compacted watches from the next revision (etcd 3.5)."""
        call = Call()
        call.backend.put(b"a", b"old")
        call.create(b"a", start_revision=-1)
        call.backend.watchable.sync_watchers()
        call.backend.put(b"a", b"new")
        created, change = call.stream.pop()
        self.assertEqual((created.watch_id, created.created, created.canceled), (0, True, False))
        self.assertEqual([e.kv.value for e in change.events], [b"new"])

    def test_negative_start_after_compaction_is_compacted(self) -> None:
        """A negative start once compacted is created, then canceled with compact_revision."""
        call = Call()
        for _ in range(3):
            call.backend.put(b"a")
        call.backend.kv.compact(3)
        call.create(b"a", start_revision=-1)
        call.backend.watchable.sync_watchers()
        created, canceled = call.stream.pop()
        self.assertEqual((created.watch_id, created.created, created.canceled), (0, True, False))
        self.assertEqual(
            (canceled.watch_id, canceled.canceled, canceled.compact_revision), (0, True, 3)
        )

    def test_key_range_forms(self) -> None:
        """No key is b"\\0"; range_end b"\\0" is from-key; an empty range_end is the key alone."""
        call = Call()
        call.create(b"", range_end=b"\0")
        call.create(b"b", range_end=b"\0")
        call.create(b"b")
        call.stream.pop()
        call.backend.put(b"a")
        call.backend.put(b"b")
        got = sorted((r.watch_id, r.events[0].kv.key) for r in call.stream.pop())
        self.assertEqual(got, [(0, b"a"), (0, b"b"), (1, b"b"), (2, b"b")])

    def test_history_prev_kv_and_filters(self) -> None:
        """A start in the past catches up when the store syncs; prev_kv and filters apply."""
        call = Call()
        call.backend.put(b"a", b"1")
        call.backend.put(b"a", b"2")
        call.create(b"a", start_revision=2, prev_kv=True, filters=[CREATE.NODELETE])
        call.backend.watchable.sync_watchers()
        created, history = call.stream.pop()
        self.assertEqual(
            [(e.type, e.kv.value, e.prev_kv.value) for e in history.events],
            [(Event.PUT, b"1", b""), (Event.PUT, b"2", b"1")],
        )
        self.assertEqual(history.header.revision, 3)

    def test_cancel(self) -> None:
        """Cancel answers canceled; an unknown id is ignored."""
        call = Call()
        call.create(b"a")
        call.request(cancel_request=rpc_pb2.WatchCancelRequest(watch_id=0))
        call.request(cancel_request=rpc_pb2.WatchCancelRequest(watch_id=7))
        call.backend.put(b"a")
        created, canceled = call.stream.pop()
        self.assertEqual((canceled.watch_id, canceled.canceled), (0, True))

    def test_compacted_start(self) -> None:
        """A start below the compacted revision is canceled with compact_revision, header revision 0."""
        call = Call()
        for _ in range(3):
            call.backend.put(b"a")
        call.backend.kv.compact(3)
        call.create(b"a", start_revision=1)
        call.backend.watchable.sync_watchers()
        created, canceled = call.stream.pop()
        self.assertEqual((canceled.canceled, canceled.compact_revision), (True, 3))
        self.assertEqual(created.header.revision, 4)
        # etcd leaves the revision out of a compacted watch's header.
        self.assertEqual(canceled.header.revision, 0)
        self.assertEqual(canceled.header.member_id, 22)

    def test_progress_request(self) -> None:
        """A progress request is answered with watch id -1 and the current revision."""
        call = Call()
        call.create(b"a")
        call.backend.put(b"b")
        call.request(progress_request=rpc_pb2.WatchProgressRequest())
        created, progress = call.stream.pop()
        self.assertEqual(
            (progress.watch_id, progress.header.revision, len(progress.events)), (-1, 2, 0)
        )

    def test_progress_notify(self) -> None:
        """progress_notify watchers idle for the interval get an empty response."""
        call = Call(progress_interval=5.0)
        call.create(b"a", progress_notify=True)
        call.stream.pop()
        call.backend.clock.advance(4.9)
        self.assertEqual(call.stream.pop(), [])
        call.backend.put(b"b")
        call.backend.clock.advance(0.1)
        (r,) = call.stream.pop()
        self.assertEqual((r.watch_id, r.header.revision, len(r.events)), (0, 2, 0))

    def test_progress_interval_floor(self) -> None:
        """An interval below 100 ms is raised to it; 0 means etcd's 10 minutes."""
        call = Call(progress_interval=0.01)
        call.create(b"a", progress_notify=True)
        call.stream.pop()
        call.backend.clock.advance(0.05)
        self.assertEqual(call.stream.pop(), [])
        call.backend.clock.advance(0.05)
        self.assertEqual(len(call.stream.pop()), 1)
        slow = Call(progress_interval=0)
        slow.create(b"a", progress_notify=True)
        slow.stream.pop()
        slow.backend.clock.advance(599)
        self.assertEqual(slow.stream.pop(), [])
        slow.backend.clock.advance(1)
        self.assertEqual(len(slow.stream.pop()), 1)

    def test_backpressure(self) -> None:
        """While sends are not accepted, the watch stream is blocked and requests wait;
        afterwards every event arrives once, in order."""
        call = Call()
        call.create(b"a")
        call.stream.pop()
        call.stream.hold = True
        first = call.backend.put(b"a", b"0")
        self.assertTrue(call.backend.watchable.victims == {} and len(call.stream.sent) == 1)
        revs = [first] + [call.backend.put(b"a", b"%d" % i) for i in range(1, 5)]
        self.assertEqual(len(call.stream.sent), 1)
        self.assertEqual(len(call.backend.watchable.victims), 1)
        reader = call.request(progress_request=rpc_pb2.WatchProgressRequest())
        self.assertIsInstance(reader, Deferred)
        self.assertFalse(reader.called)
        call.stream.release()
        self.assertTrue(reader.called)
        while call.backend.watchable.sync_watchers():
            pass
        sent = call.stream.pop()
        self.assertEqual([e.kv.mod_revision for r in sent for e in r.events], revs)
        self.assertEqual(sent[-1].watch_id, -1)
        self.assertEqual(sent[-1].header.revision, revs[-1])

    def test_cancelled_call_cleans_up(self) -> None:
        """When the call is cancelled its watchers are gone and the timer stops."""
        call = Call(progress_interval=1.0)
        call.create(b"a", progress_notify=True)
        call.create(b"a", start_revision=1)
        store = call.backend.watchable
        call.ctx.cancelled.callback(GrpcError(StatusCode.CANCELLED, "context canceled"))
        self.assertEqual((len(store.synced), len(store.unsynced)), (0, 0))
        self.assertEqual(call.backend.clock.getDelayedCalls(), [])

    def test_open_calls_counted(self) -> None:
        """Each open call is one watch stream in the store; a cancelled call is no longer one."""
        backend = FakeBackend()
        first, second = Call(backend), Call(backend)
        self.assertEqual(len(backend.watchable.streams), 2)
        first.ctx.cancelled.callback(GrpcError(StatusCode.CANCELLED, "context canceled"))
        self.assertEqual(len(backend.watchable.streams), 1)
        second.ctx.cancelled.callback(GrpcError(StatusCode.CANCELLED, "context canceled"))
        self.assertEqual(backend.watchable.streams, set())

    def test_half_close_keeps_watching(self) -> None:
        """The client's half-close does not end the watch (as in etcd)."""
        call = Call()
        call.create(b"a")
        self.assertIsNone(call.stream.on_end)
        call.backend.put(b"a")
        self.assertEqual(len(call.stream.pop()), 2)

    def test_fragment(self) -> None:
        """A fragmenting watch splits a large revision into parts; others never split."""
        call = Call(max_response_bytes=300)
        call.create(b"k", range_end=b"l", fragment=True)
        call.create(b"k", range_end=b"l")
        call.stream.pop()
        txn = call.backend.kv.write()
        for i in range(10):
            txn.put(b"k%d" % i, b"x" * 40)
        txn.end()
        sent = call.stream.pop()
        parts = [r for r in sent if r.watch_id == 0]
        self.assertGreater(len(parts), 1)
        self.assertEqual([r.fragment for r in parts], [True] * (len(parts) - 1) + [False])
        self.assertTrue(all(r.ByteSize() < 300 for r in parts))
        self.assertEqual(sum(len(r.events) for r in parts), 10)
        whole = [r for r in sent if r.watch_id == 1]
        self.assertEqual([len(r.events) for r in whole], [10])

    def test_fragments_keep_one_event_each_at_least(self) -> None:
        """An event larger than the limit goes alone in its part."""
        message = rpc_pb2.WatchResponse(watch_id=1)
        for i in range(3):
            message.events.add().kv.value = b"x" * (100 * (i + 1))
        parts = watch.fragments(message, 50)
        self.assertEqual([len(p.events) for p in parts], [1, 1, 1])
        self.assertEqual(watch.fragments(message, 10_000), [message])


class OverGrpcTests(SynchronousTestCase):
    """The Watch call on the real gRPC protocol, with an h2 client."""

    def setUp(self) -> None:
        self.backend = FakeBackend()
        registry = Registry()
        watch.register(registry, self.backend)
        self.h = Harness(registry, auto_ack=False)
        self.sid = self.h.start(watch.PATH)
        self.store = self.backend.watchable

    def received(self) -> list[rpc_pb2.WatchResponse]:
        return [rpc_pb2.WatchResponse.FromString(m) for m in self.h.responses[self.sid].messages]

    def open_window(self) -> None:
        self.h.client.increment_flow_control_window(1 << 24)
        self.h.client.increment_flow_control_window(1 << 24, self.sid)
        self.h.exchange()

    def test_watch_and_flow_control(self) -> None:
        """Events stop at the client's window, the watcher waits in history, and all
        arrive once, in order, when the window opens."""
        self.h.send(self.sid, rpc_pb2.WatchRequest(create_request=CREATE(key=b"k")))
        revs = [self.backend.put(b"k", b"x" * 10_000) for _ in range(20)]
        self.h.exchange()
        self.assertLess(len(self.received()), 21)
        (ws,) = {w.stream for w in self.store.victims}
        self.assertEqual(ws.pending_events, 0)
        self.open_window()
        for _ in range(10):
            self.store.sync_watchers()
            self.h.exchange()
            self.open_window()
        created, *events = self.received()
        self.assertTrue(created.created)
        self.assertEqual([e.kv.mod_revision for r in events for e in r.events], revs)
        self.assertFalse(ws.blocked)

    def test_reset_cancels_watchers(self) -> None:
        """RST_STREAM from the client removes the call's watchers."""
        self.h.send(self.sid, rpc_pb2.WatchRequest(create_request=CREATE(key=b"k")))
        self.assertEqual(len(self.store.synced), 1)
        self.h.client.reset_stream(self.sid)
        self.h.exchange()
        self.assertEqual(len(self.store.synced), 0)
