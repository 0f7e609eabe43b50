"""Applying KV requests (range, put, delete range, txn, compaction) to the MVCC store.

Semantics follow etcd 3.5's ``apply.go`` and ``txn.go``: a txn's compares, nested
ones included, are all evaluated against the store as it was before the txn; every
op of the chosen path is checked (leases, keys, revisions) before anything is
written, so a txn either applies whole or fails with nothing changed; later ops
see earlier writes of the same txn.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from etcd_twisted._pb import kv_pb2, rpc_pb2
from etcd_twisted.lease.errors import LeaseNotFoundError
from etcd_twisted.mvcc.errors import CompactedError, FutureRevisionError
from etcd_twisted.mvcc.kvstore import KVStore, WriteTxn

from .errors import KeyNotFoundError

RangeRequest = rpc_pb2.RangeRequest
SORT_NONE = RangeRequest.NONE
SORT_ASCEND = RangeRequest.ASCEND
SORT_DESCEND = RangeRequest.DESCEND

_SORT_KEYS: dict[int, Callable[[kv_pb2.KeyValue], object]] = {
    RangeRequest.KEY: lambda kv: kv.key,
    RangeRequest.VERSION: lambda kv: kv.version,
    RangeRequest.CREATE: lambda kv: kv.create_revision,
    RangeRequest.MOD: lambda kv: kv.mod_revision,
    RangeRequest.VALUE: lambda kv: kv.value,
}

Compare = rpc_pb2.Compare
_COMPARE_TARGETS: dict[int, Callable[[kv_pb2.KeyValue], object]] = {
    Compare.VERSION: lambda kv: kv.version,
    Compare.CREATE: lambda kv: kv.create_revision,
    Compare.MOD: lambda kv: kv.mod_revision,
    Compare.VALUE: lambda kv: kv.value,
    Compare.LEASE: lambda kv: kv.lease,
}
_COMPARE_VALUES: dict[int, str] = {
    Compare.VERSION: "version",
    Compare.CREATE: "create_revision",
    Compare.MOD: "mod_revision",
    Compare.VALUE: "value",
    Compare.LEASE: "lease",
}
_EMPTY_KV = kv_pb2.KeyValue()

#: A view that ranges: the store itself or a write txn (which sees its own writes).
Reader = KVStore | WriteTxn
#: ``lease_exists(id)``: whether the lessor knows lease ``id``.
LeaseLookup = Callable[[int], bool]


def _no_leases(lease_id: int) -> bool:
    return False


class KVApplier:
    """Runs KV requests against a :class:`KVStore`."""

    def __init__(self, kv: KVStore, lease_exists: LeaseLookup = _no_leases) -> None:
        self.kv = kv
        self.lease_exists = lease_exists

    # --- range

    def range(self, reader: Reader, r: rpc_pb2.RangeRequest) -> rpc_pb2.RangeResponse:
        """A range with etcd's sort, filter, limit and ``more`` rules."""
        resp = rpc_pb2.RangeResponse()
        limit = r.limit
        if (
            r.sort_order != SORT_NONE
            or r.min_mod_revision
            or r.max_mod_revision
            or r.min_create_revision
            or r.max_create_revision
        ):
            limit = 0  # fetch everything; sort and cut afterwards
        if limit > 0:
            limit += 1  # one extra tells whether there is more
        rr = reader.range(r.key, r.range_end or None, r.revision, limit, r.count_only)
        kvs = rr.kvs
        if r.max_mod_revision:
            kvs = [kv for kv in kvs if kv.mod_revision <= r.max_mod_revision]
        if r.min_mod_revision:
            kvs = [kv for kv in kvs if kv.mod_revision >= r.min_mod_revision]
        if r.max_create_revision:
            kvs = [kv for kv in kvs if kv.create_revision <= r.max_create_revision]
        if r.min_create_revision:
            kvs = [kv for kv in kvs if kv.create_revision >= r.min_create_revision]
        order = r.sort_order
        if r.sort_target != RangeRequest.KEY and order == SORT_NONE:
            order = SORT_ASCEND  # results come key-ordered; other targets need a sort
        if order in (SORT_ASCEND, SORT_DESCEND):
            # An unknown order (etcd 3.5 accepts it) sorts nothing but still fetches all.
            key = _SORT_KEYS.get(r.sort_target, _SORT_KEYS[RangeRequest.KEY])
            kvs = sorted(kvs, key=key, reverse=order == SORT_DESCEND)
        if r.limit > 0 and len(kvs) > r.limit:
            kvs = kvs[: r.limit]
            resp.more = True
        if r.keys_only:
            for kv in kvs:
                kv.ClearField("value")
        resp.kvs.extend(kvs)
        resp.count = rr.count
        resp.header.revision = rr.rev
        return resp

    # --- put and delete

    def put(self, txn: WriteTxn, p: rpc_pb2.PutRequest) -> rpc_pb2.PutResponse:
        """Write one key, honouring ``prev_kv``, ``ignore_value`` and ``ignore_lease``."""
        resp = rpc_pb2.PutResponse()
        value, lease = p.value, p.lease
        prev = None
        if p.ignore_value or p.ignore_lease or p.prev_kv:
            found = txn.range(p.key).kvs
            prev = found[0] if found else None
        if p.ignore_value or p.ignore_lease:
            if prev is None:
                raise KeyNotFoundError()
            if p.ignore_value:
                value = prev.value
            if p.ignore_lease:
                lease = prev.lease
        if lease and not p.ignore_lease and not self.lease_exists(lease):
            raise LeaseNotFoundError()
        if p.prev_kv and prev is not None:
            resp.prev_kv.CopyFrom(prev)
        txn.put(p.key, value, lease)
        resp.header.revision = txn.rev
        return resp

    def delete_range(
        self, txn: WriteTxn, d: rpc_pb2.DeleteRangeRequest
    ) -> rpc_pb2.DeleteRangeResponse:
        """Delete the keys in a range, returning them first if ``prev_kv``."""
        resp = rpc_pb2.DeleteRangeResponse()
        end = d.range_end or None
        if d.prev_kv:
            resp.prev_kvs.extend(txn.range(d.key, end).kvs)
        resp.deleted = txn.delete_range(d.key, end)
        resp.header.revision = txn.rev
        return resp

    # --- single requests in their own write

    def apply_put(self, p: rpc_pb2.PutRequest) -> rpc_pb2.PutResponse:
        """A put request as one write; an unknown lease is refused before anything else."""
        if p.lease and not self.lease_exists(p.lease):
            raise LeaseNotFoundError()
        txn = self.kv.write()
        try:
            resp = self.put(txn, p)
        finally:
            txn.end()
        return resp

    def apply_delete_range(self, d: rpc_pb2.DeleteRangeRequest) -> rpc_pb2.DeleteRangeResponse:
        """A delete-range request as one write."""
        txn = self.kv.write()
        try:
            resp = self.delete_range(txn, d)
        finally:
            txn.end()
        return resp

    # --- txn

    def txn(self, rt: rpc_pb2.TxnRequest) -> rpc_pb2.TxnResponse:
        """Evaluate compares, check the chosen ops, then run them in one write."""
        path: list[bool] = []
        self._compare_path(self.kv, rt, path)
        write = not is_txn_readonly(rt)
        if write:
            self._check_puts(rt, iter(path))
        self._check_ranges(rt, iter(path))
        txn = self.kv.write()
        try:
            resp = self._run(txn, rt, iter(path))
        finally:
            rev = txn.end()
        resp.header.revision = rev
        return resp

    def _compare_path(self, reader: Reader, rt: rpc_pb2.TxnRequest, path: list[bool]) -> None:
        ok = all(self._compare(reader, c) for c in rt.compare)
        path.append(ok)
        for op in rt.success if ok else rt.failure:
            if op.WhichOneof("request") == "request_txn":
                self._compare_path(reader, op.request_txn, path)

    def _compare(self, reader: Reader, c: rpc_pb2.Compare) -> bool:
        kvs = reader.range(c.key, c.range_end or None).kvs
        if not kvs:
            if c.target == Compare.VALUE:
                return False  # a missing key has no value to compare
            return _compare_kv(c, _EMPTY_KV)
        return all(_compare_kv(c, kv) for kv in kvs)

    def _check_puts(self, rt: rpc_pb2.TxnRequest, path: Iterator[bool]) -> None:
        """etcd's ``checkRequestPut`` on the chosen ops, in order.

        ``ignore_value``/``ignore_lease`` need the key before the txn. One case goes
        further than etcd: a key an earlier op of the txn deletes (a delete range
        ending in ``"\0"`` escapes ``check_intervals``) is missing too. etcd 3.5.1
        panics applying such a txn; we refuse it whole with "key not found".
        """
        ops = list(_chosen_ops(rt, path))
        for i, op in enumerate(ops):
            if op.WhichOneof("request") != "request_put":
                continue
            p = op.request_put
            if (p.ignore_value or p.ignore_lease) and (
                not self.kv.range(p.key).kvs or _deleted_by(p.key, ops[:i])
            ):
                raise KeyNotFoundError()
            if p.lease and not self.lease_exists(p.lease):
                raise LeaseNotFoundError()

    def _check_ranges(self, rt: rpc_pb2.TxnRequest, path) -> None:
        current, compacted = self.kv.current_rev, self.kv.compact_main_rev
        for op in rt.success if next(path) else rt.failure:
            kind = op.WhichOneof("request")
            if kind == "request_range":
                # As etcd's checkRequestRange: only 0 means "latest" here, so a negative
                # revision is below the first revision: compacted (-1 before any
                # compaction, so -2 and lower).
                rev = op.request_range.revision
                if rev == 0:
                    continue
                if rev > current:
                    raise FutureRevisionError()
                if rev < compacted:
                    raise CompactedError()
            elif kind == "request_txn":
                self._check_ranges(op.request_txn, path)

    def _run(self, txn: WriteTxn, rt: rpc_pb2.TxnRequest, path) -> rpc_pb2.TxnResponse:
        resp = rpc_pb2.TxnResponse()
        ok = next(path)
        resp.succeeded = ok
        for op in rt.success if ok else rt.failure:
            out = resp.responses.add()
            kind = op.WhichOneof("request")
            if kind == "request_range":
                out.response_range.CopyFrom(self.range(txn, op.request_range))
            elif kind == "request_put":
                out.response_put.CopyFrom(self.put(txn, op.request_put))
            elif kind == "request_delete_range":
                out.response_delete_range.CopyFrom(self.delete_range(txn, op.request_delete_range))
            elif kind == "request_txn":
                out.response_txn.CopyFrom(self._run(txn, op.request_txn, path))
                out.response_txn.header.SetInParent()  # etcd sends an empty header here
        return resp

    # --- compaction

    def compaction(self, c: rpc_pb2.CompactionRequest) -> rpc_pb2.CompactionResponse:
        """Compact the store at ``c.revision`` (physical deletion happens in steps later)."""
        self.kv.compact(c.revision)
        resp = rpc_pb2.CompactionResponse()
        resp.header.revision = self.kv.current_rev
        return resp


