"""Tests for etcd_twisted.wal.snap: snapshot files."""

from __future__ import annotations

import os

from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted._pb import raft_pb2, wal_pb2
from etcd_twisted.wal import NoSnapshotError, Snapshotter, purge_snapshots
from etcd_twisted.wal.snap import snap_name


def snapshot(index: int, term: int = 1, data: bytes = b"state") -> raft_pb2.Snapshot:
    """A raft snapshot at ``index`` carrying ``data``."""
    md = raft_pb2.SnapshotMetadata(index=index, term=term)
    md.conf_state.voters.extend([1, 2, 3])
    return raft_pb2.Snapshot(data=data + str(index).encode(), metadata=md)


class SnapshotterTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.dir = self.mktemp()
        os.makedirs(self.dir)
        self.snapper = Snapshotter(self.dir)

    def test_save_and_load_newest(self) -> None:
        """load returns the snapshot with the highest term and index."""
        for i in (10, 30, 20):
            self.snapper.save_snap(snapshot(i))
        self.assertEqual(self.snapper.load(), snapshot(30))
        self.assertIn(snap_name(1, 30), os.listdir(self.dir))

    def test_unsafe_no_fsync_still_saves_whole_files(self) -> None:
        """Without fsync a snapshot is still written through a temp file and loads back."""
        snapper = Snapshotter(self.dir, unsafe_no_fsync=True)
        snapper.save_snap(snapshot(7))
        self.assertEqual(os.listdir(self.dir), [snap_name(1, 7)])
        self.assertEqual(snapper.load(), snapshot(7))

    def test_empty_snapshot_is_not_saved(self) -> None:
        """A snapshot at index 0 writes nothing, and load then finds none."""
        self.snapper.save_snap(raft_pb2.Snapshot())
        self.assertEqual(os.listdir(self.dir), [])
        with self.assertRaises(NoSnapshotError):
            self.snapper.load()

    def test_corrupt_newest_is_skipped_and_set_aside(self) -> None:
        """A newest file failing its CRC is renamed to .broken and the next one is loaded."""
        self.snapper.save_snap(snapshot(10))
        self.snapper.save_snap(snapshot(20))
        path = os.path.join(self.dir, snap_name(1, 20))
        with open(path, "r+b") as f:
            f.seek(12)
            byte = f.read(1)
            f.seek(12)
            f.write(bytes([byte[0] ^ 1]))
        self.assertEqual(self.snapper.load(), snapshot(10))
        self.assertTrue(os.path.exists(path + ".broken"))

    def test_load_newest_available_matches_the_wal(self) -> None:
        """Only a snapshot the WAL records is chosen, even if a newer file exists."""
        self.snapper.save_snap(snapshot(10))
        self.snapper.save_snap(snapshot(20))
        chosen = self.snapper.load_newest_available([wal_pb2.Snapshot(index=10, term=1)])
        self.assertEqual(chosen, snapshot(10))

    def test_no_temporary_file_is_left(self) -> None:
        """Saving leaves only the final file (written via a temporary file and rename)."""
        self.snapper.save_snap(snapshot(5))
        self.assertEqual(os.listdir(self.dir), [snap_name(1, 5)])

    def test_purge_keeps_the_newest(self) -> None:
        """purge deletes the oldest files beyond max_files."""
        for i in range(1, 8):
            self.snapper.save_snap(snapshot(i))
        removed = purge_snapshots(self.dir, 3)
        self.assertEqual(len(removed), 4)
        self.assertEqual(sorted(os.listdir(self.dir)), [snap_name(1, i) for i in (5, 6, 7)])
