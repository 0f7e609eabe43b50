"""The linearizability checker on hand-made histories, valid and not."""

import random

from twisted.trial.unittest import SynchronousTestCase

from robustness import linearizability
from robustness.history import (
    COMPACTED,
    Compact,
    Compare,
    LeaseGrant,
    LeaseRevoke,
    Put,
    Range,
    Response,
    Txn,
)
from robustness.linearizability import check
from robustness.simulate import Settings, simulate
from tests.robustness.support import get, got, kv, op

A1 = kv("a", "1", 2, 2)


def cas(value: str) -> Txn:
    """Put a=value only if a does not exist yet."""
    return Txn((Compare("a", "mod", "=", 0),), (Put("a", value),), (Range("a"),))


class RejectTests(SynchronousTestCase):
    def assertIllegal(self, ops, unplaced=None):
        result = check(ops)
        self.assertEqual(result.verdict, "illegal", result)
        if unplaced is not None:
            self.assertEqual(result.unplaced, unplaced)
        return result

    def test_stale_read(self) -> None:
        """A linearizable read after a completed write that returns the old value is rejected."""
        result = self.assertIllegal(
            [
                op(1, 0, 1, Put("a", "1"), Response(2)),
                op(1, 2, 3, Put("a", "2"), Response(3)),
                op(2, 4, 5, get("a"), got(2, A1)),
            ],
            unplaced=[1, 2],
        )
        self.assertEqual(result.linearization, [0])
        self.assertEqual(result.state.revision, 2)

    def test_lost_write(self) -> None:
        """An acknowledged put that a later read does not see is rejected."""
        self.assertIllegal(
            [
                op(1, 0, 1, Put("a", "1"), Response(2)),
                op(1, 2, 3, Put("b", "1"), Response(3)),
                op(2, 4, 5, Range("a", "\0"), got(3, kv("b", "1", 3, 3))),
            ]
        )

    def test_revision_goes_backwards(self) -> None:
        """A read answered at an older revision than one already returned is rejected."""
        self.assertIllegal(
            [
                op(1, 0, 1, Put("a", "1"), Response(2)),
                op(2, 2, 3, get("b"), got(2)),
                op(1, 4, 5, Put("b", "1"), Response(3)),
                op(2, 6, 7, get("a"), got(3, A1)),
                op(3, 8, 9, get("a"), got(2, A1)),
            ]
        )

    def test_duplicate_revision(self) -> None:
        """Two acknowledged writes with the same header revision are rejected."""
        self.assertIllegal(
            [op(1, 0, 1, Put("a", "1"), Response(2)), op(2, 0, 1, Put("b", "1"), Response(2))]
        )

    def test_both_cas_succeed(self) -> None:
        """Two compare-and-set txns on the same old version cannot both succeed."""
        self.assertIllegal(
            [
                op(1, 0, 2, cas("1"), Response(2, results=(Response(),))),
                op(2, 1, 3, cas("2"), Response(3, results=(Response(),))),
            ]
        )

    def test_read_at_compacted_revision_succeeds(self) -> None:
        """A read at a revision compacted before it was called must fail, not succeed."""
        self.assertIllegal(
            [
                op(1, 0, 1, Put("a", "1"), Response(2)),
                op(1, 2, 3, Put("a", "2"), Response(3)),
                op(1, 4, 5, Compact(3), Response(3)),
                op(2, 6, 7, get("a", revision=2), got(3, A1)),
            ]
        )

    def test_serializable_read_older_than_session(self) -> None:
        """A serializable read older than what its own client already saw is rejected."""
        result = self.assertIllegal(
            [
                op(1, 0, 1, Put("a", "1"), Response(2)),
                op(1, 2, 3, get("a", serializable=True), got(1)),
            ]
        )
        self.assertIn("older than revision 2", result.problems[0])

    def test_serializable_read_from_the_future(self) -> None:
        """A serializable read cannot see a write called after it returned."""
        self.assertIllegal(
            [
                op(2, 0, 1, get("a", serializable=True), got(2, A1)),
                op(1, 2, 3, Put("a", "1"), Response(2)),
            ]
        )

    def test_lost_write_seen_then_unseen(self) -> None:
        """A write with unknown outcome cannot be seen and then vanish."""
        self.assertIllegal(
            [
                op(1, 0, 1, Put("a", "1"), None),
                op(2, 2, 3, get("a"), got(2, A1)),
                op(2, 4, 5, get("a"), got(1)),
            ]
        )

    def test_budget_reports_unknown(self) -> None:
        """A search that runs out of steps says unknown rather than hanging."""
        history = simulate(random.Random(1), Settings(operations=600, lost=0.05))
        self.assertEqual(check(history, max_steps=10).verdict, "unknown")


