"""The lessor: leases and keys, expiry on the primary, promotion, checkpoints, restore."""

from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted._pb.lease_pb2 import Lease as LeasePB
from etcd_twisted.lease import (
    CHECKPOINT_BATCH_LIMIT,
    DEFAULT_CHECKPOINT_INTERVAL,
    EXPIRED_LEASE_RETRY_INTERVAL,
    FOREVER,
    LEASE_BUCKET,
    LEASE_CHECK_INTERVAL,
    LEASE_REVOKE_RATE,
    MAX_LEASE_TTL,
    REVOKE_LIMIT,
    Lease,
    LeaseExistsError,
    LeaseExpiredError,
    LeaseNotFoundError,
    LeaseTTLTooLargeError,
    Lessor,
    NotPrimaryError,
    TimeToLive,
    lease_key,
)

from .fake_storage import DictStorage

MIN_TTL = 2


def primary_lessor(
    storage: DictStorage | None = None,
    *,
    checkpoint_interval: float | None = None,
    checkpoint_persist: bool = False,
    retry_interval: float = 3.0,
) -> Lessor:
    lessor = Lessor(
        storage or DictStorage(),
        MIN_TTL,
        checkpoint_interval=checkpoint_interval,
        checkpoint_persist=checkpoint_persist,
        retry_interval=retry_interval,
    )
    lessor.promote(0.0, 0.0)
    return lessor


def held(lessor: Lessor, lease_id: int) -> Lease:
    lease = lessor.lookup(lease_id)
    assert lease is not None, lease_id
    return lease


def stored(storage: DictStorage) -> dict[int, tuple[int, int]]:
    """The lease bucket as {id: (ttl, remaining_ttl)}."""
    records = (LeasePB.FromString(v) for v in storage.buckets.get(LEASE_BUCKET, {}).values())
    return {r.ID: (r.TTL, r.RemainingTTL) for r in records}


def expired_ids(lessor: Lessor, now: float, limit: int = 500) -> list[int]:
    return [lease.id for lease in lessor.expired_leases(now, limit)]


class GrantTests(SynchronousTestCase):
    def test_grant_stores_and_schedules(self) -> None:
        """A grant on the primary stores the lease and sets its expiry to now + TTL."""
        storage = DictStorage()
        lessor = primary_lessor(storage)
        lease = lessor.grant(1, 10, 100.0)
        self.assertEqual((lease.id, lease.ttl, lease.remaining_ttl), (1, 10, 0))
        self.assertEqual(lease.expiry, 110.0)
        self.assertIs(lessor.lookup(1), lease)
        self.assertEqual(stored(storage), {1: (10, 0)})

    def test_ttl_below_minimum_is_raised(self) -> None:
        """A TTL under the minimum (also 0 or negative) is granted as the minimum, and stored so."""
        storage = DictStorage()
        lessor = primary_lessor(storage)
        self.assertEqual(
            [lessor.grant(i, ttl, 0.0).ttl for i, ttl in [(1, 1), (2, 0), (3, -5)]], [2, 2, 2]
        )
        self.assertEqual(stored(storage)[1], (MIN_TTL, 0))

    def test_ttl_too_large(self) -> None:
        """A TTL above MAX_LEASE_TTL is refused; MAX_LEASE_TTL itself is granted."""
        lessor = primary_lessor()
        self.assertRaises(LeaseTTLTooLargeError, lessor.grant, 1, MAX_LEASE_TTL + 1, 0.0)
        self.assertIsNone(lessor.lookup(1))
        self.assertEqual(lessor.grant(1, MAX_LEASE_TTL, 0.0).ttl, 9_000_000_000)

    def test_existing_id(self) -> None:
        """Granting an id that exists is refused and leaves the lease alone."""
        lessor = primary_lessor()
        lessor.grant(1, 10, 0.0)
        self.assertRaises(LeaseExistsError, lessor.grant, 1, 20, 5.0)
        self.assertEqual(held(lessor, 1).ttl, 10)

    def test_id_zero(self) -> None:
        """Id 0 names no lease, as in etcd: it is refused as not found."""
        self.assertRaises(LeaseNotFoundError, primary_lessor().grant, 0, 10, 0.0)

    def test_grant_on_follower_never_expires(self) -> None:
        """A lease granted while not primary has the forever expiry."""
        lessor = Lessor(DictStorage(), MIN_TTL)
        self.assertEqual(lessor.grant(1, 10, 0.0).expiry, FOREVER)
        self.assertEqual(expired_ids(lessor, 1e12), [])

    def test_leases_sorted_by_id(self) -> None:
        """leases() lists leases of equal expiry by id."""
        lessor = primary_lessor()
        for lease_id in (5, 1, 3):
            lessor.grant(lease_id, 10, 0.0)
        self.assertEqual([lease.id for lease in lessor.leases()], [1, 3, 5])

    def test_leases_soonest_expiry_first(self) -> None:
        """leases() lists the soonest expiry first, as etcd's LeaseLeases does."""
        lessor = primary_lessor()
        lessor.grant(1, 600, 0.0)
        lessor.grant(2, 10, 0.0)
        lessor.grant(3, 300, 0.0)
        self.assertEqual([lease.id for lease in lessor.leases()], [2, 3, 1])
        lessor.demote()  # every expiry is forever: by id
        self.assertEqual([lease.id for lease in lessor.leases()], [1, 2, 3])


