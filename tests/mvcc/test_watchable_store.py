"""Tests for etcd_twisted.mvcc.watchable_store and watch_stream: the watch life
cycle, catching up from history, compaction, prev_kv, filters, progress, and
slow consumers."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted._pb.kv_pb2 import Event
from etcd_twisted.mvcc.kvstore import KVStore
from etcd_twisted.mvcc.watchable_store import WatchableStore
from etcd_twisted.mvcc.watcher import (
    DuplicateWatchIdError,
    EmptyWatcherRangeError,
    WatcherNotExistError,
    WatcherState,
    WatchResponse,
)
from tests.support.memory_backend import MemoryBackend


class Harness:
    """A store, one stream, and an owner that takes responses as they come."""

    def __init__(self, max_pending_events: int = 1024) -> None:
        self.kv = KVStore(MemoryBackend())
        self.store = WatchableStore(self.kv)
        self.stream = self.store.new_watch_stream(max_pending_events)
        self.got: list[WatchResponse] = []
        self.eager = True
        self.stream.on_ready = self._ready

    def _ready(self) -> None:
        if self.eager:
            self.got.extend(self.stream.take())

    def put(self, *pairs: tuple[bytes, bytes]) -> int:
        txn = self.kv.write()
        for key, value in pairs:
            txn.put(key, value)
        return txn.end()

    def delete(self, key: bytes, end: bytes | None = None) -> int:
        txn = self.kv.write()
        txn.delete_range(key, end)
        return txn.end()

    def pop(self) -> list[WatchResponse]:
        got, self.got = self.got, []
        return got

    def events(self) -> list[tuple[int, bytes, int]]:
        """(type, key, mod revision) of every event taken so far, then forgets them."""
        return [(e.type, e.kv.key, e.kv.mod_revision) for r in self.pop() for e in r.events]

    def sync_all(self, max_events: int = 1000) -> None:
        while self.store.sync_watchers(max_events):
            pass


PUT, DELETE = Event.PUT, Event.DELETE


class WatchLifeCycleTests(SynchronousTestCase):
    def test_created_then_events(self) -> None:
        """A watch answers ``created`` at the current revision, then one response per write."""
        h = Harness()
        h.put((b"x", b"0"))
        wid = h.stream.watch(b"a")
        h.put((b"a", b"1"))
        h.put((b"b", b"2"))
        created, change = h.pop()
        self.assertEqual((created.watch_id, created.created, created.revision), (wid, True, 2))
        self.assertEqual((change.watch_id, change.revision, change.created), (wid, 3, False))
        self.assertEqual(
            [(e.type, e.kv.key, e.kv.value) for e in change.events], [(PUT, b"a", b"1")]
        )

    def test_ranges(self) -> None:
        """Key, range, prefix, from-key (``b"\\0"``) and everything each see their keys."""
        h = Harness()
        ids = {
            h.stream.watch(b"b"): [b"b"],
            h.stream.watch(b"b", b"c"): [b"b", b"ba"],
            h.stream.watch(b"b", b"\0"): [b"b", b"ba", b"c"],
            h.stream.watch(b"\0", b"\0"): [b"a", b"b", b"ba", b"c"],
        }
        h.pop()
        for key in (b"a", b"b", b"ba", b"c"):
            h.put((key, b"v"))
        seen: dict[int, list[bytes]] = {}
        for r in h.pop():
            seen.setdefault(r.watch_id, []).extend(e.kv.key for e in r.events)
        self.assertEqual(seen, ids)

    def test_one_response_per_revision(self) -> None:
        """A write touching several watched keys arrives as one response."""
        h = Harness()
        h.stream.watch(b"a", b"z")
        h.pop()
        h.put((b"a", b"1"), (b"b", b"2"), (b"c", b"3"))
        (r,) = h.pop()
        self.assertEqual([e.kv.key for e in r.events], [b"a", b"b", b"c"])

    def test_ids(self) -> None:
        """Ids count from 0, skip ids the client chose, and a chosen id in use is refused."""
        h = Harness()
        self.assertEqual(h.stream.watch(b"a", watch_id=1), 1)
        self.assertEqual(h.stream.watch(b"a"), 0)
        self.assertEqual(h.stream.watch(b"a"), 2)
        self.assertRaises(DuplicateWatchIdError, h.stream.watch, b"a", watch_id=2)
        self.assertEqual(
            str(DuplicateWatchIdError()), "mvcc: duplicate watch ID provided on the WatchStream"
        )

    def test_empty_range_refused(self) -> None:
        """An end at or below the key is an empty range; nothing is queued."""
        h = Harness()
        self.assertRaises(EmptyWatcherRangeError, h.stream.watch, b"b", b"a")
        self.assertRaises(EmptyWatcherRangeError, h.stream.watch, b"b", b"b")
        self.assertEqual(h.pop(), [])

    def test_refuse(self) -> None:
        """A refusal is queued as created and canceled for watch id -1, with the reason."""
        h = Harness()
        h.stream.refuse("etcdserver: permission denied")
        (r,) = h.pop()
        self.assertEqual(
            (r.watch_id, r.created, r.canceled, r.cancel_reason),
            (-1, True, True, "etcdserver: permission denied"),
        )

    def test_cancel(self) -> None:
        """Cancel answers ``canceled``, stops events, and frees the watcher."""
        h = Harness()
        wid = h.stream.watch(b"a")
        h.stream.cancel(wid)
        h.put((b"a", b"1"))
        created, canceled = h.pop()
        self.assertEqual((canceled.watch_id, canceled.canceled), (wid, True))
        self.assertEqual(len(h.store.synced), 0)
        self.assertRaises(WatcherNotExistError, h.stream.cancel, wid)

    def test_close(self) -> None:
        """Closing a stream drops its watchers, in every group, and its queue."""
        h = Harness()
        h.put((b"a", b"1"))
        h.eager = False
        h.stream.watch(b"a")
        h.stream.watch(b"a", start_rev=1)
        h.stream.set_blocked(True)
        h.put((b"a", b"2"))
        h.stream.close()
        self.assertEqual((len(h.store.synced), len(h.store.unsynced), h.store.victims), (0, 0, {}))
        self.assertEqual(h.stream.take(), [])
        self.assertRaises(RuntimeError, h.stream.watch, b"a")

    def test_open_streams(self) -> None:
        """The store knows its open streams; closing one (even twice) forgets it."""
        h = Harness()
        other = h.store.new_watch_stream()
        self.assertEqual(h.store.streams, {h.stream, other})
        h.stream.close()
        h.stream.close()
        self.assertEqual(h.store.streams, {other})


class HistoryTests(SynchronousTestCase):
    def test_past_start_catches_up(self) -> None:
        """A watch from the past is unsynced and gets the history when the store syncs."""
        h = Harness()
        h.put((b"a", b"1"))
        h.delete(b"a")
        h.put((b"b", b"x"))
        wid = h.stream.watch(b"a", start_rev=2)
        (w,) = h.store.unsynced
        self.assertIs(w.state, WatcherState.UNSYNCED)
        h.pop()
        self.assertEqual(h.store.sync_watchers(), 0)
        (r,) = h.pop()
        self.assertEqual((r.watch_id, r.revision), (wid, 4))
        self.assertEqual([(e.type, e.kv.mod_revision) for e in r.events], [(PUT, 2), (DELETE, 3)])
        self.assertIs(w.state, WatcherState.SYNCED)
        h.put((b"a", b"2"))
        self.assertEqual(h.events(), [(PUT, b"a", 5)])

    def test_chunks_of_whole_revisions(self) -> None:
        """History comes in chunks of about max_events records, never splitting a revision."""
        h = Harness()
        h.put((b"a", b"1"))
        h.put((b"a", b"2"), (b"b", b"2"), (b"c", b"2"))
        h.put((b"c", b"3"))
        h.stream.watch(b"\0", b"\0", start_rev=1)
        h.pop()
        self.assertEqual(h.store.sync_watchers(max_events=2), 1)
        first = h.pop()
        self.assertEqual([[e.kv.mod_revision for e in r.events] for r in first], [[2, 3, 3, 3]])
        self.assertEqual(first[0].revision, 3)
        self.assertEqual(h.store.sync_watchers(max_events=2), 0)
        self.assertEqual(h.events(), [(PUT, b"c", 4)])

    def test_future_start(self) -> None:
        """A watch from a future revision is synced and skips the revisions before it."""
        h = Harness()
        h.stream.watch(b"a", start_rev=3)
        h.pop()
        h.put((b"a", b"1"))
        h.put((b"a", b"2"))
        self.assertEqual(h.events(), [(PUT, b"a", 3)])

    def test_start_before_compaction_is_canceled(self) -> None:
        """A start below the compacted revision ends in canceled with compact_revision."""
        h = Harness()
        for v in (b"1", b"2", b"3"):
            h.put((b"a", v))
        h.kv.compact(3)
        wid = h.stream.watch(b"a", start_rev=2)
        h.store.sync_watchers()
        created, canceled = h.pop()
        self.assertTrue(created.created)
        self.assertEqual(
            (canceled.watch_id, canceled.canceled, canceled.compact_revision), (wid, True, 3)
        )
        self.assertEqual(h.stream.watchers, {})

    def test_start_at_compaction_is_allowed(self) -> None:
        """A start at the compacted revision itself still works (as in etcd)."""
        h = Harness()
        for v in (b"1", b"2", b"3"):
            h.put((b"a", v))
        h.kv.compact(3)
        while not h.kv.compaction_step():
            pass
        h.stream.watch(b"a", start_rev=3)
        h.store.sync_watchers()
        self.assertEqual(h.events(), [(PUT, b"a", 3), (PUT, b"a", 4)])

    def test_compaction_while_catching_up(self) -> None:
        """A watcher still behind when its next revision is compacted away is canceled."""
        h = Harness()
        for i in range(6):
            h.put((b"a", b"%d" % i))
        h.stream.watch(b"a", start_rev=2)
        h.store.sync_watchers(max_events=2)
        self.assertEqual(h.events(), [(PUT, b"a", 2), (PUT, b"a", 3)])
        h.kv.compact(6)
        self.assertEqual(h.store.sync_watchers(max_events=2), 0)
        (r,) = h.pop()
        self.assertEqual((r.canceled, r.compact_revision), (True, 6))


class PrevKvAndFilterTests(SynchronousTestCase):
    def test_prev_kv(self) -> None:
        """prev_kv carries the key's previous version, live and from history; none on creation."""
        h = Harness()
        h.put((b"a", b"1"))
        h.put((b"a", b"2"))
        live = h.stream.watch(b"a", prev_kv=True)
        past = h.stream.watch(b"a", start_rev=2, prev_kv=True)
        h.delete(b"a")
        h.store.sync_watchers()
        prevs: dict[int, list[bytes | None]] = {}
        for r in h.pop():
            for e in r.events:
                prev = e.prev_kv.value if e.HasField("prev_kv") else None
                prevs.setdefault(r.watch_id, []).append(prev)
        self.assertEqual(prevs, {live: [b"2"], past: [None, b"1", b"2"]})

    def test_no_prev_kv_unless_asked(self) -> None:
        """Without prev_kv, events carry none."""
        h = Harness()
        h.put((b"a", b"1"))
        h.stream.watch(b"a")
        h.put((b"a", b"2"))
        (r,) = h.pop()[1:]
        self.assertFalse(r.events[0].HasField("prev_kv"))

    def test_filters(self) -> None:
        """Filtered event types are left out; a response left empty is not sent."""
        h = Harness()
        no_put = h.stream.watch(b"a", filters=[PUT])
        no_delete = h.stream.watch(b"a", filters=[DELETE])
        h.pop()
        h.put((b"a", b"1"))
        h.delete(b"a")
        self.assertEqual(
            [(r.watch_id, [e.type for e in r.events]) for r in h.pop()],
            [(no_delete, [PUT]), (no_put, [DELETE])],
        )


