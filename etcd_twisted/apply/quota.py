"""Quota costs: how many backend bytes a request may add (etcd's ``quota.go``)."""

from __future__ import annotations

from etcd_twisted._pb import rpc_pb2

#: Cost estimates of a key's and a lease's metadata (etcd's ``kvOverhead``, ``leaseOverhead``).
KV_OVERHEAD = 256
LEASE_OVERHEAD = 64


def put_cost(p: rpc_pb2.PutRequest) -> int:
    """A put's cost: its key and value plus the key's metadata."""
    return KV_OVERHEAD + len(p.key) + len(p.value)


def txn_cost(t: rpc_pb2.TxnRequest) -> int:
    """A txn's cost: its costlier branch's puts (etcd's ``costTxn``)."""

    def branch(ops: object) -> int:
        return sum(
            put_cost(op.request_put) for op in ops if op.WhichOneof("request") == "request_put"
        )

    return max(branch(t.success), branch(t.failure))
