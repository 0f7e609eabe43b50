"""``ConfChangeApplier``: membership changes as raft commits them.

A conf change is validated when applied (etcd's ``ValidateConfigurationChange``):
a valid one goes to raft (``apply_conf_change``), to the membership store, and to
the peer network; a rejected one is a no-op for raft, and its index is recorded in
the backend so a WAL replay rejects it again. A member that sees itself removed
answers the call that removed it first, then stops.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure

from etcd_twisted._pb import raft_pb2
from etcd_twisted.apply.state import MemberState
from etcd_twisted.backend import buckets
from etcd_twisted.server.proposer import Proposer
from etcd_twisted.server.reconfig import Reconfigurator

#: Meta-bucket key prefix recording a conf change that was rejected when applied.
REJECTED_CONF_CHANGE = b"rejectedConfChange/"
#: Seconds a removed member keeps serving, so the answer to its removal gets out.
REMOVED_STOP_DELAY = 0.5


class RaftMembership(Protocol):
    """The raft call a conf change needs (``RawNode.apply_conf_change``)."""

    def apply_conf_change(self, cc: raft_pb2.ConfChange) -> object: ...


class ConfChangeApplier:
    """Applies committed conf changes (see the module docstring)."""

    def __init__(
        self,
        member_id: int,
        node: RaftMembership,
        state: Callable[[], MemberState],
        reconfig: Callable[[], Reconfigurator],
        proposer: Proposer,
        clock: IReactorTime,
        on_peers_changed: Callable[[raft_pb2.ConfChange], None],
        on_removed: Callable[[], None],
    ) -> None:
        self._member_id = member_id
        self._node = node
        self._state = state
        self._reconfig = reconfig
        self._proposer = proposer
        self._clock = clock
        self._on_peers_changed = on_peers_changed
        self._on_removed = on_removed

    def apply(self, entry: raft_pb2.Entry, to_backend: bool) -> None:
        """Apply the conf change of ``entry``; ``to_backend`` False on a replay the
        backend already reflects (raft must still see it, unless it was rejected)."""
        cc = raft_pb2.ConfChange.FromString(entry.data)
        meta = self._state().backend.batch_tx
        rejected_key = REJECTED_CONF_CHANGE + entry.index.to_bytes(8, "big")
        if not to_backend:
            if meta.get(buckets.META, rejected_key) is None:
                self._node.apply_conf_change(cc)
            return
        try:
            self._reconfig().validate(cc)
        except Exception:  # noqa: BLE001 - the caller gets the reason; raft sees a no-op
            meta.put(buckets.META, rejected_key, b"")
            if cc.id:
                self._proposer.answer(cc.id, Failure())
            return
        self._node.apply_conf_change(cc)
        self._reconfig().apply(cc)
        self._on_peers_changed(cc)
        if cc.id:
            self._proposer.answer(cc.id, self._state().cluster.sorted_members())
        if cc.type == raft_pb2.ConfChangeRemoveNode and cc.node_id == self._member_id:
            self._clock.callLater(REMOVED_STOP_DELAY, self._on_removed)
