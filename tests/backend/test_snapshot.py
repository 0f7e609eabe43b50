"""Tests for etcd_twisted.backend.snapshot: streaming the database and restoring it."""

from __future__ import annotations

import os
import threading

from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted.backend import (
    Backend,
    CorruptSnapshotStreamError,
    SnapshotInProgressError,
    buckets,
    map_size_for,
    restore_snapshot,
)


class SnapshotStreamTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.dir = self.mktemp()
        os.makedirs(self.dir)
        self.be = Backend(os.path.join(self.dir, "db"))
        self.addCleanup(self.be.close)
        for i in range(3000):
            self.be.batch_tx.put(buckets.KEY, b"%08d" % i, os.urandom(100))
        self.be.batch_tx.put(buckets.MEMBERS, b"m1", b"{}")
        self.be.set_consistent_index(99, 4)

    def stream(self, chunk_bytes: int = 4096) -> list[bytes]:
        with self.be.snapshot() as snap:
            return list(snap.chunks(chunk_bytes))

    def restored(self, chunks: list[bytes]) -> Backend:
        path = os.path.join(self.dir, "restored")
        restore_snapshot(path, chunks, map_size=map_size_for(0))
        be = Backend(path)
        self.addCleanup(be.close)
        return be

    def test_round_trip(self) -> None:
        """A restored stream has the same buckets, pairs, hash and consistent index (pending batch included)."""
        be = self.restored(self.stream())
        self.assertEqual(be.hash(), self.be.hash())
        self.assertEqual(be.consistent_index(), (99, 4))
        self.assertEqual(be.batch_tx.get(buckets.MEMBERS, b"m1"), b"{}")

    def test_snapshot_is_pinned_while_writes_continue(self) -> None:
        """Writes after snapshot() are not in the stream, even when streamed from another thread."""
        digest = self.be.hash()
        snap = self.be.snapshot()
        self.be.batch_tx.put(buckets.KEY, b"later", b"x")
        self.be.force_commit()
        chunks: list[bytes] = []
        thread = threading.Thread(target=lambda: chunks.extend(snap.chunks()))
        thread.start()
        thread.join(10)
        self.assertFalse(thread.is_alive())
        snap.close()
        self.assertEqual(self.restored(chunks).hash(), digest)

    def test_defragment_waits_for_open_snapshots(self) -> None:
        """Defragment is refused while a snapshot is open (it reopens the environment under
        the snapshot's reader) and runs once every snapshot is closed."""
        snap = self.be.snapshot()
        with self.assertRaises(SnapshotInProgressError):
            self.be.defragment()
        self.assertEqual(len(list(snap.buckets())), len(buckets.ALL))
        snap.close()
        self.be.defragment()
        self.assertEqual(self.be.batch_tx.get(buckets.MEMBERS, b"m1"), b"{}")

    def test_buckets_in_name_order(self) -> None:
        """``buckets()`` gives every bucket, by name, with its pairs in key order."""
        with self.be.snapshot() as snap:
            got = [(name, list(pairs)) for name, pairs in snap.buckets()]
        self.assertEqual([name for name, _ in got], sorted(buckets.ALL))
        pairs = dict(got)[buckets.KEY]
        self.assertEqual(pairs, sorted(pairs))
        self.assertEqual(len(pairs), 3000)

    def test_truncated_stream_is_refused(self) -> None:
        """A stream cut short is refused and leaves no file behind."""
        chunks = self.stream()
        data = b"".join(chunks)
        with self.assertRaises(CorruptSnapshotStreamError):
            restore_snapshot(os.path.join(self.dir, "r"), [data[:-3]], map_size=map_size_for(0))
        self.assertFalse(os.path.exists(os.path.join(self.dir, "r")))

    def test_damaged_stream_is_refused(self) -> None:
        """A flipped byte fails the stream's checksum."""
        data = bytearray(b"".join(self.stream()))
        data[len(data) // 2] ^= 0x40
        with self.assertRaises(CorruptSnapshotStreamError):
            restore_snapshot(os.path.join(self.dir, "r"), [bytes(data)], map_size=map_size_for(0))

    def test_restore_replaces_an_old_database(self) -> None:
        """Restoring over an existing (closed) database file replaces its contents."""
        path = os.path.join(self.dir, "old")
        old = Backend(path)
        old.batch_tx.put(buckets.KEY, b"stale", b"x")
        old.close()
        restore_snapshot(path, self.stream(), map_size=map_size_for(0))
        be = Backend(path)
        self.addCleanup(be.close)
        self.assertIsNone(be.batch_tx.get(buckets.KEY, b"stale"))
        self.assertEqual(be.hash(), self.be.hash())
