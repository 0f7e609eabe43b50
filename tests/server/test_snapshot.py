"""When a member takes its own snapshots."""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted._pb import raft_pb2
from etcd_twisted.raft import MemoryStorage
from etcd_twisted.server.snapshot import SnapshotTaker


def _unused(*_: Any) -> Any:
    raise AssertionError("no snapshot should be taken")


class MaybeSnapshotTests(SynchronousTestCase):
    def test_not_after_a_leaders_snapshot(self) -> None:
        """A snapshot received from the leader at the applied index is not taken again
        (raft's storage refuses it as out of date, which used to stop the Ready loop)."""
        storage = MemoryStorage()
        conf = raft_pb2.ConfState(voters=[1])
        taker = SnapshotTaker(
            storage,
            backend=_unused,
            wal=None,  # type: ignore[arg-type]
            wal_writer=None,  # type: ignore[arg-type]
            snapshotter=None,  # type: ignore[arg-type]
            conf_state=lambda: conf,
            snapshot_count=100,
            max_snapshots=5,
            max_wals=5,
        )
        storage.apply_snapshot(
            raft_pb2.Snapshot(
                metadata=raft_pb2.SnapshotMetadata(index=3303, term=3, conf_state=conf)
            )
        )
        self.assertIsNone(taker.maybe_snapshot(3303))
        self.assertEqual(taker.snapshot_index, 3303)
        self.assertIsNone(taker.maybe_snapshot(3400))
