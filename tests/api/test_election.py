"""Tests for etcd_twisted.api.election: Campaign, Proclaim, Leader, Observe, Resign
over a synchronous fake server."""

from __future__ import annotations

import base64
import json
from typing import Any

from treq.testing import StubTreq
from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted._pb import v3election_pb2 as epb
from etcd_twisted.api import election, lock
from etcd_twisted.api.gateway import Gateway
from etcd_twisted.api.http import HttpApi
from etcd_twisted.grpc import GrpcError, Registry, StatusCode
from etcd_twisted.metrics import Metrics
from tests.api.fake_server import FakeContext, FakeServer, FakeStream


class Harness:
    def __init__(self) -> None:
        self.server = FakeServer()
        self.registry = Registry()
        election.register(self.registry, self.server)

    def call(self, method: str, request: Any, ctx: FakeContext | None = None) -> Deferred[Any]:
        handler = self.registry.lookup(f"/v3electionpb.Election/{method}").handler
        return handler(request, ctx or FakeContext())

    def campaign(
        self, name: bytes, lease: int, value: bytes, ctx: FakeContext | None = None
    ) -> Deferred[Any]:
        return self.call("Campaign", epb.CampaignRequest(name=name, lease=lease, value=value), ctx)

    def observe(self, name: bytes) -> tuple[FakeStream, FakeContext, Deferred[None]]:
        stream, ctx = FakeStream(), FakeContext()
        handler = self.registry.lookup("/v3electionpb.Election/Observe").handler
        d = handler(epb.LeaderRequest(name=name), ctx, stream)
        return stream, ctx, d


def _message(d: Deferred[Any]) -> tuple[StatusCode, str]:
    results: list[Any] = []
    d.addErrback(results.append)
    error = results[0].value
    assert isinstance(error, GrpcError)
    return error.code, error.message


class CampaignTests(SynchronousTestCase):
    def test_first_candidate_wins_at_once(self) -> None:
        """The first candidate is leader at once: key name/<lease hex>, rev = its create revision."""
        h = Harness()
        lease = h.server.grant()
        resp = self.successResultOf(h.campaign(b"e", lease, b"v"))
        self.assertEqual(
            (resp.leader.name, resp.leader.key, resp.leader.rev, resp.leader.lease),
            (b"e", b"e/%x" % lease, 2, lease),
        )
        self.assertEqual(resp.header.revision, 2)
        leader = self.successResultOf(h.call("Leader", epb.LeaderRequest(name=b"e")))
        self.assertEqual((leader.kv.key, leader.kv.value), (b"e/%x" % lease, b"v"))

    def test_second_waits_and_keeps_its_txn_header(self) -> None:
        """A second candidate waits for the first to resign; its header is its own txn's."""
        h = Harness()
        l1, l2 = h.server.grant(), h.server.grant()
        first = self.successResultOf(h.campaign(b"e", l1, b"one"))
        second = h.campaign(b"e", l2, b"two")
        self.assertNoResult(second)
        self.successResultOf(h.call("Resign", epb.ResignRequest(leader=first.leader)))
        resp = self.successResultOf(second)
        self.assertEqual((resp.header.revision, resp.leader.rev), (3, 3))
        leader = self.successResultOf(h.call("Leader", epb.LeaderRequest(name=b"e")))
        self.assertEqual(leader.kv.value, b"two")

    def test_again_with_other_value_proclaims(self) -> None:
        """Campaigning again with the same lease and a new value updates the value."""
        h = Harness()
        lease = h.server.grant()
        first = self.successResultOf(h.campaign(b"e", lease, b"one"))
        again = self.successResultOf(h.campaign(b"e", lease, b"uno"))
        self.assertEqual(again.leader, first.leader)
        self.assertEqual(again.header.revision, 2)
        leader = self.successResultOf(h.call("Leader", epb.LeaderRequest(name=b"e")))
        self.assertEqual((leader.kv.value, leader.kv.version), (b"uno", 2))

    def test_cancelled_candidate_resigns(self) -> None:
        """A Campaign cancelled while waiting deletes its key."""
        h = Harness()
        l1, l2 = h.server.grant(), h.server.grant()
        self.successResultOf(h.campaign(b"e", l1, b"one"))
        ctx = FakeContext()
        second = h.campaign(b"e", l2, b"two", ctx)
        ctx.cancel()
        self.assertEqual(_message(second)[0], StatusCode.CANCELLED)
        self.assertEqual(h.server.keys(b"e/"), [b"e/%x" % l1])

    def test_unknown_lease(self) -> None:
        """An unknown lease: UNKNOWN with etcd's "requested lease not found"."""
        h = Harness()
        self.assertEqual(
            _message(h.campaign(b"e", 999, b"v")),
            (StatusCode.UNKNOWN, "etcdserver: requested lease not found"),
        )