def _compare_kv(c: rpc_pb2.Compare, kv: kv_pb2.KeyValue) -> bool:
    """etcd's ``compareKV``: an unknown target compares as equal, an unknown result is true."""
    target = _COMPARE_TARGETS.get(c.target)
    if target is None:
        have: object = 0
        want: object = 0
    else:
        have = target(kv)
        want = getattr(c, _COMPARE_VALUES[c.target])
    if c.result == Compare.EQUAL:
        return have == want
    if c.result == Compare.NOT_EQUAL:
        return have != want
    if c.result == Compare.GREATER:
        return have > want  # type: ignore[operator]
    if c.result == Compare.LESS:
        return have < want  # type: ignore[operator]
    return True


def is_txn_readonly(rt: rpc_pb2.TxnRequest) -> bool:
    """True when no op in either branch (nested included) writes."""
    for op in (*rt.success, *rt.failure):
        kind = op.WhichOneof("request")
        if kind in ("request_put", "request_delete_range"):
            return False
        if kind == "request_txn" and not is_txn_readonly(op.request_txn):
            return False
    return True


def _chosen_ops(rt: rpc_pb2.TxnRequest, path: Iterator[bool]) -> Iterator[rpc_pb2.RequestOp]:
    """The non-txn ops a txn runs, in order, following ``path`` into nested txns."""
    for op in rt.success if next(path) else rt.failure:
        if op.WhichOneof("request") == "request_txn":
            yield from _chosen_ops(op.request_txn, path)
        else:
            yield op


def _deleted_by(key: bytes, ops: list[rpc_pb2.RequestOp]) -> bool:
    """Whether a delete range among ``ops`` covers ``key``."""
    for op in ops:
        if op.WhichOneof("request") == "request_delete_range":
            d = op.request_delete_range
            if in_range(key, d.key, d.range_end):
                return True
    return False


def in_range(key: bytes, start: bytes, end: bytes) -> bool:
    """Whether ``key`` is in the wire range ``(start, end)`` (empty end: one key; "\\0": all >=)."""
    if not end:
        return key == start
    if end == b"\x00":
        return key >= start
    return start <= key < end
