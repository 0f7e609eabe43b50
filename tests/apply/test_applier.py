"""Tests for etcd_twisted.apply.applier and apply.layers: one table, layered checks."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted._pb import rpc_pb2
from etcd_twisted._pb.raft_internal_pb2 import (
    ClusterMemberAttrSetRequest,
    ClusterVersionSetRequest,
    InternalRaftRequest,
    MemberAttributes,
)
from etcd_twisted.apply.applier import Applier
from etcd_twisted.apply.auth import AUTH_KINDS
from etcd_twisted.apply.errors import CorruptClusterError, NoSpaceError
from etcd_twisted.apply.state import MemberState, StateOptions
from etcd_twisted.auth import SimpleTokens
from etcd_twisted.auth.errors import PermissionDeniedError
from etcd_twisted.membership.cluster import Member
from tests.support.memory_backend import MemoryBackend

OPTIONS = StateOptions(min_lease_ttl=2, lease_checkpoint_interval=None, bcrypt_cost=4)


class Harness:
    """An applier over an in-memory backend, counting scheduled compactions."""

    def __init__(self) -> None:
        self.state = MemberState(MemoryBackend(), 0x1000, OPTIONS, SimpleTokens(ttl=300.0))
        self.compactions = 0
        self.applier = Applier(self.state, self._compacted)
        self.index = 0

    def _compacted(self) -> None:
        self.compactions += 1

    def apply(self, now: float = 100.0, **request: object) -> object:
        self.index += 1
        return self.applier.apply(InternalRaftRequest(**request), self.index, now)

    def put(self, key: bytes, value: bytes = b"v", lease: int = 0) -> object:
        return self.apply(put=rpc_pb2.PutRequest(key=key, value=value, lease=lease))

    def raise_alarm(self, alarm: int) -> None:
        action = rpc_pb2.AlarmRequest.ACTIVATE
        self.apply(alarm=rpc_pb2.AlarmRequest(action=action, memberID=1, alarm=alarm))


def op_put(key: bytes) -> rpc_pb2.RequestOp:
    return rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=key, value=b"v"))


def op_del(key: bytes) -> rpc_pb2.RequestOp:
    return rpc_pb2.RequestOp(request_delete_range=rpc_pb2.DeleteRangeRequest(key=key))


class TableTests(SynchronousTestCase):
    def test_every_raft_request_kind_has_one_handler(self) -> None:
        """The table covers KV, leases, alarms, auth, cluster version and member attributes."""
        handlers = Harness().applier.backend.handlers
        expected = {
            "put", "delete_range", "txn", "compaction", "lease_grant", "lease_revoke",
            "lease_checkpoint", "alarm", "cluster_version_set", "cluster_member_attr_set",
        } | AUTH_KINDS  # fmt: skip
        self.assertEqual(set(handlers), expected)

    def test_kv_requests(self) -> None:
        """Put, delete range and txn run against the store and answer with revisions."""
        h = Harness()
        self.assertEqual(h.put(b"a").header.revision, 2)
        resp = h.apply(delete_range=rpc_pb2.DeleteRangeRequest(key=b"a"))
        self.assertEqual((resp.deleted, resp.header.revision), (1, 3))
        resp = h.apply(txn=rpc_pb2.TxnRequest(success=[op_put(b"b")]))
        self.assertTrue(resp.succeeded)
        self.assertEqual(h.state.kv.current_rev, 4)

    def test_compaction_schedules_physical_compaction(self) -> None:
        """A compaction marks the revision and asks for the physical work once."""
        h = Harness()
        h.put(b"a")
        h.put(b"a")
        h.apply(compaction=rpc_pb2.CompactionRequest(revision=2))
        self.assertEqual(h.compactions, 1)
        self.assertEqual(h.state.kv.compact_main_rev, 2)

    def test_leases(self) -> None:
        """Grant uses the time given; revoke deletes the attached keys; checkpoints apply."""
        h = Harness()
        resp = h.apply(now=50.0, lease_grant=rpc_pb2.LeaseGrantRequest(ID=7, TTL=10))
        self.assertEqual((resp.ID, resp.TTL), (7, 10))
        h.put(b"k", lease=7)
        cp = rpc_pb2.LeaseCheckpointRequest()
        cp.checkpoints.add(ID=7, remaining_TTL=4)
        h.apply(lease_checkpoint=cp)
        self.assertEqual(h.state.lessor.lookup(7).remaining_ttl, 4)
        h.apply(lease_revoke=rpc_pb2.LeaseRevokeRequest(ID=7))
        self.assertIsNone(h.state.lessor.lookup(7))
        self.assertEqual(h.state.kv.range(b"k").kvs, [])

    def test_cluster_version_and_member_attributes(self) -> None:
        """The cluster version and a member's name and client URLs are stored."""
        h = Harness()
        h.state.cluster.add(Member(5, peer_urls=["http://127.0.0.1:2380"]))
        self.assertIsNone(h.apply(cluster_version_set=ClusterVersionSetRequest(ver="3.5.0")))
        attrs = MemberAttributes(name="m5", client_urls=["http://127.0.0.1:2379"])
        h.apply(
            cluster_member_attr_set=ClusterMemberAttrSetRequest(
                member_ID=5, member_attributes=attrs
            )
        )
        self.assertEqual(h.state.cluster_version(), "3.5.0")
        self.assertEqual(h.state.cluster.members[5].name, "m5")

    def test_alarms(self) -> None:
        """Alarms are raised once, listed, and cleared through the table."""
        h = Harness()
        h.raise_alarm(rpc_pb2.NOSPACE)
        get = rpc_pb2.AlarmRequest(action=rpc_pb2.AlarmRequest.GET)
        self.assertEqual(len(h.apply(alarm=get).alarms), 1)
        clear = rpc_pb2.AlarmRequest(
            action=rpc_pb2.AlarmRequest.DEACTIVATE, memberID=1, alarm=rpc_pb2.NOSPACE
        )
        self.assertEqual(len(h.apply(alarm=clear).alarms), 1)
        self.assertEqual(h.apply(alarm=get).alarms, [])