class ProgressTests(SynchronousTestCase):
    def test_progress_request_when_synced(self) -> None:
        """A progress request is answered at once, id -1, when every watcher is synced."""
        h = Harness()
        h.put((b"a", b"1"))
        h.stream.watch(b"a")
        h.pop()
        h.stream.request_progress()
        (r,) = h.pop()
        self.assertEqual((r.watch_id, r.revision, r.events), (-1, 2, []))

    def test_progress_request_waits_for_sync(self) -> None:
        """With a watcher behind, the reply comes after its history, once it is synced."""
        h = Harness()
        h.put((b"a", b"1"))
        h.put((b"a", b"2"))
        h.stream.watch(b"a", start_rev=1)
        h.pop()
        h.stream.request_progress()
        self.assertEqual(h.pop(), [])
        h.store.sync_watchers(max_events=1)
        self.assertEqual([r.watch_id for r in h.pop()], [0])
        h.store.sync_watchers(max_events=1)
        self.assertEqual([(r.watch_id, r.revision) for r in h.pop()], [(0, 3), (-1, 3)])

    def test_progress_request_waits_for_future_start(self) -> None:
        """A watcher starting in the future holds the reply until the store gets there."""
        h = Harness()
        h.stream.watch(b"a", start_rev=3)
        h.stream.request_progress()
        h.put((b"b", b"1"))
        self.assertEqual([r.watch_id for r in h.pop()], [0])
        h.put((b"b", b"2"))
        self.assertEqual([(r.watch_id, r.revision) for r in h.pop()], [(-1, 3)])

    def test_progress_notify_when_idle(self) -> None:
        """A tick notifies progress_notify watchers that are synced and got no events since."""
        h = Harness()
        quiet = h.stream.watch(b"a", progress_notify=True)
        busy = h.stream.watch(b"b", progress_notify=True)
        h.stream.watch(b"c")
        h.stream.watch(b"d", progress_notify=True, start_rev=1)
        h.put((b"b", b"1"))
        h.pop()
        h.stream.progress_tick()
        self.assertEqual([(r.watch_id, r.revision, r.events) for r in h.pop()], [(quiet, 2, [])])
        h.stream.progress_tick()
        self.assertEqual(sorted(r.watch_id for r in h.pop()), [quiet, busy])


