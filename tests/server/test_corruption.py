"""Tests for etcd_twisted.server.corruption: three members on task.Clock and an
in-memory network, peers' hashes fetched through the stub HTTP client."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted._pb import kv_pb2, rpc_pb2
from etcd_twisted.apply.errors import CorruptClusterError
from etcd_twisted.backend import Backend
from etcd_twisted.mvcc.errors import CompactedError
from etcd_twisted.mvcc.kvstore import KEY_BUCKET, KVStore
from etcd_twisted.server.corruption import (
    DataInconsistencyError,
    PeerHash,
    PeerHashError,
    hash_in_steps,
    request_revision,
    response_body,
)
from etcd_twisted.server.etcd_server import EtcdServer
from tests.server.cluster_harness import Cluster


def corrupt(server: EtcdServer, key: bytes) -> None:
    """Change the value of ``key``'s latest record directly in the member's key bucket."""
    tx = server.state.backend.batch_tx
    for rev_key, raw in reversed(tx.range(KEY_BUCKET, b"", b"\xff" * 17, 10_000)):
        kv = kv_pb2.KeyValue.FromString(raw)
        if kv.key == key:
            kv.value = b"rotten"
            tx.put(KEY_BUCKET, rev_key, kv.SerializeToString())
            server.state.backend.force_commit()
            return
    raise AssertionError(f"no record of {key!r}")


class WireFormatTests(SynchronousTestCase):
    def test_response_omits_zero_fields(self) -> None:
        """The JSON answer is Go's encoding of HashKVResponse: zero fields left out."""
        self.assertEqual(json.loads(response_body(7, 5, 0)), {"header": {"revision": 5}, "hash": 7})
        self.assertEqual(
            json.loads(response_body(7, 5, 3)),
            {"header": {"revision": 5}, "hash": 7, "compact_revision": 3},
        )

    def test_request_revision(self) -> None:
        """The request's revision is read from its JSON body; absent means 0."""
        self.assertEqual(request_revision(b'{"revision":12}'), 12)
        self.assertEqual(request_revision(b"{}"), 0)
        self.assertRaises(ValueError, request_revision, b"[1]")


class HashInStepsTests(SynchronousTestCase):
    def test_same_hash_in_steps(self) -> None:
        """Hashing a pinned snapshot in steps gives hash_kv's answer, a step per 1000 records,
        and leaves writes made meanwhile out."""
        backend = Backend(os.path.join(self.mktemp(), "db"))
        self.addCleanup(backend.close)
        kv = KVStore(backend)
        for i in range(25):
            w = kv.write()
            for j in range(100):
                w.put(b"k%04d" % j, b"v%d" % i)
            w.end()
        expected = kv.hash_kv(0)
        pending: list[tuple[Iterator[None], Deferred[None]]] = []

        def cooperate(steps: Iterator[None]) -> Deferred[None]:
            pending.append((steps, Deferred()))
            return pending[-1][1]

        d = hash_in_steps(kv, backend, 0, cooperate)
        w = kv.write()  # a write between the steps
        w.put(b"later", b"x")
        w.end()
        steps, done = pending[0]
        self.assertEqual(sum(1 for _ in steps), 2)  # 2500 records: two pauses
        self.assertNoResult(d)
        done.callback(None)
        self.assertEqual(self.successResultOf(d), expected)

    def test_compacted_refused_at_once(self) -> None:
        """A compacted revision is refused before any step."""
        backend = Backend(os.path.join(self.mktemp(), "db"))
        self.addCleanup(backend.close)
        kv = KVStore(backend)
        for _ in range(3):
            w = kv.write()
            w.put(b"k", b"v")
            w.end()
        kv.compact(3)
        self.assertRaises(CompactedError, hash_in_steps, kv, backend, 2, lambda s: Deferred())


