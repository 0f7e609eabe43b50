"""Decoding a ``TxnRequest`` for the KV service: too many ops refused from the wire
bytes, nested Txns as deep as etcd takes them.

etcd's first check of a Txn is its op count (``max(len(compare), len(success),
len(failure)) > --max-txn-ops`` is "too many operations in txn request"). Counting the
top-level fields on the wire, stopping at the first count over the limit, answers that
in microseconds, where decoding 100k ops first would hold the reactor for a second.
"""

from __future__ import annotations

from google.protobuf.message import DecodeError

from etcd_twisted import deep_proto
from etcd_twisted._pb import rpc_pb2

#: ``TxnRequest`` field numbers: compare, success, failure.
_OP_FIELDS = (1, 2, 3)
#: Fields other than ops looked at before the count leaves the rest to full decoding.
_OTHER_FIELDS = 64


def _max_depth(max_txn_ops: int) -> int:
    """Message levels of the deepest Txn etcd's op check can let through (a Txn level is
    a ``TxnRequest`` and a ``RequestOp``), with room for the innermost op."""
    return 2 * (max_txn_ops + 1) + 2


class TooManyOpsRefusal:
    """What :class:`TxnDecoder` gives for a Txn refused before decoding."""


TOO_MANY_OPS = TooManyOpsRefusal()


def too_many_ops(data: bytes, max_txn_ops: int) -> bool:
    """True when a ``TxnRequest``'s top level has more compares, success ops or
    failure ops than ``max_txn_ops`` (False when it has not, or the bytes are not a
    well-formed message: then decoding reports them)."""
    counts = dict.fromkeys(_OP_FIELDS, 0)
    budget = 3 * max_txn_ops + _OTHER_FIELDS  # then let upb's C loop do the counting
    try:
        for number, _, _, _ in deep_proto.split_fields(data):
            budget -= 1
            if budget < 0:
                return False
            if number in counts:
                counts[number] += 1
                if counts[number] > max_txn_ops:
                    return True
    except DecodeError:
        return False
    return False


class TxnDecoder:
    """The KV service's ``Txn`` request type: ``FromString`` gives a ``TxnRequest``, or
    :data:`TOO_MANY_OPS` when the op count alone refuses it."""

    def __init__(self, max_txn_ops: int) -> None:
        self.max_txn_ops = max_txn_ops

    def FromString(self, data: bytes) -> rpc_pb2.TxnRequest | TooManyOpsRefusal:  # noqa: N802
        if too_many_ops(data, self.max_txn_ops):
            return TOO_MANY_OPS
        try:
            return deep_proto.parse(rpc_pb2.TxnRequest, data, _max_depth(self.max_txn_ops))
        except deep_proto.TooDeepError:
            # every level holds at least one op of its parent's budget, so a Txn nested
            # deeper than the budget is refused as too many ops by etcd's check too
            return TOO_MANY_OPS
