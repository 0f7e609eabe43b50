"""The KV model: revisions, versions, txns, leases, compaction."""

from twisted.trial.unittest import SynchronousTestCase

from robustness.history import (
    COMPACTED,
    FUTURE_REVISION,
    LEASE_NOT_FOUND,
    Compact,
    Compare,
    Delete,
    LeaseGrant,
    LeaseRevoke,
    Put,
    Range,
    Response,
    Txn,
)
from robustness.model import State, apply_unknown, respond, step
from tests.robustness.support import got, kv


def run(*requests) -> tuple[list[Response], State]:
    state, out = State(), []
    for r in requests:
        resp, state = respond(state, r)
        out.append(resp)
    return out, state


class ModelTests(SynchronousTestCase):
    def test_put_versions(self) -> None:
        """Each put adds one revision; version counts up from 1 and create_revision stays."""
        (_, _, r), state = run(Put("a", "1"), Put("a", "2"), Range("a"))
        self.assertEqual(r, got(3, kv("a", "2", 2, 3, 2)))

    def test_delete_missing_keeps_revision(self) -> None:
        """A delete that removes nothing does not add a revision; a later put restarts version."""
        (_, d1, d2, _, r), _ = run(
            Put("a", "1"), Delete("a"), Delete("a"), Put("a", "2"), Range("a")
        )
        self.assertEqual((d1, d2), (Response(3, deleted=1), Response(3)))
        self.assertEqual(r, got(4, kv("a", "2", 4, 4, 1)))

    def test_txn_shares_revision(self) -> None:
        """A txn's writes share one revision and later ops see earlier writes."""
        txn = Txn((Compare("a", "version", "=", 0),), (Put("a", "1"), Put("b", "1"), Range("a")))
        (r,), state = run(txn)
        self.assertEqual(r.revision, 2)
        self.assertEqual(r.results[2], Response(kvs=(kv("a", "1", 2, 2),), count=1))
        self.assertEqual(state.kvs["b"].mod_revision, 2)

    def test_value_compare_on_missing_key(self) -> None:
        """A VALUE compare on a missing key is false; other targets compare as 0."""
        (r1, r2), _ = run(
            Txn((Compare("a", "value", "!=", "x"),), (Put("a", "1"),)),
            Txn((Compare("b", "create", "=", 0),), (Put("b", "1"),)),
        )
        self.assertFalse(r1.succeeded)
        self.assertTrue(r2.succeeded)

    def test_lease_revoke_deletes_at_one_revision(self) -> None:
        """Revoking a lease deletes its keys at one revision; keys put without it stay."""
        (_, _, _, _, revoke, r), state = run(
            LeaseGrant(7),
            Put("a", "1", lease=7),
            Put("b", "1", lease=7),
            Put("c", "1"),
            LeaseRevoke(7),
            Range("a", "\0"),
        )
        self.assertEqual(revoke, Response(5))
        self.assertEqual(r, got(5, kv("c", "1", 4, 4)))
        self.assertEqual(state.leases, frozenset())

    def test_put_to_missing_lease(self) -> None:
        """A put to a lease that does not exist fails and changes nothing."""
        (r,), state = run(Put("a", "1", lease=9))
        self.assertEqual((r, state), (Response(error=LEASE_NOT_FOUND), State()))

    def test_compaction(self) -> None:
        """Reads below the compacted revision fail; at or above it only the header is modelled."""
        (_, _, _, c, again, old, at, future), _ = run(
            Put("a", "1"),
            Put("a", "2"),
            Put("a", "3"),
            Compact(3),
            Compact(3),
            Range("a", revision=2),
            Range("a", revision=3),
            Range("a", revision=9),
        )
        self.assertEqual((c, again), (Response(4), Response(error=COMPACTED)))
        self.assertEqual(
            (old, at, future),
            (Response(error=COMPACTED), Response(4), Response(error=FUTURE_REVISION)),
        )

    def test_step_checks_header_of_past_read(self) -> None:
        """step accepts a past read's content unseen, but not a wrong header revision."""
        _, state = run(Put("a", "1"), Put("a", "2"))
        past = Range("a", revision=2)
        self.assertIsNotNone(step(state, past, got(3, kv("a", "1", 2, 2))))
        self.assertIsNone(step(state, past, got(2, kv("a", "1", 2, 2))))

    def test_apply_unknown_without_effect(self) -> None:
        """A lost request that would change nothing is reported as no change."""
        self.assertIsNone(apply_unknown(State(), Delete("a")))
        self.assertEqual(apply_unknown(State(), Put("a", "1")).revision, 2)
