"""Tests for etcd_twisted.wal.wal: segment files, reading, saving, cutting, releasing, purging."""

from __future__ import annotations

import os

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted._pb import raft_pb2, wal_pb2
from etcd_twisted.wal import (
    WAL,
    CorruptWALError,
    SnapshotMismatchError,
    SnapshotNotFoundError,
    WALExistsError,
    WALLockedError,
    WALNotFoundError,
    purge_wals,
    valid_snapshot_entries,
)
from etcd_twisted.wal.record import Encoder, RecordType
from etcd_twisted.wal.wal import parse_wal_name, wal_name

SEGMENT = 16 * 1024


def entries(first: int, last: int, term: int = 1, size: int = 100) -> list[raft_pb2.Entry]:
    """Entries ``first..last`` whose data names their index and term."""
    return [
        raft_pb2.Entry(term=term, index=i, data=f"{i}/{term}".encode().ljust(size, b"."))
        for i in range(first, last + 1)
    ]


def hs(term: int = 1, vote: int = 1, commit: int = 0) -> raft_pb2.HardState:
    """A hard state."""
    return raft_pb2.HardState(term=term, vote=vote, commit=commit)


class WALTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.dir = os.path.join(self.mktemp(), "wal")
        os.makedirs(os.path.dirname(self.dir))
        self.syncs = 0

    def count_sync(self, seconds: float) -> None:
        self.syncs += 1

    def create(self, metadata: bytes = b"meta") -> WAL:
        w = WAL.create(self.dir, metadata, segment_bytes=SEGMENT, on_sync=self.count_sync)
        self.addCleanup(w.close)
        return w

    def reopen(self, snap: wal_pb2.Snapshot | None = None) -> tuple[WAL, tuple]:
        w = WAL.open(self.dir, snap, segment_bytes=SEGMENT, on_sync=self.count_sync)
        self.addCleanup(w.close)
        return w, w.read_all()

    def names(self) -> list[str]:
        return sorted(n for n in os.listdir(self.dir) if n.endswith(".wal"))


class ReadWriteTests(WALTestCase):
    def test_reopen_returns_what_was_saved(self) -> None:
        """Metadata, the last hard state and every entry come back after close and open."""
        w = self.create()
        w.save(hs(commit=0), entries(1, 3))
        w.save(hs(commit=3), entries(4, 5))
        w.close()
        w, (metadata, state, ents) = self.reopen()
        self.assertEqual(w.last_index, 5)
        self.assertEqual(metadata, b"meta")
        self.assertEqual(state, hs(commit=3))
        self.assertEqual(ents, entries(1, 5))

    def test_later_entries_replace_conflicting_ones(self) -> None:
        """A second write of index 3 replaces entries 3 onward, as raft overwrites a log."""
        w = self.create()
        w.save(hs(), entries(1, 5))
        w.save(hs(term=2), entries(3, 4, term=2))
        w.close()
        _, (_, _, ents) = self.reopen()
        self.assertEqual(ents, entries(1, 2) + entries(3, 4, term=2))

    def test_one_sync_per_save(self) -> None:
        """Each save with entries costs one fdatasync; a commit-only change costs none."""
        w = self.create()
        self.syncs = 0
        w.save(hs(commit=0), entries(1, 50))
        w.save(hs(commit=50), [])
        w.save(hs(term=2, commit=50), [])
        self.assertEqual(self.syncs, 2)

    def test_unsafe_no_fsync_never_syncs(self) -> None:
        """With ``unsafe_no_fsync`` saves, snapshots and cuts skip fdatasync; data still reads back."""
        w = WAL.create(self.dir, b"meta", segment_bytes=SEGMENT, on_sync=self.count_sync,
                       unsafe_no_fsync=True)  # fmt: skip
        w.save(hs(commit=0), entries(1, 50))
        w.save(hs(term=2, commit=50), [])
        w.save_snapshot(wal_pb2.Snapshot(index=10, term=1))
        w.cut()
        w.close()
        self.assertEqual(self.syncs, 0)
        w = WAL.open(self.dir, None, segment_bytes=SEGMENT, on_sync=self.count_sync,
                     unsafe_no_fsync=True)  # fmt: skip
        self.addCleanup(w.close)
        self.assertEqual(w.read_all()[2], entries(1, 50))
        w.save(hs(term=2, commit=50), entries(51, 51, term=2))
        self.assertEqual(self.syncs, 0)

    def test_cut_names_segments_by_seq_and_first_index(self) -> None:
        """Segments are cut at the size limit and named by sequence and first entry index."""
        w = self.create()
        for i in range(1, 301, 10):
            w.save(hs(commit=i - 1), entries(i, i + 9))
        w.close()
        names = self.names()
        self.assertGreater(len(names), 2)
        self.assertEqual(names[0], wal_name(0, 0))
        self.assertEqual([parse_wal_name(n)[0] for n in names], list(range(len(names))))
        _, (_, state, ents) = self.reopen()
        self.assertEqual(ents, entries(1, 300))
        self.assertEqual(state.commit, 290)
        for name in names[1:]:
            first = parse_wal_name(name)[1]
            self.assertEqual(first % 10, 1, "cuts happen after a whole save")

    def test_cut_file_is_trimmed(self) -> None:
        """A closed segment is truncated to its records; the new one is preallocated."""
        w = self.create()
        w.save(hs(), entries(1, 3))
        w.cut()
        sizes = [os.path.getsize(os.path.join(self.dir, n)) for n in self.names()]
        self.assertLess(sizes[0], SEGMENT)
        self.assertEqual(sizes[1], SEGMENT)

    def test_appending_after_reopen(self) -> None:
        """A reopened WAL appends after its last record and reads back as one log."""
        w = self.create()
        w.save(hs(), entries(1, 3))
        w.close()
        w, _ = self.reopen()
        w.save(hs(commit=3), entries(4, 6))
        w.close()
        _, (_, state, ents) = self.reopen()
        self.assertEqual((ents, state.commit), (entries(1, 6), 3))

    def test_create_refuses_an_existing_wal(self) -> None:
        """create does not overwrite a WAL."""
        self.create()
        with self.assertRaises(WALExistsError):
            WAL.create(self.dir, b"")

    def test_second_open_is_locked(self) -> None:
        """A WAL open for writing locks its files against a second open."""
        self.create()
        with self.assertRaises(WALLockedError):
            WAL.open(self.dir)

    def test_open_missing(self) -> None:
        """Opening a directory with no WAL raises WALNotFoundError."""
        with self.assertRaises(WALNotFoundError):
            WAL.open(self.dir)

    @given(st.lists(st.integers(1, 40), min_size=1, max_size=30))
    @settings(max_examples=15, deadline=None)
    def test_batches_round_trip_across_cuts(self, sizes: list[int]) -> None:
        """Any sequence of batch sizes reads back as the same contiguous log."""
        path = os.path.join(self.mktemp(), "wal")
        os.makedirs(os.path.dirname(path))
        w = WAL.create(path, b"m", segment_bytes=4096)
        n = 0
        for size in sizes:
            w.save(hs(commit=n), entries(n + 1, n + size))
            n += size
        w.close()
        w = WAL.open(path, segment_bytes=4096)
        try:
            self.assertEqual(w.read_all()[2], entries(1, n))
        finally:
            w.close()


