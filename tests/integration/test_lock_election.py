"""Lock and Election against real etcd 3.5.1: the same grpcio calls, the same etcdctl runs.

Each scenario runs against both servers at once and records every answer (the
response without cluster id, member id and term; lease ids named in order of
appearance, in keys too), or the error's code and text. The two transcripts must
be equal, revisions included.

- Lock: uncontended, again with the holder's lease, a second lease waiting until the
  holder unlocks, then until the next holder's lease is revoked, an unknown lease,
  lease 0 (a new session lease), a waiter whose lease expires ("mutex: session is
  expired"), a waiter whose deadline passes (its key is removed).
- Election: no leader, campaign, a second candidate waiting, proclaim (and a stale
  proclaim), leader, resign, the waiting candidate elected, observe's messages,
  a resign without a leader key.
- With auth on: the caller's permissions apply (permission denied, no token).
- etcdctl 3.5.1's ``lock`` and ``elect`` (client-side, over KV, Lease and Watch).
"""

from __future__ import annotations

import base64
import re
import signal
from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf import json_format
from google.protobuf.message import Message
from twisted.internet import reactor
from twisted.internet.defer import Deferred, ensureDeferred, gatherResults
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from etcd_twisted._pb import (
    rpc_pb2,
    rpc_pb2_grpc,
    v3election_pb2,
    v3election_pb2_grpc,
    v3lock_pb2,
    v3lock_pb2_grpc,
)
from tests.support.processes import etcdctl, spawn_etcdctl, start_pair

L = v3lock_pb2
E = v3election_pb2
_HEADER_IDS = ("cluster_id", "member_id", "raft_term")


def call(
    method: Any, request: Message, timeout: float = 15.0, metadata: Any = None
) -> Deferred[Any]:
    """A grpcio unary call as a Deferred firing with the response or the ``grpc.RpcError``."""
    d: Deferred[Any] = Deferred()

    def done(future: Any) -> None:
        try:
            result = future.result()
        except grpc.RpcError as e:
            result = e
        reactor.callFromThread(d.callback, result)

    method.future(request, timeout=timeout, metadata=metadata).add_done_callback(done)
    return d


class Client:
    """One server's stubs, and its transcript with lease ids named ``L1``, ``L2``…"""

    def __init__(self, endpoint: str) -> None:
        self.channel = grpc.insecure_channel(endpoint)
        self.kv = rpc_pb2_grpc.KVStub(self.channel)
        self.lease = rpc_pb2_grpc.LeaseStub(self.channel)
        self.lock = v3lock_pb2_grpc.LockStub(self.channel)
        self.election = v3election_pb2_grpc.ElectionStub(self.channel)
        self.names: dict[int, str] = {}
        self.lines: list[tuple[str, Any]] = []

    def name(self, lease_id: int) -> str:
        if lease_id not in self.names:
            self.names[lease_id] = f"L{len(self.names) + 1}"
        return self.names[lease_id]

    def _key(self, raw: str) -> str:
        key = base64.b64decode(raw).decode()
        prefix, sep, tail = key.rpartition("/")
        if sep and re.fullmatch(r"[0-9a-f]+", tail):
            return f"{prefix}/<{self.name(int(tail, 16))}>"
        return key

    def _normal(self, value: Any, field: str = "") -> Any:
        if isinstance(value, dict):
            return {
                k: self._normal(v, k)
                for k, v in value.items()
                if not (field == "header" and k in _HEADER_IDS)
            }
        if field == "key":
            return self._key(value)
        if field in ("lease", "ID"):
            return self.name(int(value))
        return value

    def record(self, label: str, result: Any) -> Any:
        """Note ``result`` (a response or an error) under ``label``; returns it."""
        if isinstance(result, grpc.RpcError):
            entry: Any = ("error", result.code().name, result.details())
        else:
            body = json_format.MessageToDict(result, preserving_proto_field_name=True)
            entry = self._normal(body)
        self.lines.append((label, entry))
        return result

    async def do(
        self, label: str, method: Any, request: Message, timeout: float = 15.0, md: Any = None
    ) -> Any:
        return self.record(label, await call(method, request, timeout, md))

    async def grant(self, ttl: int, md: Any = None) -> int:
        resp = await call(self.lease.LeaseGrant, rpc_pb2.LeaseGrantRequest(TTL=ttl), metadata=md)
        self.name(resp.ID)
        return resp.ID

    async def keys(self, prefix: bytes) -> list[bytes]:
        end = prefix[:-1] + bytes([prefix[-1] + 1])
        resp = await call(self.kv.Range, rpc_pb2.RangeRequest(key=prefix, range_end=end))
        return [kv.key for kv in resp.kvs]

    async def wait_keys(self, prefix: bytes, count: int, timeout: float = 15.0) -> None:
        """Poll until ``count`` keys exist under ``prefix``."""
        deadline = reactor.seconds() + timeout
        while True:
            found = await self.keys(prefix)
            if len(found) == count:
                return
            if reactor.seconds() > deadline:
                raise AssertionError(f"{prefix!r}: {found} is not {count} keys")
            await deferLater(reactor, 0.02, lambda: None)


