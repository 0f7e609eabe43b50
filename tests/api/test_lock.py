"""Tests for etcd_twisted.api.lock: Lock and Unlock over a synchronous fake server."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted._pb import v3lock_pb2
from etcd_twisted.api import lock
from etcd_twisted.grpc import GrpcError, Registry, StatusCode
from tests.api.fake_server import FakeContext, FakeServer


class Harness:
    def __init__(self) -> None:
        self.server = FakeServer()
        self.registry = Registry()
        lock.register(self.registry, self.server)

    def call(self, method: str, request: Any, ctx: FakeContext | None = None) -> Deferred[Any]:
        handler = self.registry.lookup(f"/v3lockpb.Lock/{method}").handler
        return handler(request, ctx or FakeContext())

    def lock(self, name: bytes, lease: int, ctx: FakeContext | None = None) -> Deferred[Any]:
        return self.call("Lock", v3lock_pb2.LockRequest(name=name, lease=lease), ctx)

    def unlock(self, key: bytes) -> v3lock_pb2.UnlockResponse:
        return self.result(self.call("Unlock", v3lock_pb2.UnlockRequest(key=key)))

    @staticmethod
    def result(d: Deferred[Any]) -> Any:
        results: list[Any] = []
        d.addBoth(results.append)
        assert results, "the call has not answered"
        return results[0]


class LockTests(SynchronousTestCase):
    def error(self, d: Deferred[Any]) -> GrpcError:
        return self.failureResultOf(d, GrpcError).value

    def test_uncontended(self) -> None:
        """A free lock is taken at once: key name/<lease hex>, header of the txn that put it."""
        h = Harness()
        lease = h.server.grant()
        resp = self.successResultOf(h.lock(b"m", lease))
        self.assertEqual(resp.key, b"m/%x" % lease)
        self.assertEqual((resp.header.revision, resp.header.member_id), (2, 22))
        self.assertEqual(h.server.keys(b"m/"), [resp.key])

    def test_relock_with_same_lease(self) -> None:
        """Locking again with the holder's lease answers at once with the same key and revision."""
        h = Harness()
        lease = h.server.grant()
        first = self.successResultOf(h.lock(b"m", lease))
        again = self.successResultOf(h.lock(b"m", lease))
        self.assertEqual((again.key, again.header.revision), (first.key, first.header.revision))

    def test_second_waits_for_unlock(self) -> None:
        """A second lease waits until the holder unlocks; its header is from after the wait."""
        h = Harness()
        l1, l2 = h.server.grant(), h.server.grant()
        first = self.successResultOf(h.lock(b"m", l1))
        second = h.lock(b"m", l2)
        self.assertNoResult(second)
        self.assertEqual(h.server.keys(b"m/"), [first.key, b"m/%x" % l2])
        h.server.put(b"m-other")  # writes elsewhere do not wake it
        self.assertNoResult(second)
        unlocked = h.unlock(first.key)
        resp = self.successResultOf(second)
        self.assertEqual(resp.key, b"m/%x" % l2)
        self.assertEqual(resp.header.revision, unlocked.header.revision)

    def test_waits_for_every_older_holder(self) -> None:
        """With three waiters the last goes only once both older keys are gone."""
        h = Harness()
        l1, l2, l3 = h.server.grant(), h.server.grant(), h.server.grant()
        first = self.successResultOf(h.lock(b"m", l1))
        second, third = h.lock(b"m", l2), h.lock(b"m", l3)
        h.unlock(first.key)
        self.assertNoResult(third)
        self.successResultOf(second)
        h.server.revoke(l2)
        self.assertEqual(self.successResultOf(third).key, b"m/%x" % l3)

    def test_holder_lease_revoked(self) -> None:
        """The holder's lease going (revoke or expiry) hands the lock on."""
        h = Harness()
        l1, l2 = h.server.grant(), h.server.grant()
        self.successResultOf(h.lock(b"m", l1))
        second = h.lock(b"m", l2)
        h.server.revoke(l1)
        self.assertEqual(self.successResultOf(second).key, b"m/%x" % l2)

    def test_waiter_lease_expired(self) -> None:
        """A waiter whose lease expired hears "mutex: session is expired" once it would hold."""
        h = Harness()
        l1, l2 = h.server.grant(), h.server.grant()
        first = self.successResultOf(h.lock(b"m", l1))
        second = h.lock(b"m", l2)
        h.server.revoke(l2)
        self.assertNoResult(second)
        h.unlock(first.key)
        error = self.error(second)
        self.assertEqual(
            (error.code, error.message), (StatusCode.UNKNOWN, "mutex: session is expired")
        )

    def test_cancelled_waiter_deletes_its_key(self) -> None:
        """A Lock call cancelled while waiting removes its key and its watch."""
        h = Harness()
        l1, l2 = h.server.grant(), h.server.grant()
        first = self.successResultOf(h.lock(b"m", l1))
        ctx = FakeContext()
        second = h.lock(b"m", l2, ctx)
        ctx.cancel()
        self.assertEqual(self.error(second).code, StatusCode.CANCELLED)
        self.assertEqual(h.server.keys(b"m/"), [first.key])
        self.assertEqual(h.server.watchable.streams, set())

    def test_unknown_lease(self) -> None:
        """An unknown lease fails with etcd's text and code UNKNOWN (as etcd's lock server)."""
        h = Harness()
        error = self.error(h.lock(b"m", 12345))
        self.assertEqual(
            (error.code, error.message),
            (StatusCode.UNKNOWN, "etcdserver: requested lease not found"),
        )

    def test_lease_zero_grants_session_lease(self) -> None:
        """Lease 0 gets a new 60-second lease, which holds the key."""
        h = Harness()
        resp = self.successResultOf(h.lock(b"m", 0))
        (lease,) = h.server.lease_keys
        self.assertEqual(h.server.grants, [60])
        self.assertEqual(resp.key, b"m/%x" % lease)

    def test_unlock(self) -> None:
        """Unlock deletes the key (a missing key is fine); an empty key is refused."""
        h = Harness()
        lease = h.server.grant()
        resp = self.successResultOf(h.lock(b"m", lease))
        self.assertEqual(h.unlock(resp.key).header.revision, 3)
        self.assertEqual(h.unlock(b"nope").header.revision, 3)
        error = self.error(h.call("Unlock", v3lock_pb2.UnlockRequest()))
        self.assertEqual(
            (error.code, error.message), (StatusCode.UNKNOWN, "etcdserver: key is not provided")
        )

    def test_callers_credentials(self) -> None:
        """Every server call runs with the credentials of the call's token; a dead token
        fails with etcd's text (UNKNOWN, as every lock error)."""
        h = Harness()
        l1, l2 = h.server.grant(), h.server.grant()
        first = self.successResultOf(h.lock(b"m", l1, FakeContext(token="alice")))
        h.server.auths.clear()
        second = h.lock(b"m", l2, FakeContext(token="bob"))
        h.unlock(first.key)
        self.successResultOf(second)
        self.assertEqual(h.server.auths[:2], ["bob", "bob"])
        self.assertNotIn(None, h.server.auths[:2])
        error = self.error(h.lock(b"m", l1, FakeContext(token="bad")))
        self.assertEqual(
            (error.code, error.message), (StatusCode.UNKNOWN, "etcdserver: invalid auth token")
        )

    def test_hasleader_without_leader(self) -> None:
        """hasleader with no leader is UNAVAILABLE "no leader", before anything is written."""
        h = Harness()
        h.server.leader_id = 0
        error = self.error(h.lock(b"m", 0, FakeContext(hasleader="true")))
        self.assertEqual(
            (error.code, error.message), (StatusCode.UNAVAILABLE, "etcdserver: no leader")
        )
        self.assertEqual(h.server.lease_keys, {})
