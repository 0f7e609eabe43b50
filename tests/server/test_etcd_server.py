"""Tests for etcd_twisted.server.etcd_server: a member built from a temporary data dir,
task.Clock and an in-memory network; no reactor, no polling."""

from __future__ import annotations

import os

from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted._pb import rpc_pb2
from etcd_twisted.apply.errors import NoSpaceError
from etcd_twisted.server.errors import StoppedError, TimeoutError
from tests.server.cluster_harness import Cluster


def put(key: bytes, value: bytes = b"v", lease: int = 0) -> rpc_pb2.PutRequest:
    return rpc_pb2.PutRequest(key=key, value=value, lease=lease)


class SingleMemberTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.cluster = Cluster(self.mktemp(), 1, "--snapshot-count", "20")
        self.cluster.start()
        self.server = self.cluster.leader()
        self.addCleanup(self.cluster.stop)

    def answer(self, d: Deferred) -> object:
        self.cluster.settle()
        return self.successResultOf(d)

    def test_named_children(self) -> None:
        """The server is a MultiService of named parts, started in order."""
        names = [service.name for service in self.server]
        self.assertEqual(names, ["wal-writer", "raft", "deadlines", "lease-checker", "watch-sync"])
        self.assertTrue(all(service.running for service in self.server))

    def test_propose_apply_answer(self) -> None:
        """A put is proposed, applied, and answered; reads see it at once."""
        resp = self.answer(self.server.kv_frontend.put(put(b"k", b"v1")))
        self.assertEqual(resp.header.revision, 2)
        read = self.server.kv_frontend.range(rpc_pb2.RangeRequest(key=b"k", serializable=True))
        self.assertEqual([kv.value for kv in read.kvs], [b"v1"])
        linear = self.answer(self.server.kv_frontend.range(rpc_pb2.RangeRequest(key=b"k")))
        self.assertEqual(linear.count, 1)

    def test_one_batch_per_turn(self) -> None:
        """Proposals made in one reactor turn reach raft as one batch of entries."""
        before = self.server.wal_writer.writes
        ds = [self.server.kv_frontend.put(put(b"k%d" % i)) for i in range(20)]
        self.cluster.settle()
        self.assertEqual([self.successResultOf(d).header.revision for d in ds], list(range(2, 22)))
        self.assertLessEqual(self.server.wal_writer.writes - before, 3)

    def test_snapshot_trigger(self) -> None:
        """After --snapshot-count applied entries, a snapshot file is written."""
        for i in range(30):
            self.server.kv_frontend.put(put(b"k%d" % i))
            self.cluster.settle(10)
        self.cluster.settle()
        self.assertEqual(self.server.snapshots.taken, 1)
        snap_dir = self.server.config.snap_path
        self.assertTrue(any(name.endswith(".snap") for name in os.listdir(snap_dir)))

    def test_physical_compaction_waits(self) -> None:
        """A physical compaction answers once the compacted records are gone."""
        for _ in range(3):
            self.answer(self.server.kv_frontend.put(put(b"k")))
        req = rpc_pb2.CompactionRequest(revision=3, physical=True)
        resp = self.answer(self.server.kv_frontend.compact(req))
        self.assertEqual(resp.header.revision, 4)
        self.assertFalse(self.server.state.kv.compacting)

    def test_stop_undoes_start(self) -> None:
        """Stopping stops every child, fails what still waits, and leaves no timer."""
        pending = self.server.kv_frontend.put(put(b"late"))  # queued, not yet proposed
        done = self.server.stopService()
        self.cluster.settle()
        self.successResultOf(done)
        self.failureResultOf(pending, StoppedError)
        self.assertFalse(any(service.running for service in self.server))
        self.assertEqual(self.cluster.clock.getDelayedCalls(), [])
        self.assertRaises(StoppedError, self.server.kv_frontend.put, put(b"after"))


