"""``Applier``: every request that goes through raft, applied through one table.

A committed ``InternalRaftRequest`` is applied as ``applier.apply(req, index, now)``:
it passes the layers (``auth → quota → corrupt``, see ``layers.py``) and reaches
:class:`BackendApplier`, whose ``handlers`` table maps each request kind (the oneof
name) to the handler that runs it against the member's stores. Adding a request kind
is one entry in that table. The result is the response for the waiting client, or
the exception it raised (the caller hands either to the waiter).

Pure logic: no reactor, no clock; the entry's index and the time come in the call.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from etcd_twisted._pb import rpc_pb2
from etcd_twisted._pb.raft_internal_pb2 import InternalRaftRequest

from .alarms import NONE
from .auth import AUTH_KINDS, AuthApplier
from .kv import KVApplier
from .layers import AuthLayer, Context, CorruptLayer, QuotaLayer, RequestApplier
from .state import MemberState

#: ``handler(request, context)``: runs one request kind against the stores.
Handler = Callable[[InternalRaftRequest, Context], Any]


@dataclass(frozen=True, slots=True)
class ApplyContext:
    """The entry being applied: its raft index, and the time it is applied at."""

    index: int
    now: float


class BackendApplier:
    """The bottom layer: the table from request kind to handler."""

    def __init__(
        self,
        state: MemberState,
        kv: KVApplier,
        auth: AuthApplier,
        on_compaction: Callable[[], None],
    ) -> None:
        self._state = state
        self._kv = kv
        self._auth = auth
        self._on_compaction = on_compaction
        self.handlers: dict[str, Handler] = {
            "put": lambda req, ctx: kv.apply_put(req.put),
            "delete_range": lambda req, ctx: kv.apply_delete_range(req.delete_range),
            "txn": lambda req, ctx: kv.txn(req.txn),
            "compaction": self._compaction,
            "lease_grant": self._lease_grant,
            "lease_revoke": self._lease_revoke,
            "lease_checkpoint": self._lease_checkpoint,
            "alarm": self._alarm,
            "cluster_version_set": self._cluster_version_set,
            "cluster_member_attr_set": self._member_attr_set,
            **{kind: self._auth_request for kind in AUTH_KINDS},
        }

    def apply(self, kind: str, req: InternalRaftRequest, ctx: Context) -> Any:
        handler = self.handlers.get(kind)
        return None if handler is None else handler(req, ctx)

    def _compaction(self, req: InternalRaftRequest, ctx: Context) -> rpc_pb2.CompactionResponse:
        resp = self._kv.compaction(req.compaction)
        self._on_compaction()
        return resp

    def _lease_grant(self, req: InternalRaftRequest, ctx: Context) -> rpc_pb2.LeaseGrantResponse:
        r = req.lease_grant
        lease = self._state.lessor.grant(r.ID, r.TTL, ctx.now)
        return rpc_pb2.LeaseGrantResponse(ID=lease.id, TTL=lease.ttl)

    def _lease_revoke(self, req: InternalRaftRequest, ctx: Context) -> rpc_pb2.LeaseRevokeResponse:
        keys = self._state.lessor.revoke(req.lease_revoke.ID)
        if keys:
            txn = self._state.kv.write()
            try:
                for key in keys:
                    txn.delete_range(key)
            finally:
                txn.end()
        return rpc_pb2.LeaseRevokeResponse()

    def _lease_checkpoint(
        self, req: InternalRaftRequest, ctx: Context
    ) -> rpc_pb2.LeaseCheckpointResponse:
        for cp in req.lease_checkpoint.checkpoints:
            self._state.lessor.apply_checkpoint(cp.ID, cp.remaining_TTL)
        return rpc_pb2.LeaseCheckpointResponse()

    def _alarm(self, req: InternalRaftRequest, ctx: Context) -> rpc_pb2.AlarmResponse:
        r, alarms = req.alarm, self._state.alarms
        resp = rpc_pb2.AlarmResponse()
        if r.action == rpc_pb2.AlarmRequest.GET:
            resp.alarms.extend(alarms.get(r.alarm))
            return resp
        if r.action == rpc_pb2.AlarmRequest.ACTIVATE and r.alarm != NONE:
            member = alarms.activate(r.memberID, r.alarm)
        elif r.action == rpc_pb2.AlarmRequest.DEACTIVATE:
            member = alarms.deactivate(r.memberID, r.alarm)
        else:
            member = None
        if member is not None:
            resp.alarms.append(member)
        return resp

    def _cluster_version_set(self, req: InternalRaftRequest, ctx: Context) -> None:
        self._state.set_cluster_version(req.cluster_version_set.ver)

    def _member_attr_set(self, req: InternalRaftRequest, ctx: Context) -> None:
        attrs = req.cluster_member_attr_set
        self._state.cluster.set_attributes(
            attrs.member_ID, attrs.member_attributes.name, list(attrs.member_attributes.client_urls)
        )

    def _auth_request(self, req: InternalRaftRequest, ctx: Context) -> object:
        return self._auth.apply(req, ctx.index, ctx.now)


class Applier:
    """The layered applier over one :class:`MemberState` (rebuilt when the state is)."""

    def __init__(self, state: MemberState, on_compaction: Callable[[], None]) -> None:
        self.state = state
        #: KV semantics, also used for reads (range, read-only txn) outside raft.
        self.kv = KVApplier(state.kv, state.lease_exists)
        #: Permission checks, also used for reads outside raft.
        self.auth = AuthApplier(state.auth, state.lease_keys)
        self.backend = BackendApplier(state, self.kv, self.auth, on_compaction)
        self._top: RequestApplier = AuthLayer(
            QuotaLayer(CorruptLayer(self.backend, state.alarms), state.alarms), self.auth
        )

    def apply(self, req: InternalRaftRequest, index: int, now: float) -> Any:
        """Apply one committed request; returns its response or raises its error."""
        kind = req.WhichOneof("request")
        if kind is None:
            return None
        return self._top.apply(kind, req, ApplyContext(index, now))