class RevokeTests(SynchronousTestCase):
    def test_revoke_returns_keys_and_forgets(self) -> None:
        """revoke returns the sorted keys, detaches them, and removes the lease and its record."""
        storage = DictStorage()
        lessor = primary_lessor(storage)
        lessor.grant(1, 10, 0.0)
        lessor.grant(2, 10, 0.0)
        for key in (b"b", b"a", b"c"):
            lessor.attach(1, key)
        lessor.attach(2, b"z")
        self.assertEqual(lessor.revoke(1), [b"a", b"b", b"c"])
        self.assertIsNone(lessor.lookup(1))
        self.assertEqual([lessor.get_lease(k) for k in (b"a", b"b", b"c", b"z")], [0, 0, 0, 2])
        self.assertEqual(stored(storage), {2: (10, 0)})

    def test_revoke_unknown(self) -> None:
        """Revoking an unknown lease (or twice) is not found."""
        lessor = primary_lessor()
        lessor.grant(1, 10, 0.0)
        lessor.revoke(1)
        self.assertRaises(LeaseNotFoundError, lessor.revoke, 1)

    def test_detach_after_revoke_is_noop(self) -> None:
        """The KV store's detach while deleting a revoked lease's keys changes nothing."""
        lessor = primary_lessor()
        lessor.grant(1, 10, 0.0)
        lessor.attach(1, b"k")
        lessor.revoke(1)
        lessor.detach(1, b"k")
        self.assertEqual(lessor.get_lease(b"k"), 0)

    def test_revoked_lease_never_expires(self) -> None:
        """A revoked lease is not reported expired, even after the retry interval."""
        lessor = primary_lessor()
        lessor.grant(1, 10, 0.0)
        lessor.grant(2, 10, 0.0)
        self.assertEqual(expired_ids(lessor, 10.0), [1, 2])
        lessor.revoke(1)
        self.assertEqual(expired_ids(lessor, 100.0), [2])


