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

    def test_sync_commits_survive_torn_power_losses(self) -> None:
        """With ``sync_commits``, a torn power loss (random unsynced pages written) leaves the
        database whole at its last or second-last commit, whatever the seed."""
        path = os.path.join(self.mnt, "db")
        for seed in range(6):
            be = Backend(path, sync_commits=True)
            start = be.consistent_index()[0]
            for n in range(start + 1, start + 4):
                for k in range(200):
                    be.batch_tx.put(buckets.KEY, b"%04d" % k, b"%d" % n * 50)
                be.set_consistent_index(n, 1)
                be.force_commit()
            self.power_loss(torn_seed=seed)
            be = Backend(path, sync_commits=True)
            index = be.consistent_index()[0]
            self.assertIn(index, (start + 2, start + 3))
            values = {v for _, v in be.batch_tx.items(buckets.KEY)}
            self.assertEqual(values, {b"%d" % index * 50})
            be.close()