class ProclaimResignLeaderTests(SynchronousTestCase):
    def test_proclaim(self) -> None:
        """Proclaim sets the value while the key has the leader's revision, else "not leader"."""
        h = Harness()
        lease = h.server.grant()
        leader = self.successResultOf(h.campaign(b"e", lease, b"v")).leader
        resp = self.successResultOf(
            h.call("Proclaim", epb.ProclaimRequest(leader=leader, value=b"w"))
        )
        self.assertEqual(resp.header.revision, 3)
        stale = epb.LeaderKey()
        stale.CopyFrom(leader)
        stale.rev = 1
        self.assertEqual(
            _message(h.call("Proclaim", epb.ProclaimRequest(leader=stale, value=b"x"))),
            (StatusCode.UNKNOWN, "election: not leader"),
        )

    def test_missing_leader_field(self) -> None:
        """Proclaim and Resign without a leader key are refused with etcd's text."""
        h = Harness()
        expected = (StatusCode.UNKNOWN, '"leader" field must be provided')
        self.assertEqual(_message(h.call("Proclaim", epb.ProclaimRequest(value=b"x"))), expected)
        self.assertEqual(_message(h.call("Resign", epb.ResignRequest())), expected)

    def test_resign_only_own_revision(self) -> None:
        """Resign deletes the key created at the leader's revision; a stale one changes nothing."""
        h = Harness()
        lease = h.server.grant()
        leader = self.successResultOf(h.campaign(b"e", lease, b"v")).leader
        stale = epb.LeaderKey()
        stale.CopyFrom(leader)
        stale.rev = 1
        resp = self.successResultOf(h.call("Resign", epb.ResignRequest(leader=stale)))
        self.assertEqual((resp.header.revision, h.server.keys(b"e/")), (2, [leader.key]))
        self.successResultOf(h.call("Resign", epb.ResignRequest(leader=leader)))
        self.assertEqual(h.server.keys(b"e/"), [])

    def test_no_leader(self) -> None:
        """Leader with nobody elected: UNKNOWN "election: no leader"."""
        h = Harness()
        self.assertEqual(
            _message(h.call("Leader", epb.LeaderRequest(name=b"e"))),
            (StatusCode.UNKNOWN, "election: no leader"),
        )


class ObserveTests(SynchronousTestCase):
    def test_follows_leader_changes(self) -> None:
        """Observe sends the first leader, its new values, then the next leader after a resign."""
        h = Harness()
        stream, ctx, d = h.observe(b"o")
        self.assertEqual(stream.pop(), [])
        l1, l2 = h.server.grant(), h.server.grant()
        first = self.successResultOf(h.campaign(b"o", l1, b"one"))
        h.campaign(b"o", l2, b"two")
        h.server.put(b"o/zzz", b"not a candidate's")
        self.successResultOf(
            h.call("Proclaim", epb.ProclaimRequest(leader=first.leader, value=b"uno"))
        )
        h.server.revoke(l1)
        got = [(r.header.revision, r.kv.value, r.kv.create_revision) for r in stream.pop()]
        self.assertEqual(got, [(2, b"one", 2), (5, b"uno", 2), (6, b"two", 3)])
        ctx.cancel()
        self.successResultOf(d)
        self.assertEqual(h.server.watchable.streams, set())

    def test_existing_leader_first(self) -> None:
        """With a leader already elected the first message is it, with the read's header."""
        h = Harness()
        lease = h.server.grant()
        self.successResultOf(h.campaign(b"o", lease, b"v"))
        h.server.put(b"x")
        stream, ctx, d = h.observe(b"o")
        (first,) = stream.pop()
        self.assertEqual((first.header.revision, first.kv.value), (3, b"v"))
        ctx.cancel()
        self.successResultOf(d)


class GatewayTests(SynchronousTestCase):
    """The JSON gateway's lock and election routes, through the same handlers."""

    def setUp(self) -> None:
        self.server = FakeServer()
        registry = Registry()
        election.register(registry, self.server)
        lock.register(registry, self.server)
        self.treq = StubTreq(HttpApi(Metrics(), gateway=Gateway(registry)).app.resource())

    def post(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        response = self.successResultOf(
            self.treq.post("http://127.0.0.1" + path, json.dumps(body).encode())
        )
        return response.code, json.loads(self.successResultOf(response.content()))

    def test_lock_and_unlock(self) -> None:
        """/v3/lock/lock answers the key (base64), /v3/lock/unlock deletes it."""
        lease = self.server.grant()
        code, body = self.post("/v3/lock/lock", {"name": _b64(b"m"), "lease": str(lease)})
        self.assertEqual((code, base64.b64decode(body["key"])), (200, b"m/%x" % lease))
        code, body = self.post("/v3/lock/unlock", {"key": body["key"]})
        self.assertEqual((code, body["header"]["revision"]), (200, "3"))

    def test_election_routes(self) -> None:
        """campaign, proclaim, leader and resign; errors are HTTP 500 with code 2 (UNKNOWN)."""
        lease = self.server.grant()
        code, body = self.post(
            "/v3/election/campaign", {"name": _b64(b"e"), "lease": str(lease), "value": _b64(b"v")}
        )
        self.assertEqual(code, 200)
        leader = body["leader"]
        self.assertEqual(leader["rev"], "2")
        code, _ = self.post("/v3/election/proclaim", {"leader": leader, "value": _b64(b"w")})
        self.assertEqual(code, 200)
        code, body = self.post("/v3/election/leader", {"name": _b64(b"e")})
        self.assertEqual(base64.b64decode(body["kv"]["value"]), b"w")
        code, _ = self.post("/v3/election/resign", {"leader": leader})
        self.assertEqual(code, 200)
        code, body = self.post("/v3/election/leader", {"name": _b64(b"e")})
        self.assertEqual(
            (code, body),
            (500, {"error": "election: no leader", "code": 2, "message": "election: no leader"}),
        )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