class LayerTests(SynchronousTestCase):
    def test_nospace_refuses_what_adds_data(self) -> None:
        """With NOSPACE, puts, lease grants and txns with any put are refused; deletes run."""
        h = Harness()
        h.put(b"a")
        h.raise_alarm(rpc_pb2.NOSPACE)
        self.assertRaises(NoSpaceError, h.put, b"b")
        grant = rpc_pb2.LeaseGrantRequest(ID=9, TTL=10)
        self.assertRaises(NoSpaceError, h.apply, lease_grant=grant)
        # As etcd's capped applier: the txn's cost counts either branch's puts.
        txn = rpc_pb2.TxnRequest(success=[op_del(b"a")], failure=[op_put(b"x")])
        self.assertRaises(NoSpaceError, h.apply, txn=txn)
        resp = h.apply(txn=rpc_pb2.TxnRequest(success=[op_del(b"a")]))
        self.assertEqual(resp.responses[0].response_delete_range.deleted, 1)

    def test_corrupt_refuses_data_requests(self) -> None:
        """With CORRUPT, every data request is refused; alarms still apply."""
        h = Harness()
        h.raise_alarm(rpc_pb2.CORRUPT)
        self.assertRaises(CorruptClusterError, h.put, b"a")
        delete = rpc_pb2.DeleteRangeRequest(key=b"a")
        self.assertRaises(CorruptClusterError, h.apply, delete_range=delete)
        self.assertEqual(h.state.kv.current_rev, 1)

    def test_auth_checked_first(self) -> None:
        """With auth on, a user without permission is refused before anything applies."""
        h = Harness()
        h.apply(
            auth_user_add=rpc_pb2.AuthUserAddRequest(name="root", options={"no_password": True})
        )
        h.apply(auth_user_grant_role=rpc_pb2.AuthUserGrantRoleRequest(user="root", role="root"))
        h.apply(auth_user_add=rpc_pb2.AuthUserAddRequest(name="u", options={"no_password": True}))
        h.apply(auth_enable=rpc_pb2.AuthEnableRequest())
        req = InternalRaftRequest(put=rpc_pb2.PutRequest(key=b"k"))
        req.header.username = "u"
        req.header.auth_revision = h.state.auth.revision
        self.assertRaises(PermissionDeniedError, h.applier.apply, req, 99, 1.0)
        self.assertEqual(h.state.kv.current_rev, 1)
