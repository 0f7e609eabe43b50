"""Tests for etcd_twisted.server.compactor: periodic and revision auto-compaction."""

from twisted.internet.defer import fail, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted.config import parse
from etcd_twisted.mvcc.errors import CompactedError
from etcd_twisted.server.compactor import (
    PeriodicCompactor,
    RevisionCompactor,
    from_config,
)


class Harness:
    def __init__(self) -> None:
        self.clock = Clock()
        self.rev = 1
        self.leader = True
        self.compactions: list[int] = []
        self.fail_next = None

    def compact(self, rev: int):
        if self.fail_next is not None:
            error, self.fail_next = self.fail_next, None
            return fail(error)
        self.compactions.append(rev)
        return succeed(None)

    def advance(self, seconds: float, writes_per_second: int = 1) -> None:
        for _ in range(int(seconds)):
            self.rev += writes_per_second
            self.clock.advance(1)


class PeriodicTests(SynchronousTestCase):
    def make(self, period: float) -> tuple[Harness, PeriodicCompactor]:
        h = Harness()
        c = PeriodicCompactor(h.clock, lambda: h.rev, h.compact, lambda: h.leader, period)
        c.startService()
        return h, c

    def test_waits_a_full_period_then_keeps_one_period(self) -> None:
        """Nothing happens in the first period; then it compacts to the revision of one
        period ago, and again every period."""
        h, c = self.make(100)
        h.advance(99)
        self.assertEqual(h.compactions, [])
        h.advance(1)
        self.assertEqual(len(h.compactions), 1)
        self.assertLessEqual(h.compactions[0], 11)  # sampled at or before the 10 s tick
        h.advance(100)
        self.assertEqual(len(h.compactions), 2)
        self.assertGreaterEqual(h.compactions[1], 90)
        self.assertLessEqual(h.compactions[1], 111)

    def test_long_retention_compacts_hourly(self) -> None:
        """A 2 h retention samples every 6 minutes and compacts every hour after the first 2 h."""
        h, c = self.make(7200)
        h.advance(7200)
        self.assertEqual(len(h.compactions), 1)
        h.advance(3600)
        self.assertEqual(len(h.compactions), 2)

    def test_followers_do_not_compact(self) -> None:
        """Only the leader compacts."""
        h, c = self.make(10)
        h.leader = False
        h.advance(50)
        self.assertEqual(h.compactions, [])

    def test_failure_retries_but_already_compacted_counts(self) -> None:
        """A failed compaction is tried again at the next sample; "compacted" is success."""
        h, c = self.make(100)
        h.fail_next = RuntimeError("no leader")
        h.advance(100)
        self.assertEqual(h.compactions, [])
        h.advance(10)
        self.assertEqual(len(h.compactions), 1)
        h.fail_next = CompactedError()
        h.advance(100)
        self.assertEqual(len(h.compactions), 1)
        h.advance(100)
        self.assertEqual(len(h.compactions), 2)


class RevisionTests(SynchronousTestCase):
    def test_keeps_retention_revisions_every_five_minutes(self) -> None:
        """Every 5 minutes it compacts to current - retention, not twice at one revision."""
        h = Harness()
        c = RevisionCompactor(h.clock, lambda: h.rev, h.compact, lambda: h.leader, 1000)
        c.startService()
        h.advance(300, writes_per_second=10)
        self.assertEqual(h.compactions, [3001 - 1000])
        h.advance(300, writes_per_second=0)
        self.assertEqual(h.compactions, [2001])
        h.advance(300, writes_per_second=1)
        self.assertEqual(h.compactions, [2001, 2301])


class FromConfigTests(SynchronousTestCase):
    def test_modes(self) -> None:
        """Flags pick the compactor; retention 0 turns auto-compaction off."""
        h = Harness()
        args = (h.clock, lambda: h.rev, h.compact, lambda: True)
        self.assertIsNone(from_config(parse([], {}), *args))
        periodic = from_config(parse(["--auto-compaction-retention", "1"], {}), *args)
        self.assertIsInstance(periodic, PeriodicCompactor)
        revision = from_config(
            parse(["--auto-compaction-mode", "revision", "--auto-compaction-retention", "10"], {}),
            *args,
        )
        self.assertIsInstance(revision, RevisionCompactor)