async def lock_scenario(c: Client) -> list[tuple[str, Any]]:
    """Contended locks, revoked and expiring leases, a deadline while waiting."""
    l1, l2, l3 = await c.grant(30), await c.grant(30), await c.grant(30)
    first = await c.do("lock m L1", c.lock.Lock, L.LockRequest(name=b"m", lease=l1))
    await c.do("lock m L1 again", c.lock.Lock, L.LockRequest(name=b"m", lease=l1))
    second = call(c.lock.Lock, L.LockRequest(name=b"m", lease=l2))
    await c.wait_keys(b"m/", 2)
    assert not second.called, "the second lock did not wait"
    await c.do("unlock L1", c.lock.Unlock, L.UnlockRequest(key=first.key))
    c.record("lock m L2 after unlock", await second)
    third = call(c.lock.Lock, L.LockRequest(name=b"m", lease=l3))
    await c.wait_keys(b"m/", 2)
    assert not third.called, "the third lock did not wait"
    await c.do("revoke L2", c.lease.LeaseRevoke, rpc_pb2.LeaseRevokeRequest(ID=l2))
    c.record("lock m L3 after revoke", await third)
    await c.do("unknown lease", c.lock.Lock, L.LockRequest(name=b"m", lease=12345))
    await c.do("lease 0", c.lock.Lock, L.LockRequest(name=b"z"))
    await c.do("unlock empty", c.lock.Unlock, L.UnlockRequest())
    await c.do("unlock missing", c.lock.Unlock, L.UnlockRequest(key=b"nope"))
    # A waiter whose lease expires learns it only when it would hold the lock.
    short = await c.grant(2)
    holder = await c.do("lock x L1", c.lock.Lock, L.LockRequest(name=b"x", lease=l1))
    waiter = call(c.lock.Lock, L.LockRequest(name=b"x", lease=short))
    await c.wait_keys(b"x/", 2)
    await c.wait_keys(b"x/", 1, timeout=15)
    assert not waiter.called, "the expired waiter answered before the holder unlocked"
    await c.do("unlock x L1", c.lock.Unlock, L.UnlockRequest(key=holder.key))
    c.record("expired waiter", await waiter)
    # A waiter whose deadline passes removes its key.
    await c.do("lock n L1", c.lock.Lock, L.LockRequest(name=b"n", lease=l1))
    late = await call(c.lock.Lock, L.LockRequest(name=b"n", lease=l3), timeout=0.5)
    # The client's deadline or etcd's answer to it (UNKNOWN "context deadline exceeded")
    # may come first: either is the deadline.
    assert isinstance(late, grpc.RpcError), late
    assert "deadline exceeded" in (late.details() or "").lower(), late
    c.lines.append(("lock n L3 deadline", "deadline exceeded"))
    await c.wait_keys(b"n/", 1)
    c.lines.append(("n keys", [c._key(base64.b64encode(k).decode()) for k in await c.keys(b"n/")]))
    return c.lines


