"""Majority arithmetic: the committed index and vote outcomes of a set of voters."""

from collections.abc import Collection, Mapping, Sequence
from enum import IntEnum

from etcd_twisted.raft.util import NO_LIMIT


class VoteResult(IntEnum):
    """The outcome of an election (or any yes/no poll) so far."""

    PENDING = 1
    LOST = 2
    WON = 3


def committed_index(matches: Sequence[int]) -> int:
    """The largest index that a majority has, given each voter's ``match`` index.

    No voters commit everything (``NO_LIMIT``), as in etcd, so that an empty half of a
    configuration never holds the other back.
    """
    n = len(matches)
    if n == 0:
        return NO_LIMIT
    if n == 1:
        return matches[0]
    return sorted(matches)[n - (n // 2 + 1)]


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
