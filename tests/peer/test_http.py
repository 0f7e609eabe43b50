"""Tests for etcd_twisted.peer.http: the peer port's HTTP routes."""

from __future__ import annotations

import json

from treq.testing import StubTreq
from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted.membership.cluster import Member
from etcd_twisted.peer.http import PeerApi


class PeerApiTests(SynchronousTestCase):
    def get(self, api: PeerApi, path: str) -> tuple[int, dict[bytes, list[bytes]], bytes]:
        treq = StubTreq(api.app.resource())
        response = self.successResultOf(treq.get("http://peer" + path))
        body = self.successResultOf(response.content())
        return response.code, dict(response.headers.getAllRawHeaders()), body

    def test_members_shape(self) -> None:
        """/members lists members by id in etcd 3.5's JSON shape, empty fields left out."""
        members = [
            Member(0xBD388E7810915853, "m2", ["http://b:2380"], ["http://b:2379"]),
            Member(0x10, "", ["http://c:2380"], [], is_learner=True),
        ]
        api = PeerApi(lambda: members, lambda: 0xD1CFAF999EB97A2A)
        code, headers, body = self.get(api, "/members")
        self.assertEqual(code, 200)
        self.assertEqual(headers[b"X-Etcd-Cluster-Id"], [b"d1cfaf999eb97a2a"])
        self.assertEqual(
            body,
            b'[{"id":16,"peerURLs":["http://c:2380"],"isLearner":true},'
            b'{"id":13634804518189357139,"peerURLs":["http://b:2380"],"name":"m2",'
            b'"clientURLs":["http://b:2379"]}]',
        )

    def test_version(self) -> None:
        """/version reports the server and cluster versions."""
        code, _, body = self.get(PeerApi(), "/version")
        self.assertEqual(code, 200)
        self.assertEqual(set(json.loads(body)), {"etcdserver", "etcdcluster"})
