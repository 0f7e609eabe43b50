"""``LeaseFrontend``: the Lease service's calls, and expiry on the leader.

Grants and revokes go through raft. Only the leader knows how long a lease has
left, so renewals and time-to-live on a follower are forwarded to it. The leader
checks for expired leases every ``LEASE_CHECK_INTERVAL`` and proposes their revokes
(at most ``REVOKE_LIMIT`` a check), and proposes checkpoints of remaining TTLs when
``--experimental-enable-lease-checkpoint`` is on.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime

from etcd_twisted._pb import rpc_pb2
from etcd_twisted._pb.raft_internal_pb2 import InternalRaftRequest
from etcd_twisted.apply.quota import LEASE_OVERHEAD
from etcd_twisted.apply.state import MemberState
from etcd_twisted.auth import AuthInfo
from etcd_twisted.lease import (
    CHECKPOINT_BATCH_LIMIT,
    MAX_LEASE_TTL,
    REVOKE_LIMIT,
    LeaseNotFoundError,
    LeaseTTLTooLargeError,
)
from etcd_twisted.server.forwarder import LeaderForwarder
from etcd_twisted.server.proposer import Proposer
from etcd_twisted.server.quota import QuotaGuard


class LeaseFrontend:
    """Lease calls over the member's state (see the module docstring)."""

    def __init__(
        self,
        state: Callable[[], MemberState],
        proposer: Proposer,
        quota: QuotaGuard,
        forwarder: LeaderForwarder,
        clock: IReactorTime,
        is_leader: Callable[[], bool],
        root: Callable[[], AuthInfo | None],
    ) -> None:
        self._state = state
        self._proposer = proposer
        self._quota = quota
        self._forwarder = forwarder
        self._clock = clock
        self._is_leader = is_leader
        self._root = root

    def grant(
        self, r: rpc_pb2.LeaseGrantRequest, auth: AuthInfo | None = None
    ) -> Deferred[rpc_pb2.LeaseGrantResponse]:
        """Grant a lease through raft; ID 0 lets the server pick one."""
        if r.TTL > MAX_LEASE_TTL:
            raise LeaseTTLTooLargeError()
        self._quota.check(LEASE_OVERHEAD)
        while r.ID == 0:
            r.ID = self._proposer.ids.next() & ((1 << 63) - 1)
        return self._proposer.propose(InternalRaftRequest(lease_grant=r), auth)

    def revoke(
        self, r: rpc_pb2.LeaseRevokeRequest, auth: AuthInfo | None = None
    ) -> Deferred[rpc_pb2.LeaseRevokeResponse]:
        """Revoke a lease (and delete its keys) through raft; needs write on the keys."""
        return self._proposer.propose(InternalRaftRequest(lease_revoke=r), auth)

    def renew(self, lease_id: int) -> int | Deferred[int]:
        """Renew a lease (a follower forwards to the leader); an unknown lease renews to 0."""
        if not self._is_leader():
            request = rpc_pb2.LeaseKeepAliveRequest(ID=lease_id)
            d = self._forwarder.post("/leases", request.SerializeToString())
            return d.addCallback(lambda body: rpc_pb2.LeaseKeepAliveResponse.FromString(body).TTL)
        try:
            return self._state().lessor.renew(lease_id, self._clock.seconds())
        except LeaseNotFoundError:
            return 0

    def time_to_live(
        self, r: rpc_pb2.LeaseTimeToLiveRequest
    ) -> rpc_pb2.LeaseTimeToLiveResponse | Deferred[rpc_pb2.LeaseTimeToLiveResponse]:
        """A lease's granted and remaining TTL (and keys); TTL -1 for an unknown lease."""
        if not self._is_leader():
            d = self._forwarder.post("/leases/internal", r.SerializeToString())
            return d.addCallback(rpc_pb2.LeaseTimeToLiveResponse.FromString)
        return self.local_time_to_live(r)

    def local_time_to_live(
        self, r: rpc_pb2.LeaseTimeToLiveRequest
    ) -> rpc_pb2.LeaseTimeToLiveResponse:
        """``time_to_live`` from this member's lessor (the leader's answer)."""
        try:
            ttl = self._state().lessor.time_to_live(r.ID, self._clock.seconds())
        except LeaseNotFoundError:
            return rpc_pb2.LeaseTimeToLiveResponse(ID=r.ID, TTL=-1)
        resp = rpc_pb2.LeaseTimeToLiveResponse(ID=r.ID, TTL=ttl.ttl, grantedTTL=ttl.granted_ttl)
        if r.keys:
            resp.keys.extend(ttl.keys)
        return resp

    def leases(self, r: rpc_pb2.LeaseLeasesRequest) -> rpc_pb2.LeaseLeasesResponse:
        """Every lease."""
        resp = rpc_pb2.LeaseLeasesResponse()
        for lease in self._state().lessor.leases():
            resp.leases.add(ID=lease.id)
        return resp

    def check_expired(self) -> None:
        """On the leader: propose revokes for expired leases, and due checkpoints."""
        if not self._is_leader():
            return
        lessor, now, propose = self._state().lessor, self._clock.seconds(), self._proposer.propose
        root = self._root()
        for lease in lessor.expired_leases(now, REVOKE_LIMIT):
            req = InternalRaftRequest(lease_revoke=rpc_pb2.LeaseRevokeRequest(ID=lease.id))
            propose(req, root).addErrback(lambda f: None)
        batch = lessor.checkpoint_due(now, CHECKPOINT_BATCH_LIMIT)
        if batch:
            cp = rpc_pb2.LeaseCheckpointRequest()
            for lease_id, remaining in batch:
                cp.checkpoints.add(ID=lease_id, remaining_TTL=remaining)
            propose(InternalRaftRequest(lease_checkpoint=cp)).addErrback(lambda f: None)
