"""Cluster reconfiguration: MemberAdd, MemberRemove, MemberUpdate, MemberPromote.

Each is a raft ConfChange (one member at a time) whose context is the member. Before
proposing, the checks etcd makes with ``--strict-reconfig-check`` protect the quorum;
when the change is applied, it is validated against the cluster as it is then (a
change that became invalid is applied to raft as a no-op and its error goes back to
the caller), and the caller hears back with the member list after the change.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from twisted.internet.defer import Deferred

from etcd_twisted._pb import raft_pb2, rpc_pb2
from etcd_twisted.membership.cluster import Cluster, Member
from etcd_twisted.membership.ids import member_id

#: At most this many learners at once (etcd's ``maxLearners``).
MAX_LEARNERS = 1
#: A learner is promotable when its log is within this share of the leader's.
LEARNER_READY_PERCENT = 0.9


class ReconfigError(Exception):
    """Base class for membership errors; ``api/errors.py`` maps them."""


class BadURLsError(ReconfigError):
    """A peer URL is not ``scheme://host:port``."""


class MemberNotFoundError(ReconfigError):
    """No member has this id."""


class MemberExistsError(ReconfigError):
    """A member with this id already exists."""


class PeerURLExistsError(ReconfigError):
    """Another member already uses one of these peer URLs."""


class MemberRemovedError(ReconfigError):
    """The id belongs to a member that was removed."""


class NotEnoughStartedMembersError(ReconfigError):
    """The change would leave too few started voting members for a quorum."""


class UnhealthyError(ReconfigError):
    """Too few voting members are connected for the change to be safe."""


class TooManyLearnersError(ReconfigError):
    """The cluster already has the most learners it may have."""


class NotLearnerError(ReconfigError):
    """Only a learner can be promoted."""


class LearnerNotReadyError(ReconfigError):
    """The learner's log is too far behind the leader's to promote it."""


def check_peer_urls(urls: list[str]) -> None:
    """Peer URLs must be non-empty ``http(s)://host:port`` URLs."""
    if not urls:
        raise BadURLsError()
    for url in urls:
        parts = urlsplit(url)
        try:
            port = parts.port
        except ValueError:
            raise BadURLsError() from None
        if parts.scheme not in ("http", "https", "unix", "unixs") or not parts.hostname:
            raise BadURLsError()
        if port is None or parts.path not in ("", "/") or parts.query or parts.fragment:
            raise BadURLsError()


