"""The WAL through a simulated power loss (LazyFS): every saved entry is there afterwards."""

from __future__ import annotations

import os

from twisted.trial.unittest import TestCase

from etcd_twisted.wal import WAL
from etcd_twisted.wal.files import makedirs_durable
from tests.support.power_loss import PowerLossMixin
from tests.wal.test_wal import SEGMENT, entries, hs


class WALPowerLossTests(PowerLossMixin, TestCase):
    timeout = 120

    def test_saved_entries_survive_across_cuts(self) -> None:
        """Entries saved (each save synced) across several segment cuts all come back."""
        member = os.path.join(self.mnt, "data", "member")
        makedirs_durable(member)
        path = os.path.join(member, "wal")
        w = WAL.create(path, b"meta", segment_bytes=SEGMENT)
        for i in range(1, 401, 10):
            w.save(hs(commit=i - 1), entries(i, i + 9))
        self.assertGreater(len(os.listdir(path)), 2)
        self.power_loss()
        try:
            w.close()
        except OSError:
            pass  # its files were on the mount that went away
        w = WAL.open(path, None, segment_bytes=SEGMENT)
        self.addCleanup(w.close)
        metadata, state, ents = w.read_all()
        self.assertEqual((metadata, state.commit), (b"meta", 390))
        self.assertEqual(ents, entries(1, 400))
