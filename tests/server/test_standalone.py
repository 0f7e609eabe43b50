"""Tests for etcd_twisted.server.standalone: ``--force-new-cluster`` restarts a member of
a three-member cluster (in memory, task.Clock) as the only member, with its keys."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted._pb import raft_pb2, rpc_pb2
from etcd_twisted.membership.cluster import Member
from etcd_twisted.server.standalone import member_ids, restart_standalone, standalone_entries
from tests.server.cluster_harness import Cluster


def conf_change(index: int, kind: int, node: int) -> raft_pb2.Entry:
    cc = raft_pb2.ConfChange(type=kind, node_id=node)
    return raft_pb2.Entry(
        type=raft_pb2.EntryConfChange, index=index, term=1, data=cc.SerializeToString()
    )


class RecordingLog:
    def __init__(self) -> None:
        self.saved: list[tuple[raft_pb2.HardState, list[raft_pb2.Entry]]] = []

    def save(self, hard_state: raft_pb2.HardState, entries: list[raft_pb2.Entry]) -> None:
        self.saved.append((hard_state, list(entries)))


class EntryTests(SynchronousTestCase):
    def test_member_ids(self) -> None:
        """The snapshot's voters and learners, then the log's adds and removes."""
        snap = raft_pb2.Snapshot()
        snap.metadata.conf_state.voters.extend([3, 1])
        snap.metadata.conf_state.learners.append(5)
        entries = [
            conf_change(10, raft_pb2.ConfChangeAddNode, 7),
            conf_change(11, raft_pb2.ConfChangeRemoveNode, 3),
            raft_pb2.Entry(index=12, term=1, data=b"x"),
        ]
        self.assertEqual(member_ids(snap, entries), [1, 5, 7])
        self.assertEqual(member_ids(None, []), [])

    def test_removes_others(self) -> None:
        """Every other member is removed, in order, right after the committed index."""
        entries = standalone_entries([1, 2, 3], 2, term=4, index=20)
        ccs = [raft_pb2.ConfChange.FromString(e.data) for e in entries]
        self.assertEqual([(e.index, e.term) for e in entries], [(21, 4), (22, 4)])
        self.assertEqual(
            [(cc.type, cc.node_id) for cc in ccs],
            [(raft_pb2.ConfChangeRemoveNode, 1), (raft_pb2.ConfChangeRemoveNode, 3)],
        )

    def test_adds_self_first(self) -> None:
        """A member the log does not know is added (as etcd does) before the others go."""
        entries = standalone_entries([1], 9, term=2, index=5)
        first, second = (raft_pb2.ConfChange.FromString(e.data) for e in entries)
        self.assertEqual((first.type, first.node_id), (raft_pb2.ConfChangeAddNode, 9))
        self.assertEqual(Member.from_context(first.context).peer_urls, ["http://localhost:2380"])
        self.assertEqual((second.type, second.node_id), (raft_pb2.ConfChangeRemoveNode, 1))

    def test_uncommitted_dropped(self) -> None:
        """Entries past the commit index are dropped; the new ones are saved and committed."""
        entries = [
            conf_change(1, raft_pb2.ConfChangeAddNode, 1),
            conf_change(2, raft_pb2.ConfChangeAddNode, 2),
            raft_pb2.Entry(index=3, term=1, data=b"committed"),
            raft_pb2.Entry(index=4, term=1, data=b"uncommitted"),
        ]
        log = RecordingLog()
        hard_state = raft_pb2.HardState(term=1, commit=3)
        result = restart_standalone(log, 1, None, hard_state, entries)
        self.assertEqual([e.index for e in result], [1, 2, 3, 4])
        self.assertEqual(raft_pb2.ConfChange.FromString(result[-1].data).node_id, 2)
        self.assertEqual(hard_state.commit, 4)
        self.assertEqual([[e.index for e in saved] for _, saved in log.saved], [[4]])


class ForceNewClusterTests(SynchronousTestCase):
    def test_survivor_serves_alone(self) -> None:
        """Three members stop; one restarts with --force-new-cluster: it leads alone,
        lists one member, has every key, and takes writes."""
        base = self.mktemp()
        three = Cluster(base, 3)
        three.start()
        leader = three.leader()
        assert leader is not None
        for i in range(10):
            d = leader.kv_frontend.put(rpc_pb2.PutRequest(key=b"k%d" % i, value=b"v%d" % i))
            three.run_until(lambda d=d: d.called)
            self.successResultOf(d)
        three.run_until(
            lambda: all(s.applied.applied == leader.applied.applied for s in three.servers.values())
        )
        stopping = three.stop()
        three.settle()
        for d in stopping:
            self.successResultOf(d)

        alone = Cluster(base, 1, "--force-new-cluster")
        self.addCleanup(alone.stop)
        alone.start()
        (server,) = alone.servers.values()
        self.assertTrue(server.is_leader)
        self.assertEqual(list(server.node.conf_state().voters), [server.member_id])
        self.assertEqual(
            [m.ID for m in server.maintenance.member_list().members], [server.member_id]
        )
        read = server.kv_frontend.range(
            rpc_pb2.RangeRequest(key=b"k", range_end=b"l", serializable=True)
        )
        self.assertEqual(read.count, 10)
        d = server.kv_frontend.put(rpc_pb2.PutRequest(key=b"after", value=b"x"))
        alone.run_until(lambda: d.called)
        self.assertEqual(self.successResultOf(d).header.revision, 12)
