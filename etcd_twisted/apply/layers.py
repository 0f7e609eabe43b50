"""The layers a raft request passes before the backend applier, as etcd's ``uberApplier``.

``auth → quota (NOSPACE) → corrupt → backend``: each layer may refuse the request
with its error, or hand it down unchanged. A layer sees the request kind (the
``InternalRaftRequest`` oneof name) and the request; the backend applier at the
bottom holds the one table from kind to handler (``apply/applier.py``).
"""

from __future__ import annotations

from typing import Any, Protocol

from etcd_twisted._pb import rpc_pb2
from etcd_twisted._pb.raft_internal_pb2 import InternalRaftRequest

from .alarms import AlarmStore
from .auth import AuthApplier
from .errors import CorruptClusterError, NoSpaceError
from .quota import LEASE_OVERHEAD, put_cost, txn_cost


class Context(Protocol):
    """What a handler knows of the entry it applies: its raft index, and the time."""

    index: int
    now: float


class RequestApplier(Protocol):
    """One layer: apply ``req`` (of oneof ``kind``) and return its response, or raise."""

    def apply(self, kind: str, req: InternalRaftRequest, ctx: Context) -> Any: ...


class AuthLayer:
    """Refuses a request its user may not make (checked when applied: etcd's ``authApplierV3``)."""

    def __init__(self, inner: RequestApplier, auth: AuthApplier) -> None:
        self._inner = inner
        self._auth = auth

    def apply(self, kind: str, req: InternalRaftRequest, ctx: Context) -> Any:
        self._auth.check(req)
        return self._inner.apply(kind, req, ctx)


#: The cost in quota bytes of each request kind that adds data (etcd's ``quota.Cost``).
_COSTS = {
    "put": lambda req: put_cost(req.put),
    "txn": lambda req: txn_cost(req.txn),
    "lease_grant": lambda req: LEASE_OVERHEAD,
}


class QuotaLayer:
    """While NOSPACE is raised, refuses every request that adds data (etcd's capped applier)."""

    def __init__(self, inner: RequestApplier, alarms: AlarmStore) -> None:
        self._inner = inner
        self._alarms = alarms

    def apply(self, kind: str, req: InternalRaftRequest, ctx: Context) -> Any:
        cost = _COSTS.get(kind)
        if cost is not None and self._alarms.active(rpc_pb2.NOSPACE) and cost(req) > 0:
            raise NoSpaceError()
        return self._inner.apply(kind, req, ctx)


#: Requests a corrupt member refuses (etcd's ``applierV3Corrupt``).
_DATA_KINDS = frozenset({"put", "delete_range", "txn", "compaction", "lease_grant", "lease_revoke"})


class CorruptLayer:
    """While CORRUPT is raised, refuses every request that reads or writes data."""

    def __init__(self, inner: RequestApplier, alarms: AlarmStore) -> None:
        self._inner = inner
        self._alarms = alarms

    def apply(self, kind: str, req: InternalRaftRequest, ctx: Context) -> Any:
        if kind in _DATA_KINDS and self._alarms.active(rpc_pb2.CORRUPT):
            raise CorruptClusterError()
        return self._inner.apply(kind, req, ctx)
