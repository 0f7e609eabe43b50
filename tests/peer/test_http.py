"""Tests for etcd_twisted.peer.http: the peer port's HTTP routes."""

from __future__ import annotations

import json

from treq.testing import StubTreq
from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted.membership.cluster import Member
from etcd_twisted.mvcc.errors import CompactedError
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

    def hashkv(self, api: PeerApi, body: bytes) -> tuple[int, bytes]:
        treq = StubTreq(api.app.resource())
        response = self.successResultOf(
            treq.request("GET", "http://peer/members/hashkv", data=body)
        )
        return response.code, self.successResultOf(response.content())

    def test_hashkv(self) -> None:
        """/members/hashkv answers the hash at the asked revision as JSON."""
        asked: list[int] = []

        def hash_kv(revision: int) -> tuple[int, int, int]:
            asked.append(revision)
            return 0xCAFE, 9, 4

        api = PeerApi(cluster_id=lambda: 1, hash_kv=hash_kv)
        code, body = self.hashkv(api, b'{"revision":7}')
        self.assertEqual((code, asked), (200, [7]))
        self.assertEqual(
            json.loads(body), {"header": {"revision": 9}, "hash": 0xCAFE, "compact_revision": 4}
        )

    def test_hashkv_errors(self) -> None:
        """A compacted revision is a 400 with the mvcc text; a bad body a 400 too."""

        def hash_kv(revision: int) -> tuple[int, int, int]:
            raise CompactedError()

        api = PeerApi(hash_kv=hash_kv)
        self.assertEqual(
            self.hashkv(api, b'{"revision":1}'),
            (400, b"mvcc: required revision has been compacted\n"),
        )
        self.assertEqual(self.hashkv(api, b"nope"), (400, b"error unmarshalling request\n"))