class AttachTests(SynchronousTestCase):
    def test_attach_and_get_lease(self) -> None:
        """Attached keys are listed on the lease and map back to it."""
        lessor = primary_lessor()
        lessor.grant(1, 10, 0.0)
        lessor.attach(1, b"a")
        lessor.attach(1, b"b")
        self.assertEqual(held(lessor, 1).keys, {b"a", b"b"})
        self.assertEqual((lessor.get_lease(b"a"), lessor.get_lease(b"x")), (1, 0))

    def test_attach_unknown_lease(self) -> None:
        """Attaching to an unknown lease is not found and attaches nothing."""
        lessor = primary_lessor()
        self.assertRaises(LeaseNotFoundError, lessor.attach, 7, b"a")
        self.assertEqual(lessor.get_lease(b"a"), 0)

    def test_key_moves_between_leases(self) -> None:
        """A key belongs to at most one lease: attaching it elsewhere moves it."""
        lessor = primary_lessor()
        lessor.grant(1, 10, 0.0)
        lessor.grant(2, 10, 0.0)
        lessor.attach(1, b"k")
        lessor.attach(2, b"k")
        self.assertEqual(held(lessor, 1).keys, set())
        self.assertEqual(held(lessor, 2).keys, {b"k"})
        self.assertEqual(lessor.get_lease(b"k"), 2)

    def test_detach(self) -> None:
        """detach removes the key from its lease; from another lease it is a no-op."""
        lessor = primary_lessor()
        lessor.grant(1, 10, 0.0)
        lessor.grant(2, 10, 0.0)
        lessor.attach(1, b"k")
        lessor.detach(2, b"k")
        self.assertEqual(lessor.get_lease(b"k"), 1)
        lessor.detach(1, b"k")
        self.assertEqual((lessor.get_lease(b"k"), held(lessor, 1).keys), (0, set()))
        lessor.detach(1, b"k")
        lessor.detach(99, b"k")


class RenewTests(SynchronousTestCase):
    def test_renew_restarts_ttl(self) -> None:
        """renew returns the TTL and moves the expiry to now + TTL."""
        lessor = primary_lessor()
        lessor.grant(1, 10, 0.0)
        self.assertEqual(lessor.renew(1, 8.0), 10)
        self.assertEqual(expired_ids(lessor, 17.9), [])
        self.assertEqual(expired_ids(lessor, 18.0), [1])

    def test_renew_unknown(self) -> None:
        """Renewing an unknown lease is not found."""
        self.assertRaises(LeaseNotFoundError, primary_lessor().renew, 1, 0.0)

    def test_renew_not_primary(self) -> None:
        """Only the primary renews."""
        lessor = Lessor(DictStorage(), MIN_TTL)
        lessor.grant(1, 10, 0.0)
        self.assertRaises(NotPrimaryError, lessor.renew, 1, 0.0)

    def test_renew_expired(self) -> None:
        """An expired lease cannot be renewed (a kind of not found); it stays expired."""
        lessor = primary_lessor()
        lessor.grant(1, 10, 0.0)
        err = self.assertRaises(LeaseExpiredError, lessor.renew, 1, 10.0)
        self.assertIsInstance(err, LeaseNotFoundError)
        self.assertEqual(str(err), "lease not found")
        self.assertEqual(expired_ids(lessor, 10.0), [1])

    def test_renew_ignores_checkpointed_remaining_ttl(self) -> None:
        """A lease with a checkpointed remaining TTL is renewed to its full TTL."""
        lessor = primary_lessor(checkpoint_interval=300.0)
        lessor.grant(1, 1000, 0.0)
        lessor.apply_checkpoint(1, 700)
        self.assertEqual(lessor.renew(1, 300.0), 1000)
        self.assertEqual(held(lessor, 1).expiry, 1300.0)


class TimeToLiveTests(SynchronousTestCase):
    def test_primary_counts_down(self) -> None:
        """On the primary the remaining TTL is the whole seconds left, never below 0."""
        lessor = primary_lessor()
        lessor.grant(1, 10, 0.0)
        lessor.attach(1, b"b")
        lessor.attach(1, b"a")
        self.assertEqual(lessor.time_to_live(1, 0.0), TimeToLive(10, 10, [b"a", b"b"]))
        self.assertEqual(lessor.time_to_live(1, 0.5).ttl, 9)
        self.assertEqual(lessor.time_to_live(1, 12.0).ttl, 0)

    def test_follower_reports_refresh_ttl(self) -> None:
        """Elsewhere the remaining TTL is the checkpointed one, or the full TTL."""
        lessor = Lessor(DictStorage(), MIN_TTL)
        lessor.grant(1, 100, 0.0)
        self.assertEqual(lessor.time_to_live(1, 50.0), TimeToLive(100, 100, []))
        lessor.apply_checkpoint(1, 40)
        self.assertEqual(lessor.time_to_live(1, 50.0).ttl, 40)

    def test_unknown(self) -> None:
        """An unknown lease is not found."""
        self.assertRaises(LeaseNotFoundError, primary_lessor().time_to_live, 1, 0.0)


