"""Majority arithmetic: the committed index and vote outcomes of a set of voters."""

from collections.abc import Collection, Mapping
from enum import IntEnum

from etcd_twisted.raft.util import NO_LIMIT


class VoteResult(IntEnum):
    """The outcome of an election (or any yes/no poll) so far."""

    PENDING = 1
    LOST = 2
    WON = 3


def committed_index(voters: Collection[int], match: Mapping[int, int]) -> int:
    """The largest index that a majority of ``voters`` has (per ``match``).

    An empty set of voters commits everything (``NO_LIMIT``), as in etcd, so that a joint
    half that is empty does not hold the other back.
    """
    n = len(voters)
    if n == 0:
        return NO_LIMIT
    if n == 1:
        (only,) = voters
        return match.get(only, 0)
    srt = sorted(match.get(v, 0) for v in voters)
    return srt[n - (n // 2 + 1)]


def vote_result(voters: Collection[int], votes: Mapping[int, bool]) -> VoteResult:
    """Whether ``votes`` (voter id to granted) already win or lose among ``voters``."""
    if not voters:
        return VoteResult.WON
    granted = missing = 0
    for v in voters:
        vote = votes.get(v)
        if vote is None:
            missing += 1
        elif vote:
            granted += 1
    q = len(voters) // 2 + 1
    if granted >= q:
        return VoteResult.WON
    if granted + missing >= q:
        return VoteResult.PENDING
    return VoteResult.LOST


def has_quorum(voters: Collection[int], ids: Collection[int]) -> bool:
    """Whether ``ids`` include a majority of ``voters``."""
    return sum(1 for v in voters if v in ids) >= len(voters) // 2 + 1
