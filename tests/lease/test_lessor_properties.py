"""Property test: the lessor against a plain model of leases, keys and expiry."""

import math
from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted.lease import (
    LeaseError,
    LeaseExistsError,
    LeaseExpiredError,
    LeaseNotFoundError,
    Lessor,
    NotPrimaryError,
)

from .fake_storage import DictStorage

MIN_TTL = 2
IDS = st.integers(1, 6)
# Times are quarter seconds: every sum of them is exact in binary floating point.
KEYS = st.sampled_from([b"a", b"b", b"c", b"d"])

STEPS = {
    "grant": st.tuples(st.just("grant"), IDS, st.integers(-1, 6)),
    "renew": st.tuples(st.just("renew"), IDS),
    "revoke": st.tuples(st.just("revoke"), IDS),
    "attach": st.tuples(st.just("attach"), IDS, KEYS),
    "detach": st.tuples(st.just("detach"), IDS, KEYS),
    "advance": st.tuples(st.just("advance"), st.integers(0, 24).map(lambda q: q / 4)),
    "expire": st.tuples(st.just("expire"), st.integers(1, 3)),
    "promote": st.tuples(st.just("promote"), st.integers(0, 8).map(lambda q: q / 4)),
    "demote": st.just(("demote",)),
}
# How often each step is drawn, relative to the others.
WEIGHTS = {"grant": 4, "renew": 3, "revoke": 1, "attach": 2, "detach": 1, "advance": 4, "expire": 4}
ops = [op for op in STEPS for _ in range(WEIGHTS.get(op, 1))]
steps = st.lists(st.sampled_from(ops).flatmap(STEPS.__getitem__), min_size=20, max_size=100)


@dataclass
class ModelLease:
    ttl: int
    expiry: float
    # When expired_leases may report it next: its expiry, then retry_interval after a report.
    report_at: float
    keys: set[bytes] = field(default_factory=set)


@dataclass
class Model:
    retry: float
    primary: bool = False
    now: float = 0.0
    leases: dict[int, ModelLease] = field(default_factory=dict)

    def refresh(self, lease: ModelLease, extend: float) -> None:
        lease.expiry = self.now + extend + lease.ttl
        lease.report_at = lease.expiry


class LessorModelTests(SynchronousTestCase):
    @settings(max_examples=400, deadline=None)
    @given(steps=steps, retry=st.sampled_from([3.0, math.inf]), start_primary=st.booleans())
    def test_against_model(self, steps: list[tuple], retry: float, start_primary: bool) -> None:
        """Expiry is reported iff grant/renew + TTL <= now, once per retry; keys stay consistent."""
        lessor = Lessor(DictStorage(), MIN_TTL, retry_interval=retry)
        model = Model(retry)
        if start_primary:
            lessor.promote(0.0, 0.0)
            model.primary = True
        for step in steps:
            self.apply(lessor, model, step)
            self.check(lessor, model)

    def apply(self, lessor: Lessor, model: Model, step: tuple) -> None:
        op, *args = step
        now = model.now
        if op == "grant":
            lease_id, ttl = args
            expected: type[LeaseError] | None = (
                LeaseExistsError if lease_id in model.leases else None
            )
            got = self.outcome(lessor.grant, lease_id, ttl, now)
            self.assertEqual(got, expected, step)
            if expected is None:
                lease = ModelLease(max(ttl, MIN_TTL), math.inf, math.inf)
                if model.primary:
                    model.refresh(lease, 0.0)
                model.leases[lease_id] = lease
        elif op == "renew":
            (lease_id,) = args
            lease = model.leases.get(lease_id)
            if not model.primary:
                expected = NotPrimaryError
            elif lease is None:
                expected = LeaseNotFoundError
            elif lease.expiry <= now:
                expected = LeaseExpiredError
            else:
                expected = None
            self.assertEqual(self.outcome(lessor.renew, lease_id, now), expected, step)
            if expected is None:
                assert lease is not None
                model.refresh(lease, 0.0)
        elif op == "revoke":
            (lease_id,) = args
            lease = model.leases.pop(lease_id, None)
            if lease is None:
                self.assertRaises(LeaseNotFoundError, lessor.revoke, lease_id)
            else:
                self.assertEqual(lessor.revoke(lease_id), sorted(lease.keys), step)
        elif op == "attach":
            lease_id, key = args
            if lease_id not in model.leases:
                self.assertRaises(LeaseNotFoundError, lessor.attach, lease_id, key)
            else:
                lessor.attach(lease_id, key)
                for other in model.leases.values():
                    other.keys.discard(key)
                model.leases[lease_id].keys.add(key)
        elif op == "detach":
            lease_id, key = args
            lessor.detach(lease_id, key)
            if lease_id in model.leases:
                model.leases[lease_id].keys.discard(key)
        elif op == "advance":
            model.now += args[0]
        elif op == "expire":
            (limit,) = args
            self.check_expired(lessor.expired_leases(now, limit), model, limit)
        elif op == "promote":
            (extend,) = args
            lessor.promote(extend, now)
            model.primary = True
            for lease in model.leases.values():
                model.refresh(lease, extend)
        else:
            lessor.demote()
            model.primary = False
            for lease in model.leases.values():
                lease.expiry = lease.report_at = math.inf

    def check_expired(self, found: list, model: Model, limit: int) -> None:
        now = model.now
        due = {i: le.report_at for i, le in model.leases.items() if le.report_at <= now}
        ids = [lease.id for lease in found]
        self.assertEqual(len(ids), len(set(ids)))
        self.assertLessEqual(set(ids), set(due))
        self.assertEqual(len(ids), min(limit, len(due)))
        # Earliest first: nothing left behind is due before anything reported.
        times = [due[i] for i in ids]
        self.assertEqual(times, sorted(times))
        left = [t for i, t in due.items() if i not in ids]
        if ids and left:
            self.assertLessEqual(max(times), min(left))
        for lease_id in ids:
            lease = model.leases[lease_id]
            self.assertLessEqual(lease.expiry, now)
            lease.report_at = now + model.retry

    def check(self, lessor: Lessor, model: Model) -> None:
        self.assertEqual(lessor.primary, model.primary)
        self.assertEqual(
            [le.id for le in lessor.leases()],
            sorted(model.leases, key=lambda i: (model.leases[i].expiry, i)),
        )
        owner = {}
        for lease_id, want in model.leases.items():
            lease = lessor.lookup(lease_id)
            assert lease is not None
            self.assertEqual(
                (lease.ttl, lease.expiry, lease.keys), (want.ttl, want.expiry, want.keys)
            )
            ttl = lessor.time_to_live(lease_id, model.now)
            remaining = (
                want.ttl if want.expiry == math.inf else max(0, int(want.expiry - model.now))
            )
            self.assertEqual(ttl, (want.ttl, remaining, sorted(want.keys)))
            owner.update(dict.fromkeys(want.keys, lease_id))
        for key in (b"a", b"b", b"c", b"d"):
            self.assertEqual(lessor.get_lease(key), owner.get(key, 0))

    @staticmethod
    def outcome(call, *args: object) -> type[LeaseError] | None:
        try:
            call(*args)
        except LeaseError as err:
            return type(err)
        return None
