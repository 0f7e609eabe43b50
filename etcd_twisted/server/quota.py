"""``QuotaGuard``: refuse a write that would take the backend past its quota.

Checked before a write is proposed, as etcd's ``quotaKVServer`` does: a write that
would not fit is refused with NOSPACE, and the NOSPACE alarm is raised through raft
(once) so every member refuses writes until an operator clears it.
"""

from __future__ import annotations

from collections.abc import Callable

from etcd_twisted._pb import rpc_pb2
from etcd_twisted._pb.raft_internal_pb2 import InternalRaftRequest
from etcd_twisted.apply.errors import NoSpaceError
from etcd_twisted.apply.state import MemberState
from etcd_twisted.server.proposer import Proposer


class QuotaGuard:
    """Raises ``NoSpaceError`` (and the alarm) for a write of ``cost`` bytes that won't fit."""

    def __init__(
        self, state: Callable[[], MemberState], proposer: Proposer, member_id: int
    ) -> None:
        self._state = state
        self._proposer = proposer
        self._member_id = member_id

    def check(self, cost: int) -> None:
        """Refuse a write of ``cost`` bytes that would exceed the quota."""
        state = self._state()
        if not cost or not state.backend.would_exceed(cost):
            return
        if not state.alarms.active(rpc_pb2.NOSPACE):
            alarm = rpc_pb2.AlarmRequest(
                action=rpc_pb2.AlarmRequest.ACTIVATE,
                memberID=self._member_id,
                alarm=rpc_pb2.NOSPACE,
            )
            self._proposer.propose(InternalRaftRequest(alarm=alarm)).addErrback(lambda f: None)
        raise NoSpaceError()