class BudgetTests(SynchronousTestCase):
    def test_unknown_with_watches_falls_through(self) -> None:
        """When the search held to every watch fact runs out of budget, the weaker
        levels still get their share and can decide."""
        history = simulate(random.Random(3), Settings(operations=300, lost=0.05, watchers=2))
        self.assertTrue(history.watches)
        real = linearizability._search
        seen: list[float | None] = []

        def first_runs_out(ops, started, timeout, max_steps):  # type: ignore[no-untyped-def]
            seen.append(timeout)
            if len(seen) == 1:
                return linearizability.Result("unknown")
            return real(ops, started, timeout, max_steps)

        self.patch(linearizability, "_search", first_runs_out)
        result = check(history, timeout=100.0)
        self.assertEqual((result.verdict, result.evidence), ("ok", "watch-pinned writes"))
        self.assertEqual(seen, [40.0, 70.0])


class AcceptTests(SynchronousTestCase):
    def assertOk(self, ops):
        result = check(ops)
        self.assertEqual(result.verdict, "ok", result)
        return result

    def test_concurrent_overlapping(self) -> None:
        """Overlapping puts may take effect in either order; reads inside see either."""
        self.assertOk(
            [
                op(1, 0, 10, Put("a", "1"), Response(3)),
                op(2, 1, 9, Put("a", "2"), Response(2)),
                op(3, 2, 4, get("a"), got(2, kv("a", "2", 2, 2))),
                op(4, 5, 11, get("a"), got(3, kv("a", "1", 2, 3, 2))),
            ]
        )

    def test_failed_write_took_effect(self) -> None:
        """A write that timed out may take effect, even after the client gave up."""
        result = self.assertOk(
            [
                op(1, 0, 1, Put("a", "1"), None),
                op(2, 2, 3, get("a"), got(1)),
                op(2, 4, 5, get("a"), got(2, A1)),
            ]
        )
        self.assertEqual(result.linearization, [1, 0, 2])

    def test_failed_write_did_not_take_effect(self) -> None:
        """A write that timed out may never take effect."""
        self.assertOk(
            [
                op(1, 0, 1, Put("a", "1"), None),
                op(2, 2, 3, Put("b", "1"), Response(2)),
                op(2, 4, 5, get("a"), got(2)),
            ]
        )

    def test_failed_write_fills_revision_gap(self) -> None:
        """A lost write never seen by value still explains a skipped revision."""
        self.assertOk(
            [
                op(1, 0, 1, Put("a", "1"), Response(2)),
                op(2, 2, 3, Put("b", "x"), None),
                op(1, 4, 5, Put("a", "2"), Response(4)),
                op(1, 6, 7, get("a"), got(4, kv("a", "2", 2, 4, 2))),
            ]
        )

    def test_cas_race(self) -> None:
        """Of two concurrent compare-and-sets on the same version exactly one wins."""
        self.assertOk(
            [
                op(1, 0, 3, cas("1"), Response(2, results=(Response(),))),
                op(2, 1, 4, cas("2"), Response(2, succeeded=False, results=(got(0, A1),))),
            ]
        )

    def test_lease_revoke(self) -> None:
        """A revoke deletes every attached key at one revision."""
        self.assertOk(
            [
                op(1, 0, 1, LeaseGrant(7), Response(1, lease_id=7)),
                op(1, 2, 3, Put("a", "1", lease=7), Response(2)),
                op(1, 4, 5, Put("b", "1", lease=7), Response(3)),
                op(2, 6, 7, LeaseRevoke(7), Response(4)),
                op(2, 8, 9, Range("a", "\0"), got(4)),
            ]
        )

    def test_compaction_fails_later_old_reads(self) -> None:
        """After a compaction, reads at older revisions fail; a past read above it succeeds."""
        self.assertOk(
            [
                op(1, 0, 1, Put("a", "1"), Response(2)),
                op(1, 2, 3, Put("a", "2"), Response(3)),
                op(1, 4, 5, Put("a", "3"), Response(4)),
                op(2, 6, 7, Compact(3), Response(4)),
                op(2, 8, 9, get("a", revision=2), Response(error=COMPACTED)),
                op(3, 8, 9, get("a", revision=3), got(4, kv("a", "2", 2, 3, 2))),
            ]
        )

    def test_stale_serializable_read(self) -> None:
        """A serializable read may return an older state than the latest, not older than its session."""
        self.assertOk(
            [
                op(1, 0, 1, Put("a", "1"), Response(2)),
                op(1, 2, 3, Put("a", "2"), Response(3)),
                op(2, 4, 5, get("a", serializable=True), got(2, A1)),
            ]
        )
