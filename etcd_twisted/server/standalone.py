"""``--force-new-cluster``: restart a member as the only member of its cluster.

etcd's documented recovery after losing quorum (its ``restartAsStandaloneNode``): the
WAL's entries past the last committed index are dropped, and conf changes are appended
after it that remove every other member (adding this one first if the log does not
know it), saved to the WAL and counted as committed. Raft applies them on start, the
membership forgets the others, and the member elects itself and serves alone with
all its keys.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from etcd_twisted._pb import raft_pb2
from etcd_twisted.membership.cluster import Member

#: The peer URL etcd gives this member when the log has never added it.
DEFAULT_PEER_URL = "http://localhost:2380"


class EntryLog(Protocol):
    """The WAL call the restart needs."""

    def save(self, hard_state: raft_pb2.HardState, entries: Sequence[raft_pb2.Entry]) -> None: ...


def member_ids(snapshot: raft_pb2.Snapshot | None, entries: Sequence[raft_pb2.Entry]) -> list[int]:
    """The members the snapshot and the entries' conf changes leave, sorted."""
    ids: set[int] = set()
    if snapshot is not None:
        ids.update(snapshot.metadata.conf_state.voters)
        ids.update(snapshot.metadata.conf_state.learners)
    for entry in entries:
        if entry.type != raft_pb2.EntryConfChange:
            continue
        cc = raft_pb2.ConfChange.FromString(entry.data)
        if cc.type in (raft_pb2.ConfChangeAddNode, raft_pb2.ConfChangeAddLearnerNode):
            ids.add(cc.node_id)
        elif cc.type == raft_pb2.ConfChangeRemoveNode:
            ids.discard(cc.node_id)
    return sorted(ids)


def standalone_entries(
    ids: Sequence[int], self_id: int, term: int, index: int
) -> list[raft_pb2.Entry]:
    """Conf-change entries after ``index`` that leave ``self_id`` the only member: add
    it first if absent (raft must never be left without a voter), then remove the rest."""
    changes: list[raft_pb2.ConfChange] = []
    if self_id not in ids:
        context = Member(self_id, "", [DEFAULT_PEER_URL]).to_context()
        changes.append(
            raft_pb2.ConfChange(type=raft_pb2.ConfChangeAddNode, node_id=self_id, context=context)
        )
    changes += [
        raft_pb2.ConfChange(type=raft_pb2.ConfChangeRemoveNode, node_id=member)
        for member in ids
        if member != self_id
    ]
    return [
        raft_pb2.Entry(
            type=raft_pb2.EntryConfChange, term=term, index=index + i, data=cc.SerializeToString()
        )
        for i, cc in enumerate(changes, start=1)
    ]


def restart_standalone(
    wal: EntryLog,
    self_id: int,
    snapshot: raft_pb2.Snapshot | None,
    hard_state: raft_pb2.HardState,
    entries: list[raft_pb2.Entry],
) -> list[raft_pb2.Entry]:
    """Drop uncommitted entries, append and save the standalone conf changes, and move
    ``hard_state``'s commit to the last entry; returns the entries raft starts with."""
    committed = [e for e in entries if e.index <= hard_state.commit]
    ids = member_ids(snapshot, committed)
    added = standalone_entries(ids, self_id, hard_state.term, hard_state.commit)
    wal.save(raft_pb2.HardState(), added)
    entries = committed + added
    if entries:
        hard_state.commit = entries[-1].index
    return entries