async def election_scenario(c: Client) -> list[tuple[str, Any]]:
    """Campaign, proclaim, leader, resign and observe, with a second candidate waiting."""
    l1, l2 = await c.grant(30), await c.grant(30)
    await c.do("leader none", c.election.Leader, E.LeaderRequest(name=b"e"))
    one = await c.do(
        "campaign one", c.election.Campaign, E.CampaignRequest(name=b"e", lease=l1, value=b"one")
    )
    observe = c.election.Observe(E.LeaderRequest(name=b"e"), timeout=30)
    c.record("observe 1", await deferToThread(next, observe))
    two = call(c.election.Campaign, E.CampaignRequest(name=b"e", lease=l2, value=b"two"))
    await c.wait_keys(b"e/", 2)
    assert not two.called, "the second candidate did not wait"
    await c.do(
        "campaign one again",
        c.election.Campaign,
        E.CampaignRequest(name=b"e", lease=l1, value=b"one"),
    )
    await c.do("proclaim", c.election.Proclaim, E.ProclaimRequest(leader=one.leader, value=b"uno"))
    stale = E.LeaderKey()
    stale.CopyFrom(one.leader)
    stale.rev = 1
    await c.do("proclaim stale", c.election.Proclaim, E.ProclaimRequest(leader=stale, value=b"x"))
    await c.do("resign stale", c.election.Resign, E.ResignRequest(leader=stale))
    await c.do("leader one", c.election.Leader, E.LeaderRequest(name=b"e"))
    await c.do("resign one", c.election.Resign, E.ResignRequest(leader=one.leader))
    c.record("campaign two", await two)
    await c.do("leader two", c.election.Leader, E.LeaderRequest(name=b"e"))
    await c.do("proclaim no leader", c.election.Proclaim, E.ProclaimRequest(value=b"x"))
    await c.do("resign no leader", c.election.Resign, E.ResignRequest())
    c.record("observe 2", await deferToThread(next, observe))
    c.record("observe 3", await deferToThread(next, observe))
    observe.cancel()
    return c.lines


async def auth_scenario(c: Client) -> list[tuple[str, Any]]:
    """With auth on, locks and elections run with the caller's permissions (user u may
    read and write ``m/`` only)."""
    auth = rpc_pb2_grpc.AuthStub(c.channel)
    resp = await call(auth.Authenticate, rpc_pb2.AuthenticateRequest(name="u", password="pw"))
    md = [("token", resp.token)]
    lease = await c.grant(30, md)
    await c.do("lock m", c.lock.Lock, L.LockRequest(name=b"m", lease=lease), md=md)
    await c.do("lock x", c.lock.Lock, L.LockRequest(name=b"x", lease=lease), md=md)
    await c.do("lock without token", c.lock.Lock, L.LockRequest(name=b"m", lease=lease))
    await c.do("leader x", c.election.Leader, E.LeaderRequest(name=b"x"), md=md)
    campaign = E.CampaignRequest(name=b"m", lease=lease, value=b"v")
    await c.do("campaign m", c.election.Campaign, campaign, md=md)
    return c.lines