class ExpiryTests(SynchronousTestCase):
    def test_expiry_order(self) -> None:
        """Expired leases come earliest expiry first, only once their time has come."""
        lessor = primary_lessor()
        for lease_id, ttl in [(1, 30), (2, 10), (3, 20), (4, 40)]:
            lessor.grant(lease_id, ttl, 0.0)
        self.assertEqual(expired_ids(lessor, 9.9), [])
        self.assertEqual(expired_ids(lessor, 30.0), [2, 3, 1])

    def test_per_call_limit(self) -> None:
        """At most limit leases per call; the rest come in the next calls."""
        lessor = primary_lessor()
        for lease_id in range(1, 8):
            lessor.grant(lease_id, 10 + lease_id, 0.0)
        self.assertEqual(expired_ids(lessor, 100.0, 3), [1, 2, 3])
        self.assertEqual(expired_ids(lessor, 100.5, 3), [4, 5, 6])
        self.assertEqual(expired_ids(lessor, 101.0, 3), [7])
        self.assertEqual(expired_ids(lessor, 101.5, 3), [])

    def test_no_double_expiry(self) -> None:
        """A reported lease is not reported again while its revoke is pending."""
        lessor = primary_lessor()
        lessor.grant(1, 10, 0.0)
        self.assertEqual(expired_ids(lessor, 10.0), [1])
        for now in (10.5, 11.0, 12.0, 12.9):
            self.assertEqual(expired_ids(lessor, now), [])

    def test_retry_when_not_revoked(self) -> None:
        """A lease still held retry_interval (3 s) after it was reported is reported again."""
        lessor = primary_lessor()
        lessor.grant(1, 10, 0.0)
        self.assertEqual(expired_ids(lessor, 10.0), [1])
        self.assertEqual(expired_ids(lessor, 13.0), [1])
        self.assertEqual(expired_ids(lessor, 15.0), [])
        self.assertEqual(expired_ids(lessor, 16.0), [1])

    def test_custom_retry_interval(self) -> None:
        """The retry interval is configurable."""
        lessor = primary_lessor(retry_interval=60.0)
        lessor.grant(1, 10, 0.0)
        self.assertEqual(expired_ids(lessor, 10.0), [1])
        self.assertEqual(expired_ids(lessor, 69.0), [])
        self.assertEqual(expired_ids(lessor, 70.0), [1])

    def test_reported_lease_is_the_held_one(self) -> None:
        """expired_leases returns the lessor's Lease objects, with their keys."""
        lessor = primary_lessor()
        lease = lessor.grant(1, 10, 0.0)
        lessor.attach(1, b"k")
        [found] = lessor.expired_leases(10.0, 500)
        self.assertIs(found, lease)
        self.assertEqual(found.keys, {b"k"})