class QuotaTests(SynchronousTestCase):
    def test_nospace(self) -> None:
        """A write past the quota is refused and raises NOSPACE everywhere; deletes still run."""
        cluster = Cluster(self.mktemp(), 1, "--quota-backend-bytes", "65536")
        cluster.start()
        self.addCleanup(cluster.stop)
        server = cluster.leader()
        cluster.settle()
        self.assertRaises(NoSpaceError, server.kv_frontend.put, put(b"big", b"x" * 70000))
        cluster.settle()
        self.assertTrue(server.state.alarms.active(rpc_pb2.NOSPACE))
        d = server.kv_frontend.put(put(b"small"))
        cluster.settle()
        self.failureResultOf(d, NoSpaceError)
        d = server.kv_frontend.delete_range(rpc_pb2.DeleteRangeRequest(key=b"small"))
        cluster.settle()
        self.assertEqual(self.successResultOf(d).deleted, 0)
        self.assertEqual(server.maintenance.health(), (False, "ALARM NOSPACE"))


class DeadlineTests(SynchronousTestCase):
    def test_proposal_without_quorum_times_out(self) -> None:
        """A write that cannot commit fails with TimeoutError at the request deadline."""
        cluster = Cluster(self.mktemp(), 3)
        cluster.start()
        self.addCleanup(cluster.stop)
        leader = cluster.leader()
        cluster.cut = {s.member_id for s in cluster.followers()}
        d = leader.kv_frontend.put(put(b"k"))
        cluster.clock.pump([0.25] * int((leader.request_timeout + 1) / 0.25))
        self.failureResultOf(d, TimeoutError)


class ThreeMemberTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.cluster = Cluster(self.mktemp(), 3)
        self.cluster.start()
        self.addCleanup(self.cluster.stop)
        self.leader = self.cluster.leader()
        self.follower = self.cluster.followers()[0]

    def test_follower_write_is_replicated(self) -> None:
        """A write through a follower commits through the leader and is applied everywhere."""
        d = self.follower.kv_frontend.put(put(b"k", b"v"))
        self.cluster.run_until(lambda: d.called)
        rev = self.successResultOf(d).header.revision
        self.cluster.run_until(
            lambda: all(
                s.applied.applied >= self.leader.applied.applied
                for s in self.cluster.servers.values()
            )
        )
        for server in self.cluster.servers.values():
            self.assertEqual(server.state.kv.current_rev, rev)

    def test_lease_calls_forwarded_to_leader(self) -> None:
        """Keep-alive and time-to-live on a follower go to the leader's peer URL."""
        d = self.follower.leases.grant(rpc_pb2.LeaseGrantRequest(ID=42, TTL=60))
        self.cluster.run_until(lambda: d.called)
        ttl = self.follower.leases.renew(42)
        self.assertEqual(self.successResultOf(ttl), 60)
        resp = self.successResultOf(
            self.follower.leases.time_to_live(rpc_pb2.LeaseTimeToLiveRequest(ID=42))
        )
        self.assertEqual((resp.ID, resp.grantedTTL), (42, 60))
        leader_url = self.leader.config.initial_advertise_peer_urls[0]
        self.assertEqual(
            self.cluster.http.posts, [leader_url + "/leases", leader_url + "/leases/internal"]
        )
        self.assertEqual(self.leader.leases.renew(42), 60)

    def test_leases_expire_on_the_leader_only(self) -> None:
        """Followers never revoke an expired lease; the leader's check does, everywhere."""
        d = self.leader.leases.grant(rpc_pb2.LeaseGrantRequest(ID=7, TTL=5))
        self.cluster.run_until(lambda: d.called)
        d = self.leader.kv_frontend.put(put(b"leased", lease=7))
        self.cluster.run_until(lambda: d.called)
        checker = self.leader.getServiceNamed("lease-checker")
        checker.stopService()
        self.cluster.run_until(
            lambda: False if self.cluster.clock.seconds() < 40 else True, 60, 0.5
        )
        for server in self.cluster.servers.values():
            self.assertIsNotNone(server.state.lessor.lookup(7))
        checker.startService()
        self.cluster.run_until(
            lambda: all(s.state.lessor.lookup(7) is None for s in self.cluster.servers.values()), 10
        )
        for server in self.cluster.servers.values():
            self.assertEqual(server.state.kv.range(b"leased").kvs, [])