class LockElectionTests(TestCase):
    timeout = 120

    async def pair(self) -> tuple[str, str]:
        (etcd, _), (ours, _) = await start_pair(self, self.mktemp())
        return f"127.0.0.1:{etcd.client_port}", f"127.0.0.1:{ours.client_port}"

    async def both(
        self, scenario: Callable[[Client], Any], endpoints: tuple[str, str]
    ) -> tuple[list[Any], list[Any]]:
        clients = [Client(e) for e in endpoints]
        for c in clients:
            self.addCleanup(c.channel.close)
        etcd, ours = await gatherResults(
            [ensureDeferred(scenario(c)) for c in clients], consumeErrors=True
        )
        return etcd, ours

    def assertSameTranscript(self, etcd: list[Any], ours: list[Any]) -> None:
        for (label, expected), (our_label, got) in zip(etcd, ours, strict=True):
            self.assertEqual(our_label, label)
            self.assertEqual(got, expected, f"{label}: ours differs from etcd 3.5.1")

    async def test_grpc_lock_and_election(self) -> None:
        """Lock and Election answer field by field as etcd 3.5.1 does."""
        endpoints = await self.pair()
        etcd, ours = await self.both(lock_scenario, endpoints)
        self.assertSameTranscript(etcd, ours)
        lines = dict(etcd)
        self.assertEqual(lines["expired waiter"], ("error", "UNKNOWN", "mutex: session is expired"))
        self.assertEqual(lines["n keys"], ["n/<L1>"])
        etcd, ours = await self.both(election_scenario, endpoints)
        self.assertSameTranscript(etcd, ours)
        self.assertEqual(dict(etcd)["observe 3"]["kv"]["value"], "dHdv")

    async def test_with_auth(self) -> None:
        """With auth enabled, permissions and token errors match etcd 3.5.1's."""
        endpoints = await self.pair()
        for endpoint in endpoints:
            for args in (
                ("user", "add", "root:rootpw"),
                ("user", "grant-role", "root", "root"),
                ("user", "add", "u:pw"),
                ("role", "add", "r"),
                ("role", "grant-permission", "r", "readwrite", "m/", "--prefix"),
                ("user", "grant-role", "u", "r"),
                ("auth", "enable"),
            ):
                done = await etcdctl(endpoint, *args)
                self.assertEqual(done.code, 0, f"{args}: {done.err}")
        etcd, ours = await self.both(auth_scenario, endpoints)
        self.assertSameTranscript(etcd, ours)
        self.assertEqual(
            dict(etcd)["lock x"], ("error", "UNKNOWN", "etcdserver: permission denied")
        )

    async def test_etcdctl_lock_and_elect(self) -> None:
        """etcdctl lock and elect (client-side) print and wait alike on both servers."""
        endpoints = await self.pair()
        outputs = await gatherResults(
            [ensureDeferred(self.etcdctl_session(e)) for e in endpoints], consumeErrors=True
        )
        self.assertEqual(outputs[1], outputs[0])

    async def etcdctl_session(self, endpoint: str) -> list[Any]:
        c = Client(endpoint)
        self.addCleanup(c.channel.close)
        seen: list[Any] = []

        def normal(text: str) -> str:
            return re.sub(r"/[0-9a-f]{6,}\b", "/<lease>", text)

        once = await etcdctl(endpoint, "lock", "one", "echo", "held")
        seen.append(("lock with command", once.code, once.out))
        holder = spawn_etcdctl(self, endpoint, "lock", "mylock")
        await holder.wait_output("mylock/")
        waiter = spawn_etcdctl(self, endpoint, "lock", "mylock", "echo", "second")
        await c.wait_keys(b"mylock/", 2)
        seen.append(("waiter while held", waiter.running, waiter.stdout))
        held = await holder.stop(signal.SIGINT)
        done = await waiter.wait_exit(15)
        seen.append(("holder", normal(held.out)))
        seen.append(("waiter", done.code, done.out))
        observer = spawn_etcdctl(self, endpoint, "elect", "-l", "el")
        first = spawn_etcdctl(self, endpoint, "elect", "el", "first")
        await first.wait_output("first")
        await observer.wait_output("first")
        second = spawn_etcdctl(self, endpoint, "elect", "el", "second")
        await c.wait_keys(b"el/", 2)
        seen.append(("second while first leads", second.stdout))
        await first.stop(signal.SIGINT)
        await second.wait_output("second")
        await observer.wait_output("second")
        await second.stop(signal.SIGINT)
        await observer.stop(signal.SIGINT)
        seen.append(("first", normal(first.stdout)))
        seen.append(("second", normal(second.stdout)))
        seen.append(("observer", normal(observer.stdout)))
        return seen
