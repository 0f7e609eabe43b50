"""Tests for etcd_twisted.mvcc.watcher_group: finding watchers by key."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted.mvcc.kvstore import KVStore
from etcd_twisted.mvcc.watchable_store import WatchableStore
from etcd_twisted.mvcc.watcher import EmptyWatcherRangeError, Watcher, watch_range
from etcd_twisted.mvcc.watcher_group import WatcherGroup
from tests.support.memory_backend import MemoryBackend


def watcher(watch_id: int, key: bytes, end: bytes | None = None) -> Watcher:
    stream = WatchableStore(KVStore(MemoryBackend())).new_watch_stream()
    return Watcher(watch_id, key, watch_range(key, end), 0, 1, stream)


class WatcherGroupTests(SynchronousTestCase):
    def test_lookup(self) -> None:
        """Keys, ranges and from-key ranges each find the keys they cover, in insertion order."""
        one, span, tail, also = (
            watcher(0, b"b"),
            watcher(1, b"a", b"c"),
            watcher(2, b"b", b"\0"),
            watcher(3, b"a", b"c"),
        )
        group = WatcherGroup([one, span, tail, also])
        self.assertEqual(group.watchers_for(b"b"), [one, span, also, tail])
        self.assertEqual(group.watchers_for(b"a"), [span, also])
        self.assertEqual(group.watchers_for(b"zz"), [tail])
        self.assertEqual(group.watchers_for(b"0"), [])
        self.assertTrue(group.watches(b"c"))
        self.assertFalse(group.watches(b"0"))

    def test_remove(self) -> None:
        """Removing forgets the watcher everywhere; removing twice says so; adding twice fails."""
        a, b = watcher(0, b"a", b"c"), watcher(1, b"a", b"c")
        group = WatcherGroup([a, b])
        self.assertRaises(ValueError, group.add, a)
        self.assertTrue(group.remove(a))
        self.assertFalse(group.remove(a))
        self.assertEqual((group.watchers_for(b"b"), len(group), a in group), ([b], 1, False))
        group.remove(b)
        self.assertFalse(group.watches(b"b"))

    def test_watch_range(self) -> None:
        """An empty end is the key alone, b"\\0" is unbounded, and an end not above the key is empty."""
        self.assertIsNone(watch_range(b"a", b""))
        self.assertEqual(watch_range(b"a", b"\0"), b"")
        self.assertRaises(EmptyWatcherRangeError, watch_range, b"b", b"a")
