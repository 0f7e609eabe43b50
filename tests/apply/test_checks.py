"""Tests for etcd_twisted.apply.checks: the checks a KV request passes before proposal."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted._pb import rpc_pb2
from etcd_twisted.apply import checks
from etcd_twisted.apply.errors import (
    DuplicateKeyError,
    EmptyKeyError,
    InvalidSortOptionError,
    KeyNotFoundError,
    LeaseProvidedError,
    TooManyOpsError,
    ValueProvidedError,
)

R = rpc_pb2.RangeRequest


def put(key: bytes) -> rpc_pb2.RequestOp:
    return rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=key, value=b"v"))


def get(key: bytes) -> rpc_pb2.RequestOp:
    return rpc_pb2.RequestOp(request_range=R(key=key))


def delete(key: bytes, end: bytes = b"") -> rpc_pb2.RequestOp:
    return rpc_pb2.RequestOp(
        request_delete_range=rpc_pb2.DeleteRangeRequest(key=key, range_end=end)
    )


def txn(
    success: list[rpc_pb2.RequestOp] | None = None,
    failure: list[rpc_pb2.RequestOp] | None = None,
) -> rpc_pb2.RequestOp:
    return rpc_pb2.RequestOp(request_txn=rpc_pb2.TxnRequest(success=success, failure=failure))


def check(success: list[rpc_pb2.RequestOp], failure: list[rpc_pb2.RequestOp] | None = None) -> None:
    checks.check_txn(rpc_pb2.TxnRequest(success=success, failure=failure), 128)


class SimpleRequestTests(SynchronousTestCase):
    def test_empty_keys(self) -> None:
        """Range, put and delete need a key."""
        self.assertRaises(EmptyKeyError, checks.check_range, R())
        self.assertRaises(EmptyKeyError, checks.check_put, rpc_pb2.PutRequest(value=b"v"))
        self.assertRaises(EmptyKeyError, checks.check_delete, rpc_pb2.DeleteRangeRequest())

    def test_put_flags(self) -> None:
        """ignore_value with a value and ignore_lease with a lease are refused."""
        self.assertRaises(
            ValueProvidedError,
            checks.check_put,
            rpc_pb2.PutRequest(key=b"k", value=b"v", ignore_value=True),
        )
        self.assertRaises(
            LeaseProvidedError,
            checks.check_put,
            rpc_pb2.PutRequest(key=b"k", lease=5, ignore_lease=True),
        )
        checks.check_put(rpc_pb2.PutRequest(key=b"k", ignore_value=True, ignore_lease=True))

    def test_sort_options(self) -> None:
        """Regression: an unknown sort order passes (as in etcd 3.5.1); an unknown target not."""
        checks.check_range(R(key=b"k", sort_order=7))
        self.assertRaises(InvalidSortOptionError, checks.check_range, R(key=b"k", sort_target=9))


class TxnOpTests(SynchronousTestCase):
    def test_too_many_ops(self) -> None:
        """More compares or ops in a branch than max_txn_ops is refused; exactly max is fine."""
        check([get(b"a")] * 128)
        self.assertRaises(TooManyOpsError, check, [get(b"a")] * 129)
        self.assertRaises(TooManyOpsError, check, [], [get(b"a")] * 129)
        compares = [rpc_pb2.Compare(key=b"a")] * 129
        self.assertRaises(
            TooManyOpsError, checks.check_txn, rpc_pb2.TxnRequest(compare=compares), 128
        )

    def test_nested_ops_share_the_budget(self) -> None:
        """A nested txn may use only what its parent's largest list left of max_txn_ops."""
        # 100 ops in the parent's branch leave 28 for the nested txn.
        check([get(b"a")] * 99 + [txn([get(b"b")] * 28)])
        self.assertRaises(TooManyOpsError, check, [get(b"a")] * 99 + [txn([get(b"b")] * 29)])

    def test_empty_op_and_keys(self) -> None:
        """An empty op is "key not found"; empty keys in ops and compares are refused."""
        self.assertRaises(KeyNotFoundError, check, [rpc_pb2.RequestOp()])
        self.assertRaises(EmptyKeyError, check, [get(b"")])
        self.assertRaises(EmptyKeyError, check, [txn([put(b"")])])
        self.assertRaises(
            EmptyKeyError,
            checks.check_txn,
            rpc_pb2.TxnRequest(compare=[rpc_pb2.Compare(key=b"")]),
            128,
        )


class IntervalTests(SynchronousTestCase):
    def test_put_twice(self) -> None:
        """Two puts of one key in a branch are duplicates; in different branches they are not."""
        self.assertRaises(DuplicateKeyError, check, [put(b"a"), put(b"a")])
        check([put(b"a")], [put(b"a")])
        check([put(b"a"), get(b"a"), get(b"a")])

    def test_put_and_delete(self) -> None:
        """A put inside a deleted point or interval of the same branch is a duplicate."""
        self.assertRaises(DuplicateKeyError, check, [delete(b"a"), put(b"a")])
        self.assertRaises(DuplicateKeyError, check, [put(b"b"), delete(b"a", b"c")])
        check([put(b"c"), delete(b"a", b"c")])
        check([delete(b"a"), delete(b"a")])

    def test_gte_delete_is_not_an_interval(self) -> None:
        """A delete ending in "\\0" (all keys from key) is no interval to etcd's check."""
        check([delete(b"a", b"\x00"), put(b"b")])

    def test_nested_puts(self) -> None:
        """Nested puts clash with the parent's puts and deletes, and with sibling txns."""
        self.assertRaises(DuplicateKeyError, check, [put(b"a"), txn([put(b"a")])])
        self.assertRaises(DuplicateKeyError, check, [delete(b"a"), txn([put(b"a")])])
        self.assertRaises(DuplicateKeyError, check, [txn([put(b"a")]), txn([put(b"a")])])
        self.assertRaises(DuplicateKeyError, check, [delete(b"a", b"b"), txn([], [put(b"a")])])

    def test_nested_branches_exclusive(self) -> None:
        """A key put in both branches of one nested txn is fine; then/else are exclusive."""
        check([txn([put(b"a")], [put(b"a")])])
        self.assertRaises(DuplicateKeyError, check, [txn([put(b"a")]), txn([], [put(b"a")])])

    def test_nested_deletes_against_later_siblings(self) -> None:
        """A nested delete clashes with puts in later siblings and the parent's own puts."""
        self.assertRaises(DuplicateKeyError, check, [txn([delete(b"a")]), txn([put(b"a")])])
        self.assertRaises(DuplicateKeyError, check, [txn([delete(b"a", b"c")]), put(b"b")])
        # etcd checks a child's puts only against deletes seen so far (earlier siblings).
        check([txn([put(b"a")]), txn([delete(b"a")])])

    def test_deep_nesting(self) -> None:
        """Puts bubble up through several levels of nested txns."""
        deep = txn([txn([txn([put(b"k")])])])
        self.assertRaises(DuplicateKeyError, check, [deep, put(b"k")])
        check([deep, put(b"j")])
