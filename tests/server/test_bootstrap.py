"""Restarting a member whose backend is behind the snapshot its WAL records."""

from __future__ import annotations

import os
from random import Random

from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted._pb import raft_pb2, wal_pb2
from etcd_twisted.backend import Backend, buckets
from etcd_twisted.config import Config, parse
from etcd_twisted.server.bootstrap import BootstrapError, bootstrap
from etcd_twisted.wal import backend_path, snap_dir, snapshot_db_path


def _config(data_dir: str) -> Config:
    return parse(
        [
            "--data-dir", data_dir,
            "--listen-client-urls", "http://127.0.0.1:0",
            "--listen-peer-urls", "http://127.0.0.1:0",
        ],
        environ={},
    )  # fmt: skip


class BehindSnapshotTests(SynchronousTestCase):
    """A leader's snapshot was saved (snap file + WAL record) but the member stopped
    before the database that came with it replaced the backend."""

    def setUp(self) -> None:
        self.config = _config(self.mktemp())
        first = bootstrap(self.config, Random(1))
        self.conf_state = raft_pb2.ConfState(voters=[first.member_id])
        first.backend.set_consistent_index(1, 1)
        first.backend.force_commit()
        first.backend.close()
        self.index = 50
        snapshot = raft_pb2.Snapshot(
            metadata=raft_pb2.SnapshotMetadata(index=self.index, term=2, conf_state=self.conf_state)
        )
        first.snapshotter.save_snap(snapshot)
        first.wal.save_snapshot(
            wal_pb2.Snapshot(index=self.index, term=2, conf_state=self.conf_state)
        )
        first.wal.save(raft_pb2.HardState(term=2, commit=self.index), [])
        first.wal.close()
        self.received = snapshot_db_path(snap_dir(self.config.data_dir), self.index)

    def _write_received(self) -> None:
        """The leader's database at the snapshot's index, as the transport spools it."""
        other = Backend(os.path.join(self.mktemp()))
        other.batch_tx.put(buckets.META, b"from-leader", b"yes")
        other.set_consistent_index(self.index, 2)
        other.force_commit()
        snap = other.snapshot()
        with open(self.received, "wb") as f:
            for chunk in snap.chunks():
                f.write(chunk)
        snap.close()
        other.close()

    def test_restart_installs_the_received_database(self) -> None:
        """The restart replaces the backend with the database kept beside the snapshot."""
        self._write_received()
        again = bootstrap(self.config, Random(1))
        self.addCleanup(again.backend.close)
        self.assertEqual(again.backend.consistent_index(), (self.index, 2))
        self.assertEqual(again.backend.batch_tx.get(buckets.META, b"from-leader"), b"yes")
        self.assertFalse(os.path.exists(self.received))

    def test_missing_database_refuses_to_start(self) -> None:
        """Without that database the member would silently skip entries: it refuses."""
        with self.assertRaises(BootstrapError) as caught:
            bootstrap(self.config, Random(1))
        self.assertIn("behind the snapshot at index 50", str(caught.exception))
        self.assertIn(self.received, str(caught.exception))

    def test_leftovers_are_removed(self) -> None:
        """Received databases no snapshot needs, and half-built backends, are deleted."""
        self._write_received()
        directory = snap_dir(self.config.data_dir)
        stale = [
            snapshot_db_path(directory, 7),
            os.path.join(directory, "0000000000000063.x.snap.db.part"),
            backend_path(self.config.data_dir) + ".incoming",
        ]
        for path in stale:
            with open(path, "wb") as f:
                f.write(b"junk")
        again = bootstrap(self.config, Random(1))
        self.addCleanup(again.backend.close)
        self.assertEqual([p for p in stale if os.path.exists(p)], [])
