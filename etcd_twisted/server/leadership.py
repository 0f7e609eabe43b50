"""``LeadershipTransfer``: moving leadership (MoveLeader, and before a graceful stop)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime

from etcd_twisted.membership.cluster import Member
from etcd_twisted.server.errors import LeaderTransferTimeoutError


class RaftLeadership(Protocol):
    """The raft calls a transfer needs."""

    def transfer_leader(self, transferee: int) -> None: ...


class LeadershipTransfer:
    """Asks raft to move leadership and waits until the leader is the transferee."""

    def __init__(
        self,
        member_id: int,
        raft: RaftLeadership,
        leader_id: Callable[[], int],
        match_index: Callable[[int], int | None],
        peer_active: Callable[[int], bool],
        clock: IReactorTime,
        poll_interval: float,
    ) -> None:
        self._member_id = member_id
        self._raft = raft
        self._leader_id = leader_id
        self._match_index = match_index
        self._peer_active = peer_active
        self._clock = clock
        self._poll_interval = poll_interval

    def transfer(self, target: int, timeout: float) -> Deferred[None]:
        """Fires once ``target`` leads; fails with ``LeaderTransferTimeoutError``."""
        self._raft.transfer_leader(target)
        deadline = self._clock.seconds() + timeout
        done: Deferred[None] = Deferred()

        def check() -> None:
            if self._leader_id() == target:
                done.callback(None)
            elif self._clock.seconds() >= deadline:
                done.errback(LeaderTransferTimeoutError())
            else:
                self._clock.callLater(self._poll_interval, check)

        check()
        return done

    def transferee(self, members: Iterable[Member]) -> int | None:
        """The most up-to-date connected voter, to hand leadership to before stopping."""
        best, best_match = None, -1
        for member in members:
            if member.id == self._member_id or member.is_learner:
                continue
            if not self._peer_active(member.id):
                continue
            match = self._match_index(member.id)
            if match is not None and match > best_match:
                best, best_match = member.id, match
        return best