class ClusterChecks(SynchronousTestCase):
    def setUp(self) -> None:
        self.cluster = Cluster(self.mktemp(), 3, "--experimental-corrupt-check-time", "5s")
        self.cluster.start()
        leader = self.cluster.leader()
        assert leader is not None
        self.leader = leader
        for i in range(5):
            self.answer(self.leader.kv_frontend.put(rpc_pb2.PutRequest(key=b"k%d" % i, value=b"v")))
        self.addCleanup(self.cluster.stop)

    def answer(self, d: Deferred) -> object:
        self.cluster.run_until(lambda: d.called, seconds=10)
        return self.successResultOf(d)

    def go(self, coroutine: object) -> Deferred:
        return Deferred.fromCoroutine(coroutine)  # type: ignore[arg-type]

    def alarms(self, server: EtcdServer) -> list[tuple[int, int]]:
        return [(a.memberID, a.alarm) for a in server.state.alarms.get()]

    def test_named_child(self) -> None:
        """A positive --experimental-corrupt-check-time adds the corruption-check timer."""
        self.assertIn("corruption-check", [s.name for s in self.leader])
        self.assertEqual(self.leader.getServiceNamed("corruption-check").interval, 5.0)

    def test_peer_hashes_agree(self) -> None:
        """Every follower answers with the leader's hash at the leader's revision."""
        self.cluster.settle()
        h, rev, compact = self.leader.state.kv.hash_kv(0)
        peers = self.answer(self.go(self.leader.corruption.peer_hashes(rev)))
        self.assertEqual(len(peers), 2)
        for peer in peers:
            self.assertIsInstance(peer, PeerHash)
            self.assertEqual((peer.hash, peer.revision, peer.compact_revision), (h, rev, compact))

    def test_consistent_cluster_raises_nothing(self) -> None:
        """A check over agreeing members raises no alarm."""
        self.cluster.settle()
        self.assertIsNone(self.answer(self.go(self.leader.corruption.periodic_check())))
        self.assertEqual(self.alarms(self.leader), [])

    def test_corrupt_follower_raises_alarm_within_interval(self) -> None:
        """A follower whose data differs gets CORRUPT within one interval; puts are refused."""
        self.cluster.settle()
        follower = self.cluster.followers()[0]
        corrupt(follower, b"k2")
        self.cluster.run_until(lambda: self.alarms(self.leader), seconds=5.5)
        expected = [(follower.member_id, rpc_pb2.CORRUPT)]
        for server in self.cluster.servers.values():
            self.cluster.run_until(lambda s=server: self.alarms(s) == expected, seconds=1)
        d = self.leader.kv_frontend.put(rpc_pb2.PutRequest(key=b"x", value=b"y"))
        self.cluster.run_until(lambda: d.called, seconds=10)
        self.failureResultOf(d, CorruptClusterError)
        listed = self.answer(self.leader.maintenance.alarm(rpc_pb2.AlarmRequest()))
        self.assertEqual([(a.memberID, a.alarm) for a in listed.alarms], expected)
        self.assertEqual(follower.maintenance.health(), (False, "ALARM CORRUPT"))

    def test_follower_ahead_is_corrupt(self) -> None:
        """A follower at a higher revision than the leader's is named corrupt."""
        self.cluster.settle()
        follower = self.cluster.followers()[0]
        ghost = follower.state.kv.write()  # a write raft never saw
        ghost.put(b"ghost", b"x")
        ghost.end()
        self.assertEqual(
            self.answer(self.go(self.leader.corruption.periodic_check())), follower.member_id
        )

    def test_unreachable_peer_is_skipped(self) -> None:
        """A peer that cannot be reached is reported, not named corrupt."""
        self.cluster.settle()
        follower = self.cluster.followers()[0]
        self.cluster.cut.add(follower.member_id)
        rev = self.leader.state.kv.current_rev
        peers = self.answer(self.go(self.leader.corruption.peer_hashes(rev)))
        self.assertEqual(sum(isinstance(p, PeerHashError) for p in peers), 1)

    def test_compacted_revision_answered_as_error(self) -> None:
        """A peer asked for a compacted revision answers 400 with the mvcc error."""
        self.answer(self.leader.kv_frontend.compact(rpc_pb2.CompactionRequest(revision=4)))
        self.cluster.settle()
        peers = self.answer(self.go(self.leader.corruption.peer_hashes(2)))
        self.assertEqual(
            [str(p) for p in peers], ["mvcc: required revision has been compacted"] * 2
        )

    def test_followers_do_not_check(self) -> None:
        """Only the leader runs the periodic check."""
        follower = self.cluster.followers()[0]
        self.assertIsNone(self.answer(self.go(follower.corruption.periodic_check())))
        self.assertEqual(self.cluster.http.requests, [])

    def test_initial_check_passes_then_fails(self) -> None:
        """The initial check passes on agreeing members and refuses a corrupted one."""
        self.cluster.settle()
        follower = self.cluster.followers()[0]
        self.answer(self.go(follower.corruption.initial_check()))
        corrupt(follower, b"k1")
        d = self.go(follower.corruption.initial_check())
        self.cluster.run_until(lambda: d.called, seconds=1)
        failure = self.failureResultOf(d, DataInconsistencyError)
        self.assertEqual(
            str(failure.value), f"{follower.member_id:x} found data inconsistency with peers"
        )
