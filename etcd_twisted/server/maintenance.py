"""``Maintenance``: the Maintenance and Cluster calls that read or steer the member.

Status, alarms, hashes, defragment and leadership moves, the member list, learner
promotion, ``/health``, and the calls followers forward to the leader's peer API.
"""

from __future__ import annotations

from typing import Protocol

from twisted.internet.defer import Deferred

from etcd_twisted import ETCD_VERSION
from etcd_twisted._pb import rpc_pb2
from etcd_twisted._pb.raft_internal_pb2 import InternalRaftRequest
from etcd_twisted.apply.state import MemberState
from etcd_twisted.membership.cluster import Member
from etcd_twisted.server.errors import BadLeaderTransfereeError, NotLeaderError
from etcd_twisted.server.forwarder import LeaderForwarder
from etcd_twisted.server.leadership import LeadershipTransfer
from etcd_twisted.server.leases import LeaseFrontend
from etcd_twisted.server.proposer import Proposer
from etcd_twisted.server.read_index import AppliedIndex
from etcd_twisted.server.reconfig import Reconfigurator


class MemberView(Protocol):
    """What maintenance reads of the member (an ``EtcdServer``)."""

    member_id: int
    cluster_id: int
    state: MemberState
    reconfig: Reconfigurator
    proposer: Proposer
    applied: AppliedIndex
    forwarder: LeaderForwarder
    leadership: LeadershipTransfer
    leases: LeaseFrontend
    request_timeout: float

    @property
    def term(self) -> int: ...
    @property
    def leader_id(self) -> int: ...
    @property
    def is_leader(self) -> bool: ...
    @property
    def committed(self) -> int: ...
    def header(self, revision: int = 0) -> rpc_pb2.ResponseHeader: ...


class Maintenance:
    """Maintenance and membership calls over a member (see the module docstring)."""

    def __init__(self, member: MemberView) -> None:
        self._m = member

    def status(self) -> rpc_pb2.StatusResponse:
        """What ``etcdctl endpoint status`` shows."""
        m = self._m
        state = m.state
        return rpc_pb2.StatusResponse(
            header=m.header(),
            version=ETCD_VERSION,
            dbSize=state.backend.size(),
            leader=m.leader_id,
            raftIndex=m.committed,
            raftTerm=m.term,
            raftAppliedIndex=m.applied.applied,
            dbSizeInUse=state.backend.size_in_use(),
            isLearner=bool(state.cluster.members.get(m.member_id, Member(0)).is_learner),
            errors=[
                f"memberID:{a.memberID} alarm:{rpc_pb2.AlarmType.Name(a.alarm)} "
                for a in state.alarms.get()
            ],
        )

    def alarm(self, r: rpc_pb2.AlarmRequest) -> Deferred[rpc_pb2.AlarmResponse]:
        """List, raise or clear alarms, through raft as etcd does."""
        return self._m.proposer.propose(InternalRaftRequest(alarm=r))

    def move_leader(self, r: rpc_pb2.MoveLeaderRequest) -> Deferred[rpc_pb2.MoveLeaderResponse]:
        """Hand leadership to another voting member (on the leader only)."""
        m = self._m
        if not m.is_leader:
            raise NotLeaderError()
        target = m.state.cluster.members.get(r.targetID)
        if target is None or target.is_learner or r.targetID == m.member_id:
            raise BadLeaderTransfereeError()
        d = m.leadership.transfer(r.targetID, m.request_timeout)
        return d.addCallback(lambda _: rpc_pb2.MoveLeaderResponse(header=m.header()))

    def defragment(self, r: rpc_pb2.DefragmentRequest) -> rpc_pb2.DefragmentResponse:
        """Rewrite the backend compactly (blocks this member while it runs, as etcd's does)."""
        self._m.state.backend.defragment()
        return rpc_pb2.DefragmentResponse(header=self._m.header())

    def health(self) -> tuple[bool, str]:
        """``(healthy, reason)`` as ``/health`` reports it: the first raised alarm
        ("ALARM NOSPACE", "ALARM CORRUPT"), else whether there is a leader."""
        for alarm in self._m.state.alarms.get():
            return False, f"ALARM {rpc_pb2.AlarmType.Name(alarm.alarm)}"
        if not self._m.leader_id:
            return False, "RAFT NO LEADER"
        return True, ""

    def hash(self, r: rpc_pb2.HashRequest) -> rpc_pb2.HashResponse:
        """A hash of the backend's key bucket, pending writes included."""
        return rpc_pb2.HashResponse(header=self._m.header(), hash=self._m.state.backend.hash())

    def hash_kv(self, r: rpc_pb2.HashKVRequest) -> rpc_pb2.HashKVResponse:
        """The hash of the key bucket up to ``r.revision`` (0: now), for consistency checks."""
        crc, current, compacted = self._m.state.kv.hash_kv(r.revision)
        return rpc_pb2.HashKVResponse(
            header=self._m.header(current), hash=crc, compact_revision=compacted
        )

    def member_list(self) -> rpc_pb2.MemberListResponse:
        """Every member, ordered by id."""
        m = self._m
        resp = rpc_pb2.MemberListResponse(
            header=rpc_pb2.ResponseHeader(
                cluster_id=m.cluster_id, member_id=m.member_id, raft_term=m.term
            )
        )
        for member in m.state.cluster.sorted_members():
            resp.members.add(
                ID=member.id, name=member.name, peerURLs=member.peer_urls,
                clientURLs=member.client_urls, isLearner=member.is_learner,
            )  # fmt: skip
        return resp

    def member_promote(
        self, r: rpc_pb2.MemberPromoteRequest
    ) -> Deferred[rpc_pb2.MemberPromoteResponse]:
        """Promote a learner: only the leader knows whether it has caught up, so a
        follower forwards the request (etcd's ``/members/promote``)."""
        if self._m.is_leader:
            return self._m.reconfig.promote(r)
        d = self._m.forwarder.post("/members/promote", r.SerializeToString())
        return d.addCallback(rpc_pb2.MemberPromoteResponse.FromString)

    def handle_forwarded(self, kind: str, body: bytes) -> bytes | Deferred[bytes]:
        """Answer a call a follower forwarded here (the peer API's ``/leases``,
        ``/leases/internal``, ``/members/promote``)."""
        m = self._m
        if not m.is_leader:
            raise NotLeaderError()
        if kind == "promote":
            d = m.reconfig.promote(rpc_pb2.MemberPromoteRequest.FromString(body))
            return d.addCallback(lambda resp: resp.SerializeToString())
        if kind == "renew":
            request = rpc_pb2.LeaseKeepAliveRequest.FromString(body)
            ttl = m.leases.renew(request.ID)
            return rpc_pb2.LeaseKeepAliveResponse(ID=request.ID, TTL=ttl).SerializeToString()
        request = rpc_pb2.LeaseTimeToLiveRequest.FromString(body)
        resp = m.leases.local_time_to_live(request)
        resp.header.CopyFrom(m.header())
        return resp.SerializeToString()
