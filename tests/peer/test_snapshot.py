"""The receiver's snapshot spool file through a simulated power loss (LazyFS)."""

from __future__ import annotations

import os

from twisted.trial.unittest import TestCase

from etcd_twisted.peer.snapshot import SnapshotFile
from tests.support.power_loss import PowerLossMixin


class SnapshotFilePowerLossTests(PowerLossMixin, TestCase):
    timeout = 60

    def test_completed_spool_survives(self) -> None:
        """A completed spool file is in place, whole, after a power loss (its rename was synced)."""
        spool = SnapshotFile(os.path.join(self.mnt, "member", "snap"), 42)
        spool.write(b"x" * 10000)
        path = spool.complete()
        self.power_loss()
        with open(path, "rb") as f:
            self.assertEqual(f.read(), b"x" * 10000)