class SlowConsumerTests(SynchronousTestCase):
    def test_blocked_stream_parks_and_resumes(self) -> None:
        """While blocked nothing is queued; afterwards every event arrives once, in order."""
        h = Harness()
        h.stream.watch(b"a")
        h.pop()
        h.stream.set_blocked(True)
        revs = [h.put((b"a", b"%d" % i)) for i in range(5)]
        self.assertEqual(h.stream.pending_events, 0)
        self.assertEqual(len(h.store.victims), 1)
        woken: list[bool] = []
        h.store.on_work = lambda: woken.append(True)
        h.stream.set_blocked(False)
        self.assertEqual(woken, [True])
        h.sync_all()
        self.assertEqual([rev for _, _, rev in h.events()], revs)
        self.assertEqual(len(h.store.synced), 1)

    def test_lazy_owner_bounded(self) -> None:
        """An owner that does not take holds at most the cap; then it gets everything exactly."""
        h = Harness(max_pending_events=3)
        h.stream.watch(b"k", b"\0")
        h.pop()
        h.eager = False
        revs = [h.put((b"k%d" % i, b"v")) for i in range(20)]
        for _ in range(5):
            h.store.sync_watchers(max_events=2)
        self.assertLessEqual(h.stream.pending_events, 3)
        self.assertLessEqual(len(h.store.victims), 1)
        h.eager = True
        h.got.extend(h.stream.take())
        h.sync_all(max_events=2)
        self.assertEqual([rev for _, _, rev in h.events()], revs)

    def test_large_revision_passes_cap(self) -> None:
        """One revision larger than the cap still goes out whole into an empty queue."""
        h = Harness(max_pending_events=2)
        h.stream.watch(b"k", b"\0")
        h.pop()
        h.put(*[(b"k%d" % i, b"v") for i in range(5)])
        (r,) = h.pop()
        self.assertEqual(len(r.events), 5)

    def test_past_watch_wakes_server(self) -> None:
        """A watch from the past asks for a sync through on_work."""
        h = Harness()
        h.put((b"a", b"1"))
        woken: list[bool] = []
        h.store.on_work = lambda: woken.append(True)
        h.stream.watch(b"a")
        self.assertEqual(woken, [])
        h.stream.watch(b"a", start_rev=1)
        self.assertEqual(woken, [True])

    def test_blocked_unsynced_waits(self) -> None:
        """An unsynced watcher of a blocked stream reads no history until it unblocks."""
        h = Harness()
        h.put((b"a", b"1"))
        h.stream.watch(b"a", start_rev=1)
        h.pop()
        h.stream.set_blocked(True)
        self.assertEqual(h.store.sync_watchers(), 0)
        self.assertEqual(len(h.store.unsynced), 1)
        h.stream.set_blocked(False)
        self.assertEqual(h.store.sync_watchers(), 0)
        self.assertEqual(h.events(), [(PUT, b"a", 2)])


class StreamTests(SynchronousTestCase):
    def test_ready_once_per_change(self) -> None:
        """on_ready is called after a change with responses waiting, not per response."""
        h = Harness()
        calls: list[int] = []
        h.stream.on_ready = lambda: calls.append(len(h.stream.take()))
        h.stream.watch(b"a", b"z")
        h.stream.watch(b"b")
        h.put((b"a", b"1"), (b"b", b"2"))
        self.assertEqual(calls, [1, 1, 2])