class Reconfigurator:
    """Proposes membership changes and validates them when they are applied."""

    def __init__(
        self,
        cluster: Cluster,
        local_id: int,
        strict: bool,
        propose_conf_change: Callable[[raft_pb2.ConfChange], Deferred[Any]],
        next_id: Callable[[], int],
        peer_active: Callable[[int], bool],
        match_index: Callable[[int], int | None],
    ) -> None:
        self._cluster = cluster
        self._local_id = local_id
        self._strict = strict
        self._propose = propose_conf_change
        self._next_id = next_id
        self._peer_active = peer_active
        self._match_index = match_index

    # --- requests

    def add(self, r: rpc_pb2.MemberAddRequest) -> Deferred[rpc_pb2.MemberAddResponse]:
        """Add a voter or a learner; its id comes from its peer URLs and the time."""
        urls = list(r.peerURLs)
        check_peer_urls(urls)
        member = Member(member_id(urls, "", int(time.time())), "", urls, [], r.isLearner)
        if self._strict and not member.is_learner:
            self._check_can_add_voter()
        cc = raft_pb2.ConfChange(
            type=raft_pb2.ConfChangeAddLearnerNode if r.isLearner else raft_pb2.ConfChangeAddNode,
            node_id=member.id,
            context=member.to_context(),
        )

        def respond(members: list[Member]) -> rpc_pb2.MemberAddResponse:
            resp = rpc_pb2.MemberAddResponse()
            resp.member.CopyFrom(to_proto(member))
            resp.members.extend(to_proto(m) for m in members)
            return resp

        return self._configure(cc).addCallback(respond)

    def remove(self, r: rpc_pb2.MemberRemoveRequest) -> Deferred[rpc_pb2.MemberRemoveResponse]:
        """Remove a member."""
        if self._strict:
            self._check_can_remove(r.ID)
        cc = raft_pb2.ConfChange(type=raft_pb2.ConfChangeRemoveNode, node_id=r.ID)
        return self._configure(cc).addCallback(
            lambda members: rpc_pb2.MemberRemoveResponse(members=[to_proto(m) for m in members])
        )

    def update(self, r: rpc_pb2.MemberUpdateRequest) -> Deferred[rpc_pb2.MemberUpdateResponse]:
        """Change a member's peer URLs."""
        urls = list(r.peerURLs)
        check_peer_urls(urls)
        existing = self._cluster.members.get(r.ID)
        member = Member(r.ID, existing.name if existing else "", urls, [], False)
        if existing is not None:
            member.client_urls = list(existing.client_urls)
            member.is_learner = existing.is_learner
        cc = raft_pb2.ConfChange(
            type=raft_pb2.ConfChangeUpdateNode, node_id=r.ID, context=member.to_context()
        )
        return self._configure(cc).addCallback(
            lambda members: rpc_pb2.MemberUpdateResponse(members=[to_proto(m) for m in members])
        )

    def promote(self, r: rpc_pb2.MemberPromoteRequest) -> Deferred[rpc_pb2.MemberPromoteResponse]:
        """Make a learner a voter, once its log has caught up with the leader's."""
        member = self._cluster.members.get(r.ID)
        if member is None:
            raise MemberNotFoundError()
        if not member.is_learner:
            raise NotLearnerError()
        self._check_learner_ready(r.ID)
        promoted = Member(member.id, member.name, member.peer_urls, member.client_urls, False)
        cc = raft_pb2.ConfChange(
            type=raft_pb2.ConfChangeAddNode, node_id=r.ID, context=promoted.to_context()
        )
        return self._configure(cc).addCallback(
            lambda members: rpc_pb2.MemberPromoteResponse(members=[to_proto(m) for m in members])
        )

    def _configure(self, cc: raft_pb2.ConfChange) -> Deferred[list[Member]]:
        cc.id = self._next_id()
        return self._propose(cc)

    # --- checks before proposing

    def _started_voters(self) -> tuple[int, int]:
        voters = [m for m in self._cluster.members.values() if not m.is_learner]
        return len(voters), sum(1 for m in voters if m.name)

    def _check_can_add_voter(self) -> None:
        members, started = self._started_voters()
        members += 1  # the one being added
        if not (started == 1 and members == 2) and started < members // 2 + 1:
            raise NotEnoughStartedMembersError()
        voters = [m.id for m in self._cluster.members.values() if not m.is_learner]
        if not all(self._peer_active(v) for v in voters):
            raise UnhealthyError()

    def _check_can_remove(self, remove_id: int) -> None:
        member = self._cluster.members.get(remove_id)
        if member is None or member.is_learner:
            return
        members, started = self._started_voters()
        if member.name:
            started -= 1
        if started < (members - 1) // 2 + 1:
            raise NotEnoughStartedMembersError()
        if remove_id != self._local_id and not self._peer_active(remove_id):
            return  # removing a member that is down does not reduce the active quorum
        voters = [m.id for m in self._cluster.members.values() if not m.is_learner]
        active = sum(1 for v in voters if self._peer_active(v))
        if active - 1 < 1 + (len(voters) - 1) // 2:
            raise UnhealthyError()

    def _check_learner_ready(self, learner_id: int) -> None:
        leader_match = self._match_index(self._local_id)
        learner_match = self._match_index(learner_id)
        if leader_match is None or learner_match is None:
            raise LearnerNotReadyError()
        if learner_match < leader_match * LEARNER_READY_PERCENT:
            raise LearnerNotReadyError()

    # --- when applied

    def validate(self, cc: raft_pb2.ConfChange) -> None:
        """Raise if ``cc`` no longer fits the cluster (checked when it is applied)."""
        cluster = self._cluster
        if cc.node_id in cluster.removed:
            raise MemberRemovedError()
        existing = cluster.members.get(cc.node_id)
        if cc.type == raft_pb2.ConfChangeAddNode and existing is not None:
            if not existing.is_learner:
                raise MemberExistsError()
            return  # promotion of a learner
        if cc.type in (raft_pb2.ConfChangeAddNode, raft_pb2.ConfChangeAddLearnerNode):
            if existing is not None:
                raise MemberExistsError()
            new = Member.from_context(cc.context)
            taken = {url for m in cluster.members.values() for url in m.peer_urls}
            if taken.intersection(new.peer_urls):
                raise PeerURLExistsError()
            if cc.type == raft_pb2.ConfChangeAddLearnerNode:
                learners = sum(1 for m in cluster.members.values() if m.is_learner)
                if learners >= MAX_LEARNERS:
                    raise TooManyLearnersError()
        elif cc.type in (raft_pb2.ConfChangeRemoveNode, raft_pb2.ConfChangeUpdateNode):
            if existing is None:
                raise MemberNotFoundError()
            if cc.type == raft_pb2.ConfChangeUpdateNode:
                new = Member.from_context(cc.context)
                taken = {
                    url
                    for m in cluster.members.values()
                    if m.id != cc.node_id
                    for url in m.peer_urls
                }
                if taken.intersection(new.peer_urls):
                    raise PeerURLExistsError()

    def apply(self, cc: raft_pb2.ConfChange) -> None:
        """Record a validated change in the cluster."""
        cluster = self._cluster
        if cc.type == raft_pb2.ConfChangeRemoveNode:
            cluster.remove(cc.node_id)
            return
        member = Member.from_context(cc.context) if cc.context else Member(cc.node_id)
        existing = cluster.members.get(cc.node_id)
        if cc.type == raft_pb2.ConfChangeAddNode and existing is not None:
            existing.is_learner = False  # promotion
            cluster.add(existing)
            return
        if existing is not None and cc.type == raft_pb2.ConfChangeUpdateNode:
            existing.peer_urls = member.peer_urls
            cluster.add(existing)
            return
        member.is_learner = cc.type == raft_pb2.ConfChangeAddLearnerNode
        cluster.add(member)


def to_proto(member: Member) -> rpc_pb2.Member:
    """A member as the Cluster service returns it."""
    return rpc_pb2.Member(
        ID=member.id,
        name=member.name,
        peerURLs=member.peer_urls,
        clientURLs=member.client_urls,
        isLearner=member.is_learner,
    )
