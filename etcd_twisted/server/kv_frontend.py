"""``KVFrontend``: the KV service's calls (range, put, delete range, txn, compact).

Reads run against the local store: serializable ones at once, linearizable ones
after a ReadIndex round. Writes are checked (``apply/checks.py``: sizes, op counts,
keys) and, when they add data, held against the quota before they are proposed;
the applier runs them once committed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import Cooperator

from etcd_twisted._pb import rpc_pb2
from etcd_twisted._pb.raft_internal_pb2 import InternalRaftRequest
from etcd_twisted.apply import checks
from etcd_twisted.apply.applier import Applier
from etcd_twisted.apply.kv import is_txn_readonly
from etcd_twisted.apply.quota import put_cost, txn_cost
from etcd_twisted.auth import NO_USER, AuthInfo
from etcd_twisted.auth.errors import AuthOldRevisionError
from etcd_twisted.mvcc.encoded_range import EncodedRange, EncodedRangeResponse, pages_per_turn
from etcd_twisted.server.compaction import PhysicalCompaction
from etcd_twisted.server.proposer import Proposer
from etcd_twisted.server.quota import QuotaGuard


class KVFrontend:
    """KV calls over the current applier (see the module docstring)."""

    def __init__(
        self,
        applier: Callable[[], Applier],
        proposer: Proposer,
        quota: QuotaGuard,
        compaction: PhysicalCompaction,
        max_txn_ops: int,
        clock: IReactorTime,
    ) -> None:
        self._applier = applier
        self._proposer = proposer
        self._quota = quota
        self._compaction = compaction
        self._max_txn_ops = max_txn_ops
        #: Long ranges are read a few pages per reactor turn, all of them in one rotation.
        self._pacer = Cooperator(
            terminationPredicateFactory=pages_per_turn,
            scheduler=lambda step: clock.callLater(0, step),
        )

    def range(
        self, r: rpc_pb2.RangeRequest, auth: AuthInfo | None = None
    ) -> Deferred[rpc_pb2.RangeResponse] | rpc_pb2.RangeResponse:
        """Range: serializable reads run now; linearizable ones after a ReadIndex round."""
        checks.check_range(r)

        def read() -> rpc_pb2.RangeResponse | Deferred[EncodedRangeResponse]:
            applier, info = self._applier(), auth or NO_USER
            applier.state.auth.is_range_permitted(info, r.key, r.range_end)
            paged = EncodedRange.start(applier.state.kv, r)
            if paged is not None:  # a long range: read in pages across reactor turns
                done = self._pacer.cooperate(paged.pages()).whenDone()
                return done.addCallback(lambda _: self._current(applier, info, paged.response()))
            return self._current(applier, info, applier.kv.range(applier.state.kv, r))

        if r.serializable:
            return read()
        return self._proposer.linearizable(read)

    def put(
        self, p: rpc_pb2.PutRequest, auth: AuthInfo | None = None
    ) -> Deferred[rpc_pb2.PutResponse]:
        """Put, through raft."""
        checks.check_put(p)
        self._quota.check(put_cost(p))
        return self._proposer.propose(InternalRaftRequest(put=p), auth)

    def delete_range(
        self, d: rpc_pb2.DeleteRangeRequest, auth: AuthInfo | None = None
    ) -> Deferred[rpc_pb2.DeleteRangeResponse]:
        """DeleteRange, through raft."""
        checks.check_delete(d)
        return self._proposer.propose(InternalRaftRequest(delete_range=d), auth)

    def txn(
        self, t: rpc_pb2.TxnRequest, auth: AuthInfo | None = None
    ) -> Deferred[rpc_pb2.TxnResponse] | rpc_pb2.TxnResponse:
        """Txn: read-only ones are served like reads, others go through raft."""
        checks.check_txn(t, self._max_txn_ops)
        if is_txn_readonly(t):

            def read() -> rpc_pb2.TxnResponse:
                applier, info = self._applier(), auth or NO_USER
                applier.auth.check_txn(info, t)
                return self._current(applier, info, applier.kv.txn(t))

            if _txn_serializable(t):
                return read()
            return self._proposer.linearizable(read)
        self._quota.check(txn_cost(t))
        request = InternalRaftRequest()
        request.txn.CopyFrom(t)  # InternalRaftRequest(txn=t) re-parses: upb refuses deep Txns
        return self._proposer.propose(request, auth)

    def compact(
        self, c: rpc_pb2.CompactionRequest, auth: AuthInfo | None = None
    ) -> Deferred[rpc_pb2.CompactionResponse]:
        """Compaction, through raft; ``physical`` waits until the space is reclaimed."""
        d = self._proposer.propose(InternalRaftRequest(compaction=c), auth)
        if c.physical:

            def wait_physical(resp: rpc_pb2.CompactionResponse) -> Deferred[Any]:
                return self._compaction.done().addCallback(lambda _: resp)

            d.addCallback(wait_physical)
        return d

    @staticmethod
    def _current(applier: Applier, info: AuthInfo, response: Any) -> Any:
        """A read authorised at an auth revision that is no longer current is refused."""
        if info.revision and info.revision != applier.state.auth.revision:
            raise AuthOldRevisionError()
        return response


def _txn_serializable(t: rpc_pb2.TxnRequest) -> bool:
    """A read-only txn whose every range asks for serializable reads."""
    for op in (*t.success, *t.failure):
        kind = op.WhichOneof("request")
        if kind == "request_range" and not op.request_range.serializable:
            return False
        if kind == "request_txn" and not _txn_serializable(op.request_txn):
            return False
    return True