class PromoteDemoteTests(SynchronousTestCase):
    def test_new_lessor_is_not_primary(self) -> None:
        """A new lessor is not primary and expires nothing."""
        lessor = Lessor(DictStorage(), MIN_TTL)
        self.assertFalse(lessor.primary)
        lessor.grant(1, 10, 0.0)
        self.assertEqual(expired_ids(lessor, 1e9), [])

    def test_demoted_lessor_never_expires(self) -> None:
        """After demote every expiry is forever and nothing is reported, however late."""
        lessor = primary_lessor()
        lessor.grant(1, 10, 0.0)
        lessor.grant(2, 20, 0.0)
        self.assertEqual(expired_ids(lessor, 10.0), [1])
        lessor.demote()
        self.assertFalse(lessor.primary)
        self.assertEqual([lease.expiry for lease in lessor.leases()], [FOREVER, FOREVER])
        self.assertEqual(expired_ids(lessor, 1e9), [])
        self.assertRaises(NotPrimaryError, lessor.renew, 2, 11.0)

    def test_promote_extends(self) -> None:
        """promote sets each expiry to now + TTL + extend, giving expired leases new life."""
        lessor = primary_lessor()
        lessor.grant(1, 10, 0.0)
        lessor.grant(2, 20, 0.0)
        lessor.demote()
        lessor.promote(5.0, 100.0)
        self.assertTrue(lessor.primary)
        self.assertEqual([lease.expiry for lease in lessor.leases()], [115.0, 125.0])
        self.assertEqual(expired_ids(lessor, 114.9), [])
        self.assertEqual(expired_ids(lessor, 115.0), [1])
        self.assertEqual(lessor.renew(2, 116.0), 20)

    def test_promote_uses_checkpointed_remaining_ttl(self) -> None:
        """A promoted lease with a checkpointed remaining TTL gets that instead of its TTL."""
        lessor = Lessor(DictStorage(), MIN_TTL)
        lessor.grant(1, 1000, 0.0)
        lessor.apply_checkpoint(1, 400)
        lessor.promote(1.5, 50.0)
        self.assertEqual(held(lessor, 1).expiry, 451.5)

    def test_promote_spreads_bunched_expiries(self) -> None:
        """With many leases expiring together, promote keeps each second to 3/4 of the revoke rate."""
        lessor = Lessor(DictStorage(), MIN_TTL)
        n = 2 * LEASE_REVOKE_RATE
        for lease_id in range(1, n + 1):
            lessor.grant(lease_id, 10, 0.0)
        lessor.promote(0.0, 0.0)
        target = 3 * LEASE_REVOKE_RATE // 4
        expiries = sorted(lease.expiry for lease in lessor.leases())
        self.assertEqual(expiries[:target], [10.0] * target)
        self.assertGreater(expiries[-1], 10.0 + n / target - 1)
        for second in range(10, 20):
            in_window = [e for e in expiries if second <= e < second + 1]
            self.assertLessEqual(len(in_window), target)
        # Every lease still expires, and each exactly when its spread expiry passes.
        self.assertEqual(len(expired_ids(lessor, 10.0, n)), target)
        self.assertEqual(len(expired_ids(lessor, expiries[-1], n)), n - target)

    def test_promote_leaves_few_leases_alone(self) -> None:
        """Under LEASE_REVOKE_RATE leases, expiries are not spread."""
        lessor = Lessor(DictStorage(), MIN_TTL)
        for lease_id in range(1, LEASE_REVOKE_RATE):
            lessor.grant(lease_id, 10, 0.0)
        lessor.promote(0.0, 0.0)
        self.assertEqual({lease.expiry for lease in lessor.leases()}, {10.0})

    def test_promote_spreads_only_crowded_windows(self) -> None:
        """Leases in an uncrowded window keep their expiry when another window is spread."""
        lessor = Lessor(DictStorage(), MIN_TTL)
        for lease_id in range(1, 1001):
            lessor.grant(lease_id, 10, 0.0)
        for lease_id in range(1001, 1101):
            lessor.grant(lease_id, 100, 0.0)
        lessor.promote(0.0, 0.0)
        late = {held(lessor, i).expiry for i in range(1001, 1101)}
        self.assertEqual(late, {100.0})
        early = sorted(held(lessor, i).expiry for i in range(1, 1001))
        self.assertEqual(early[749], 10.0)
        self.assertAlmostEqual(early[-1], 10.0 + 1000 / 750)