class SnapshotTests(WALTestCase):
    def test_open_at_snapshot_returns_later_entries(self) -> None:
        """Opened at a recorded snapshot, read_all returns only the entries after it."""
        w = self.create()
        w.save(hs(), entries(1, 100))
        w.save_snapshot(wal_pb2.Snapshot(index=60, term=1))
        w.save(hs(commit=100), entries(101, 120))
        w.close()
        _, (_, state, ents) = self.reopen(wal_pb2.Snapshot(index=60, term=1))
        self.assertEqual(ents, entries(61, 120))
        self.assertEqual(state.commit, 100)

    def test_snapshot_term_mismatch(self) -> None:
        """A snapshot recorded with another term raises SnapshotMismatchError."""
        w = self.create()
        w.save(hs(), entries(1, 10))
        w.save_snapshot(wal_pb2.Snapshot(index=5, term=1))
        w.close()
        w = WAL.open(self.dir, wal_pb2.Snapshot(index=5, term=2))
        self.addCleanup(w.close)
        with self.assertRaises(SnapshotMismatchError):
            w.read_all()

    def test_snapshot_not_recorded(self) -> None:
        """Opening at a snapshot the WAL never recorded raises SnapshotNotFoundError."""
        w = self.create()
        w.save(hs(), entries(1, 10))
        w.close()
        w = WAL.open(self.dir, wal_pb2.Snapshot(index=5, term=1))
        self.addCleanup(w.close)
        with self.assertRaises(SnapshotNotFoundError):
            w.read_all()

    def test_valid_snapshot_entries_stop_at_commit(self) -> None:
        """Only snapshots at or below the committed index are valid."""
        w = self.create()
        w.save(hs(commit=10), entries(1, 20))
        w.save_snapshot(wal_pb2.Snapshot(index=10, term=1))
        w.save_snapshot(wal_pb2.Snapshot(index=20, term=1))
        w.close()
        self.assertEqual(
            [s.index for s in valid_snapshot_entries(self.dir)],
            [0, 10],
        )


