"""Checks a KV request must pass before it is proposed (etcd's ``v3rpc/key.go``).

They need nothing but the request: empty keys, conflicting put flags, too many txn
operations, unknown sort options, and a txn branch that writes one key twice
(``check_intervals``, including etcd's treatment of delete ranges).
"""

from __future__ import annotations

from etcd_twisted._pb import rpc_pb2

from .errors import (
    DuplicateKeyError,
    EmptyKeyError,
    InvalidSortOptionError,
    KeyNotFoundError,
    LeaseProvidedError,
    TooManyOpsError,
    ValueProvidedError,
)

_SORT_TARGETS = set(rpc_pb2.RangeRequest.SortTarget.values())


def check_range(r: rpc_pb2.RangeRequest) -> None:
    """A range needs a key and a known sort target.

    etcd 3.5.1 checks neither sort option: an unknown order sorts nothing (we do the
    same), an unknown target crashes it on a nil sorter; we refuse that one with the
    error later etcd versions give.
    """
    if not r.key:
        raise EmptyKeyError()
    if r.sort_target not in _SORT_TARGETS:
        raise InvalidSortOptionError()


def check_put(p: rpc_pb2.PutRequest) -> None:
    """A put needs a key, and sends no value/lease it asks to ignore."""
    if not p.key:
        raise EmptyKeyError()
    if p.ignore_value and p.value:
        raise ValueProvidedError()
    if p.ignore_lease and p.lease:
        raise LeaseProvidedError()


def check_delete(d: rpc_pb2.DeleteRangeRequest) -> None:
    """A delete needs a key."""
    if not d.key:
        raise EmptyKeyError()


def check_txn(t: rpc_pb2.TxnRequest, max_txn_ops: int) -> None:
    """Every op of a txn is valid, no branch is too long, and no branch writes a key twice."""
    _check_txn_ops(t, max_txn_ops)
    check_intervals(t.success)
    check_intervals(t.failure)


def _check_txn_ops(t: rpc_pb2.TxnRequest, max_txn_ops: int) -> None:
    opc = max(len(t.compare), len(t.success), len(t.failure))
    if opc > max_txn_ops:
        raise TooManyOpsError()
    for c in t.compare:
        if not c.key:
            raise EmptyKeyError()
    for op in (*t.success, *t.failure):
        kind = op.WhichOneof("request")
        if kind == "request_range":
            check_range(op.request_range)
        elif kind == "request_put":
            check_put(op.request_put)
        elif kind == "request_delete_range":
            check_delete(op.request_delete_range)
        elif kind == "request_txn":
            _check_txn_ops(op.request_txn, max_txn_ops - opc)
        else:
            raise KeyNotFoundError()  # an empty op: etcd answers "key not found"


def _affine_less(a: bytes, b: bytes) -> bool:
    """``a < b`` where an empty ``b`` is +infinity (etcd's affine string order)."""
    if not b:
        return bool(a)
    if not a:
        return False
    return a < b


class _Deletes:
    """The delete ranges of a txn level: points and ``[key, end)`` intervals."""

    def __init__(self) -> None:
        self.intervals: list[tuple[bytes, bytes]] = []

    def add(self, key: bytes, end: bytes) -> None:
        # A point is [key, key + "\0"): the smallest interval holding only ``key``.
        self.intervals.append((key, end if end else key + b"\x00"))

    def contains(self, key: bytes) -> bool:
        return any(
            not _affine_less(key, begin) and _affine_less(key, end) for begin, end in self.intervals
        )

    def union(self, other: _Deletes) -> None:
        self.intervals.extend(other.intervals)


def check_intervals(ops) -> tuple[set[bytes], _Deletes]:
    """The keys put and ranges deleted by ``ops``; raises if a key is written twice."""
    dels = _Deletes()
    for op in ops:
        if op.WhichOneof("request") == "request_delete_range":
            d = op.request_delete_range
            dels.add(d.key, d.range_end)
    puts: set[bytes] = set()
    for op in ops:
        if op.WhichOneof("request") != "request_txn":
            continue
        puts_then, dels_then = check_intervals(op.request_txn.success)
        puts_else, dels_else = check_intervals(op.request_txn.failure)
        for key in puts_then:
            if key in puts or dels.contains(key):
                raise DuplicateKeyError()
            puts.add(key)
        for key in puts_else:
            if (key in puts and key not in puts_then) or dels.contains(key):
                raise DuplicateKeyError()
            puts.add(key)
        dels.union(dels_then)
        dels.union(dels_else)
    for op in ops:
        if op.WhichOneof("request") != "request_put":
            continue
        key = op.request_put.key
        if key in puts or dels.contains(key):
            raise DuplicateKeyError()
        puts.add(key)
    return puts, dels