class CheckpointTests(SynchronousTestCase):
    def checkpointing(self, persist: bool = False) -> tuple[Lessor, DictStorage]:
        storage = DictStorage()
        lessor = primary_lessor(storage, checkpoint_interval=300.0, checkpoint_persist=persist)
        return lessor, storage

    def test_off_by_default(self) -> None:
        """Without a checkpoint interval nothing is ever due, and renew queues no clear."""
        lessor = primary_lessor()
        lessor.grant(1, 1000, 0.0)
        lessor.apply_checkpoint(1, 500)
        lessor.renew(1, 10.0)
        self.assertEqual(lessor.checkpoint_due(1e6, 1000), [])

    def test_due_after_interval(self) -> None:
        """A lease longer than the interval is checkpointed an interval after grant, rounded up."""
        lessor, _ = self.checkpointing()
        lessor.grant(1, 1000, 0.5)
        lessor.grant(2, 300, 0.5)  # not longer than the interval: never checkpointed
        self.assertEqual(lessor.checkpoint_due(300.0, 1000), [])
        self.assertEqual(lessor.checkpoint_due(300.5, 1000), [(1, 700)])
        self.assertEqual(lessor.checkpoint_due(300.5, 1000), [])

    def test_rescheduled_while_longer_than_interval(self) -> None:
        """Checkpoints repeat every interval while more than an interval is left."""
        lessor, _ = self.checkpointing()
        lessor.grant(1, 1000, 0.0)
        self.assertEqual(lessor.checkpoint_due(300.0, 10), [(1, 700)])
        self.assertEqual(lessor.checkpoint_due(600.0, 10), [(1, 400)])
        self.assertEqual(lessor.checkpoint_due(900.0, 10), [(1, 100)])
        self.assertEqual(lessor.checkpoint_due(1200.0, 10), [])

    def test_limit(self) -> None:
        """At most limit checkpoints per call, the rest in later calls."""
        lessor, _ = self.checkpointing()
        for lease_id in range(1, 6):
            lessor.grant(lease_id, 1000, float(lease_id))
        self.assertEqual(lessor.checkpoint_due(400.0, 2), [(1, 601), (2, 602)])
        self.assertEqual(lessor.checkpoint_due(400.0, 10), [(3, 603), (4, 604), (5, 605)])

    def test_skips_full_and_expired_leases(self) -> None:
        """A lease just renewed (nothing to save) or already expired is not checkpointed."""
        lessor, _ = self.checkpointing()
        lessor.grant(1, 1000, 0.0)
        lessor.grant(2, 301, 0.0)
        lessor.renew(1, 301.5)
        self.assertEqual(lessor.checkpoint_due(302.0, 10), [])
        # The renewed lease is still checkpointed an interval later.
        self.assertEqual(lessor.checkpoint_due(602.0, 10), [(1, 700)])

    def test_apply_checkpoint(self) -> None:
        """apply_checkpoint records the remaining TTL; unknown ids are ignored."""
        lessor, storage = self.checkpointing()
        lessor.grant(1, 1000, 0.0)
        lessor.apply_checkpoint(1, 700)
        lessor.apply_checkpoint(99, 5)
        self.assertEqual(held(lessor, 1).remaining_ttl, 700)
        self.assertEqual(stored(storage), {1: (1000, 0)})

    def test_persist(self) -> None:
        """With checkpoint_persist the remaining TTL is also stored."""
        lessor, storage = self.checkpointing(persist=True)
        lessor.grant(1, 1000, 0.0)
        lessor.apply_checkpoint(1, 700)
        self.assertEqual(stored(storage), {1: (1000, 700)})

    def test_renew_queues_a_clear(self) -> None:
        """Renewing a checkpointed lease queues (id, 0) first in the next checkpoint_due."""
        lessor, _ = self.checkpointing()
        lessor.grant(1, 1000, 0.0)
        lessor.grant(2, 1000, 0.0)
        lessor.apply_checkpoint(1, 700)
        lessor.renew(1, 301.0)
        lessor.renew(2, 301.0)  # no checkpointed TTL: nothing to clear
        self.assertEqual(lessor.checkpoint_due(301.0, 10), [(1, 0)])
        lessor.apply_checkpoint(1, 0)
        self.assertEqual(held(lessor, 1).refresh_ttl(), 1000)
        self.assertEqual(lessor.checkpoint_due(301.0, 10), [])

    def test_checkpointed_lease_survives_leader_change(self) -> None:
        """A new primary refreshes a checkpointed lease to its remaining TTL, not its full TTL."""
        old, storage = self.checkpointing()
        follower = Lessor(storage, MIN_TTL, checkpoint_interval=300.0)
        for lessor in (old, follower):
            lessor.grant(1, 1000, 0.0)
        [(lease_id, remaining)] = old.checkpoint_due(300.0, 10)
        for lessor in (old, follower):
            lessor.apply_checkpoint(lease_id, remaining)
        follower.promote(0.0, 310.0)
        self.assertEqual(held(follower, 1).expiry, 1010.0)

    def test_demote_drops_schedule(self) -> None:
        """A demoted lessor has no checkpoints due; promote schedules them again."""
        lessor, _ = self.checkpointing()
        lessor.grant(1, 1000, 0.0)
        lessor.apply_checkpoint(1, 700)
        lessor.renew(1, 1.0)
        lessor.demote()
        self.assertEqual(lessor.checkpoint_due(1e6, 10), [])
        lessor.promote(0.0, 10.0)
        self.assertEqual(lessor.checkpoint_due(310.0, 10), [(1, 400)])


