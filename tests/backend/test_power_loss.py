"""The backend through a simulated power loss (LazyFS): synced commits and new files survive."""

from __future__ import annotations

import os

from twisted.trial.unittest import TestCase

from etcd_twisted.backend import Backend, buckets
from tests.support.power_loss import PowerLossMixin


class BackendPowerLossTests(PowerLossMixin, TestCase):
    timeout = 60

    def test_new_database_in_new_directories_survives(self) -> None:
        """A database created in directories that did not exist, committed and synced, is all there."""
        path = os.path.join(self.mnt, "member", "snap", "db")
        be = Backend(path)
        be.batch_tx.put(buckets.KEY, b"k", b"v")
        be.set_consistent_index(7, 2)
        be.force_commit()
        be.sync()
        be.close()
        self.power_loss()
        be = Backend(path)
        self.addCleanup(be.close)
        self.assertEqual(be.batch_tx.get(buckets.KEY, b"k"), b"v")
        self.assertEqual(be.consistent_index(), (7, 2))

    def test_unsynced_commit_is_lost_and_database_opens(self) -> None:
        """A commit never synced is gone; the database opens at its last synced commit."""
        path = os.path.join(self.mnt, "db")
        be = Backend(path)
        be.batch_tx.put(buckets.KEY, b"a", b"1")
        be.set_consistent_index(1, 1)
        be.force_commit()
        be.sync()
        be.batch_tx.put(buckets.KEY, b"b", b"2")
        be.set_consistent_index(2, 1)
        be.force_commit()
        self.power_loss()
        be = Backend(path)
        self.addCleanup(be.close)
        self.assertEqual(
            (be.batch_tx.get(buckets.KEY, b"a"), be.batch_tx.get(buckets.KEY, b"b")), (b"1", None)
        )
        self.assertEqual(be.consistent_index(), (1, 1))