class ReleaseAndPurgeTests(WALTestCase):
    def fill(self, w: WAL, n: int) -> None:
        for i in range(1, n + 1, 10):
            w.save(hs(commit=i - 1), entries(i, i + 9))

    def test_purge_spares_locked_files(self) -> None:
        """Without a release, purge removes nothing: every file is still needed."""
        w = self.create()
        self.fill(w, 400)
        before = self.names()
        self.assertEqual(purge_wals(self.dir, 1), [])
        self.assertEqual(self.names(), before)

    def test_release_then_purge_keeps_files_after_the_snapshot(self) -> None:
        """After release_lock_to(snapshot), purge deletes older files but the log still opens there."""
        w = self.create()
        self.fill(w, 400)
        w.save_snapshot(wal_pb2.Snapshot(index=250, term=1))
        w.release_lock_to(250)
        removed = purge_wals(self.dir, 1)
        self.assertTrue(removed)
        remaining = self.names()
        self.assertLessEqual(parse_wal_name(remaining[0])[1], 250)
        w.save(hs(commit=400), entries(401, 405))
        w.close()
        _, (_, _, ents) = self.reopen(wal_pb2.Snapshot(index=250, term=1))
        self.assertEqual(ents, entries(251, 405))

    def test_purge_keeps_max_files(self) -> None:
        """With everything released, purge leaves max_files files."""
        w = self.create()
        self.fill(w, 400)
        w.release_lock_to(400)
        purge_wals(self.dir, 2)
        self.assertEqual(len(self.names()), 2)


class DamageTests(WALTestCase):
    def written(self) -> str:
        """Create a WAL with 40 entries in one segment; return the segment path."""
        w = self.create()
        for i in range(1, 41, 4):
            w.save(hs(commit=i - 1), entries(i, i + 3, size=20))
        w.close()
        return os.path.join(self.dir, self.names()[-1])

    def test_torn_tail_is_cut_on_open(self) -> None:
        """Half a record at the tail is cut off: earlier entries stay, appending works again."""
        path = self.written()
        with open(path, "rb") as f:
            used = len(f.read().rstrip(b"\0"))
        offset = used + (-used % 8)
        frame = Encoder(1).encode(
            RecordType.ENTRY, entries(41, 41, size=900)[0].SerializeToString()
        )
        with open(path, "r+b") as f:
            f.seek(offset)
            f.write(frame[: len(frame) // 2])
        w, (_, _, ents) = self.reopen()
        self.assertEqual(ents, entries(1, 40, size=20))
        self.assertEqual(w.repaired, (path, offset))
        w.save(hs(commit=40), entries(41, 42, size=20))
        w.close()
        _, (_, _, final) = self.reopen()
        self.assertEqual(final, entries(1, 42, size=20))

    def test_bit_flip_names_file_and_offset(self) -> None:
        """A flipped bit in the middle of a segment raises CorruptWALError naming the file and offset."""
        path = self.written()
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            data = bytearray(f.read())
        used = len(data.rstrip(b"\0"))
        for pos in range(64, used // 2, max(1, used // 40)):
            damaged = bytearray(data)
            damaged[pos] ^= 0x10
            with open(path, "wb") as f:
                f.write(damaged)
            w = WAL.open(self.dir, segment_bytes=SEGMENT)
            try:
                with self.assertRaises(CorruptWALError) as caught:
                    w.read_all()
            finally:
                w.close()
            self.assertIn(path, str(caught.exception))
            self.assertIn(f"offset {caught.exception.offset}", str(caught.exception))
            self.assertLessEqual(caught.exception.offset, pos)
            self.assertGreater(caught.exception.offset, pos - 200)
        self.assertEqual(os.path.getsize(path), size)

    def test_garbage_after_the_end_is_corruption(self) -> None:
        """Non-zero bytes in the preallocated zeros after the last record are corruption."""
        path = self.written()
        with open(path, "r+b") as f:
            f.seek(SEGMENT - 100)
            f.write(b"\x01")
        w = WAL.open(self.dir, segment_bytes=SEGMENT)
        self.addCleanup(w.close)
        with self.assertRaises(CorruptWALError) as caught:
            w.read_all()
        self.assertEqual(caught.exception.offset, SEGMENT - 100)

    def test_torn_record_in_an_older_segment_is_corruption(self) -> None:
        """Only the last segment may end in a torn record."""
        w = self.create()
        w.save(hs(), entries(1, 5, size=600))
        w.cut()
        w.save(hs(), entries(6, 7))
        w.close()
        first = os.path.join(self.dir, self.names()[0])
        size = os.path.getsize(first)
        with open(first, "r+b") as f:
            f.truncate(size - 300)
        w = WAL.open(self.dir, segment_bytes=SEGMENT)
        self.addCleanup(w.close)
        with self.assertRaises(CorruptWALError) as caught:
            w.read_all()
        self.assertIn(first, str(caught.exception))