class RestoreTests(SynchronousTestCase):
    def test_restore_loads_every_lease(self) -> None:
        """restore loads each stored lease (minimum TTL applied) with forever expiry."""
        storage = DictStorage()
        first = primary_lessor(storage, checkpoint_interval=300.0, checkpoint_persist=True)
        first.grant(1, 10, 0.0)
        first.grant(2, 1000, 0.0)
        first.grant(3, 10, 0.0)
        first.apply_checkpoint(2, 600)
        first.revoke(3)
        storage.put(LEASE_BUCKET, lease_key(4), LeasePB(ID=4, TTL=1).SerializeToString())

        lessor = Lessor(storage, MIN_TTL)
        lessor.restore()
        got = [(le.id, le.ttl, le.remaining_ttl, le.expiry) for le in lessor.leases()]
        self.assertEqual(got, [(1, 10, 0, FOREVER), (2, 1000, 600, FOREVER), (4, 2, 0, FOREVER)])
        self.assertFalse(lessor.primary)

    def test_restore_replaces_state_and_demotes(self) -> None:
        """restore drops leases, keys and schedules not in storage, and leaves the lessor not primary."""
        storage = DictStorage()
        lessor = primary_lessor(storage)
        lessor.grant(1, 10, 0.0)
        lessor.attach(1, b"k")
        del storage.buckets[LEASE_BUCKET][lease_key(1)]
        storage.put(LEASE_BUCKET, lease_key(2), LeasePB(ID=2, TTL=30).SerializeToString())
        lessor.restore()
        self.assertEqual([le.id for le in lessor.leases()], [2])
        self.assertEqual(lessor.get_lease(b"k"), 0)
        self.assertEqual(expired_ids(lessor, 1e9), [])
        lessor.attach(2, b"k")
        lessor.promote(0.0, 100.0)
        self.assertEqual(expired_ids(lessor, 130.0), [2])
        self.assertEqual(lessor.revoke(2), [b"k"])


class ConstantsTests(SynchronousTestCase):
    def test_etcd_numbers(self) -> None:
        """The limits and cadence are etcd's: 9e9 s max TTL, 1000/s revokes as 500 per 0.5 s."""
        self.assertEqual(MAX_LEASE_TTL, 9_000_000_000)
        self.assertEqual((LEASE_REVOKE_RATE, REVOKE_LIMIT, LEASE_CHECK_INTERVAL), (1000, 500, 0.5))
        self.assertEqual((CHECKPOINT_BATCH_LIMIT, DEFAULT_CHECKPOINT_INTERVAL), (1000, 300.0))
        self.assertEqual(EXPIRED_LEASE_RETRY_INTERVAL, 3.0)
