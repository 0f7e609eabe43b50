"""Tests for etcd_twisted.apply.kv: the KV applier's range, put, delete, txn and compaction."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted._pb import rpc_pb2
from etcd_twisted.apply.errors import KeyNotFoundError
from etcd_twisted.apply.kv import KVApplier, in_range, is_txn_readonly
from etcd_twisted.lease.errors import LeaseNotFoundError
from etcd_twisted.mvcc.errors import CompactedError, FutureRevisionError
from etcd_twisted.mvcc.kvstore import KVStore
from tests.support.memory_backend import MemoryBackend

R = rpc_pb2.RangeRequest
C = rpc_pb2.Compare
LEASE = 7


def applier() -> KVApplier:
    """An applier on an empty in-memory store that knows lease 7 only."""
    return KVApplier(KVStore(MemoryBackend()), lambda lease_id: lease_id == LEASE)


def put(a: KVApplier, key: bytes, value: bytes = b"v", **kw: object) -> rpc_pb2.PutResponse:
    return a.apply_put(rpc_pb2.PutRequest(key=key, value=value, **kw))  # type: ignore[arg-type]


def rng(a: KVApplier, key: bytes, end: bytes = b"", **kw: object) -> rpc_pb2.RangeResponse:
    return a.range(a.kv, R(key=key, range_end=end, **kw))  # type: ignore[arg-type]


def keys(resp: rpc_pb2.RangeResponse) -> list[bytes]:
    return [kv.key for kv in resp.kvs]


def op_put(key: bytes, value: bytes = b"v", **kw: object) -> rpc_pb2.RequestOp:
    return rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=key, value=value, **kw))  # type: ignore[arg-type]


def op_range(key: bytes, end: bytes = b"", **kw: object) -> rpc_pb2.RequestOp:
    return rpc_pb2.RequestOp(request_range=R(key=key, range_end=end, **kw))  # type: ignore[arg-type]


def op_del(key: bytes, end: bytes = b"", **kw: object) -> rpc_pb2.RequestOp:
    return rpc_pb2.RequestOp(
        request_delete_range=rpc_pb2.DeleteRangeRequest(key=key, range_end=end, **kw)  # type: ignore[arg-type]
    )


def op_txn(t: rpc_pb2.TxnRequest) -> rpc_pb2.RequestOp:
    return rpc_pb2.RequestOp(request_txn=t)


def cmp(key: bytes, target: int, result: int, **value: object) -> rpc_pb2.Compare:
    return C(key=key, target=target, result=result, **value)  # type: ignore[arg-type]


def seeded() -> KVApplier:
    """a=1 (rev 2), b=22 (rev 3, lease 7), c=3 (rev 4), a=11 (rev 5): store at 5."""
    a = applier()
    put(a, b"a", b"1")
    put(a, b"b", b"22", lease=LEASE)
    put(a, b"c", b"3")
    put(a, b"a", b"11")
    return a


class RangeTests(SynchronousTestCase):
    def test_limit_more_and_count(self) -> None:
        """``limit`` cuts the result and sets ``more``; ``count`` is the whole range."""
        resp = rng(seeded(), b"a", b"\x00", limit=2)
        self.assertEqual((keys(resp), resp.more, resp.count), ([b"a", b"b"], True, 3))
        resp = rng(seeded(), b"a", b"\x00", limit=3)
        self.assertEqual((len(resp.kvs), resp.more), (3, False))

    def test_sort_targets_and_orders(self) -> None:
        """Each target sorts as etcd does; a non-key target with no order sorts ascending."""
        a = seeded()
        self.assertEqual(keys(rng(a, b"a", b"\x00", sort_order=R.DESCEND)), [b"c", b"b", b"a"])
        self.assertEqual(keys(rng(a, b"a", b"\x00", sort_target=R.MOD)), [b"b", b"c", b"a"])
        self.assertEqual(
            keys(rng(a, b"a", b"\x00", sort_target=R.VERSION, sort_order=R.DESCEND)),
            [b"a", b"b", b"c"],
        )
        self.assertEqual(keys(rng(a, b"a", b"\x00", sort_target=R.VALUE)), [b"a", b"b", b"c"])
        self.assertEqual(
            keys(rng(a, b"a", b"\x00", sort_target=R.CREATE, sort_order=R.DESCEND)),
            [b"c", b"b", b"a"],
        )

    def test_sort_without_order_keeps_limit(self) -> None:
        """Order NONE keeps the limit: the first keys by key are sorted, then cut (etcd)."""
        resp = rng(seeded(), b"a", b"\x00", sort_target=R.MOD, limit=2)
        self.assertEqual(keys(resp), [b"b", b"c"])  # from [a, b, c]: mods 5, 3, 4
        resp = rng(seeded(), b"a", b"\x00", sort_target=R.MOD, sort_order=R.ASCEND, limit=2)
        self.assertEqual(keys(resp), [b"b", b"c"])

    def test_unknown_sort_order_sorts_nothing(self) -> None:
        """An unknown sort order (accepted by etcd 3.5.1) leaves key order, limit after all."""
        resp = rng(seeded(), b"a", b"\x00", sort_target=R.MOD, sort_order=5, limit=2)
        self.assertEqual((keys(resp), resp.more), ([b"a", b"b"], True))

    def test_filters(self) -> None:
        """min/max mod/create revision filters drop keys after the count is taken."""
        a = seeded()
        resp = rng(a, b"a", b"\x00", min_mod_revision=4)
        self.assertEqual((keys(resp), resp.count), ([b"a", b"c"], 3))
        self.assertEqual(keys(rng(a, b"a", b"\x00", max_create_revision=3)), [b"a", b"b"])
        self.assertEqual(keys(rng(a, b"a", b"\x00", max_mod_revision=3)), [b"b"])
        self.assertEqual(keys(rng(a, b"a", b"\x00", min_create_revision=4)), [b"c"])

    def test_keys_only_and_count_only(self) -> None:
        """keys_only clears values; count_only returns no kvs but the count."""
        a = seeded()
        resp = rng(a, b"a", b"\x00", keys_only=True)
        self.assertEqual([kv.value for kv in resp.kvs], [b"", b"", b""])
        self.assertEqual(resp.kvs[0].mod_revision, 5)
        resp = rng(a, b"a", b"\x00", count_only=True)
        self.assertEqual((len(resp.kvs), resp.count, resp.header.revision), (0, 3, 5))

    def test_revisions(self) -> None:
        """Past revisions read history; negative means latest; future and compacted fail."""
        a = seeded()
        self.assertEqual(rng(a, b"a", revision=2).kvs[0].value, b"1")
        self.assertEqual(rng(a, b"a", revision=-3).kvs[0].value, b"11")
        self.assertRaises(FutureRevisionError, rng, a, b"a", revision=6)
        a.compaction(rpc_pb2.CompactionRequest(revision=4))
        self.assertRaises(CompactedError, rng, a, b"a", revision=3)
        self.assertEqual(rng(a, b"a", revision=4).kvs[0].value, b"1")

    def test_range_ends(self) -> None:
        """No end is one key, "\\0" is everything from key, an end below key is empty."""
        a = seeded()
        self.assertEqual(keys(rng(a, b"b")), [b"b"])
        self.assertEqual(keys(rng(a, b"b", b"\x00")), [b"b", b"c"])
        self.assertEqual(keys(rng(a, b"\x00", b"\x00")), [b"a", b"b", b"c"])
        self.assertEqual(keys(rng(a, b"c", b"a")), [])


class PutDeleteTests(SynchronousTestCase):
    def test_prev_kv(self) -> None:
        """prev_kv returns the old pair, nothing for a new key."""
        a = seeded()
        resp = put(a, b"a", b"x", prev_kv=True)
        self.assertEqual((resp.prev_kv.value, resp.header.revision), (b"11", 6))
        self.assertFalse(put(a, b"new", prev_kv=True).HasField("prev_kv"))

    def test_ignore_value_and_lease(self) -> None:
        """ignore_value/ignore_lease keep the stored value/lease; a missing key fails."""
        a = seeded()
        put(a, b"b", b"", ignore_value=True)
        kv = rng(a, b"b").kvs[0]
        self.assertEqual((kv.value, kv.lease, kv.version), (b"22", 0, 2))
        put(a, b"b", b"n", lease=LEASE)
        put(a, b"b", b"m", ignore_lease=True)
        kv = rng(a, b"b").kvs[0]
        self.assertEqual((kv.value, kv.lease), (b"m", LEASE))
        self.assertRaises(KeyNotFoundError, put, a, b"zz", b"", ignore_value=True)
        self.assertEqual(a.kv.current_rev, 8)

    def test_unknown_lease_before_missing_key(self) -> None:
        """Regression: a put checks its lease first, as etcd's Put does (not "key not found")."""
        a = seeded()
        self.assertRaises(LeaseNotFoundError, put, a, b"zz", b"", ignore_value=True, lease=0x1234)
        self.assertEqual(a.kv.current_rev, 5)

    def test_delete_range(self) -> None:
        """A delete returns its count and prev kvs; deleting nothing keeps the revision."""
        a = seeded()
        resp = a.apply_delete_range(
            rpc_pb2.DeleteRangeRequest(key=b"a", range_end=b"c", prev_kv=True)
        )
        self.assertEqual((resp.deleted, resp.header.revision), (2, 6))
        self.assertEqual([kv.key for kv in resp.prev_kvs], [b"a", b"b"])
        resp = a.apply_delete_range(rpc_pb2.DeleteRangeRequest(key=b"a"))
        self.assertEqual((resp.deleted, resp.header.revision), (0, 6))


class TxnTests(SynchronousTestCase):
    def test_compare_targets(self) -> None:
        """Compares on each target with each result; all compares must hold."""
        a = seeded()
        holds = [
            cmp(b"a", C.VERSION, C.EQUAL, version=2),
            cmp(b"a", C.CREATE, C.EQUAL, create_revision=2),
            cmp(b"a", C.MOD, C.GREATER, mod_revision=4),
            cmp(b"a", C.VALUE, C.EQUAL, value=b"11"),
            cmp(b"b", C.LEASE, C.EQUAL, lease=LEASE),
            cmp(b"c", C.VALUE, C.LESS, value=b"4"),
            cmp(b"c", C.VERSION, C.NOT_EQUAL, version=2),
        ]
        for c in holds:
            self.assertTrue(a.txn(rpc_pb2.TxnRequest(compare=[c])).succeeded, c)
        fails = rpc_pb2.TxnRequest(compare=[*holds, cmp(b"a", C.VERSION, C.LESS, version=2)])
        self.assertFalse(a.txn(fails).succeeded)

    def test_missing_key_compares_as_zero(self) -> None:
        """A missing key has version/create/mod/lease 0; a VALUE compare on it is false."""
        a = seeded()
        self.assertTrue(a.txn(rpc_pb2.TxnRequest(compare=[cmp(b"zz", C.MOD, C.EQUAL)])).succeeded)
        for result in (C.EQUAL, C.NOT_EQUAL, C.LESS, C.GREATER):
            t = rpc_pb2.TxnRequest(compare=[cmp(b"zz", C.VALUE, result, value=b"x")])
            self.assertFalse(a.txn(t).succeeded)

    def test_range_compare_needs_every_key(self) -> None:
        """A compare over a range holds only if it holds for every key in it."""
        a = seeded()
        t = rpc_pb2.TxnRequest(
            compare=[
                C(key=b"a", range_end=b"\x00", target=C.CREATE, result=C.GREATER, create_revision=1)
            ]
        )
        self.assertTrue(a.txn(t).succeeded)
        t.compare[0].create_revision = 2
        self.assertFalse(a.txn(t).succeeded)

    def test_unknown_compare_target_and_result(self) -> None:
        """Regression: an unknown target compares as equal, an unknown result holds (etcd)."""
        a = seeded()
        self.assertTrue(a.txn(rpc_pb2.TxnRequest(compare=[cmp(b"a", 9, C.EQUAL)])).succeeded)
        self.assertFalse(a.txn(rpc_pb2.TxnRequest(compare=[cmp(b"a", 9, C.GREATER)])).succeeded)
        self.assertTrue(
            a.txn(rpc_pb2.TxnRequest(compare=[cmp(b"a", C.VERSION, 9, version=100)])).succeeded
        )

    def test_later_ops_see_earlier_writes(self) -> None:
        """Ops share one revision; a range after a put sees it; version counts up once."""
        a = seeded()
        t = rpc_pb2.TxnRequest(
            success=[op_put(b"n", b"1"), op_range(b"n"), op_del(b"c"), op_range(b"a", b"\x00")]
        )
        resp = a.txn(t)
        self.assertEqual(resp.header.revision, 6)
        seen = resp.responses[1].response_range
        self.assertEqual(
            (seen.kvs[0].value, seen.kvs[0].mod_revision, seen.header.revision), (b"1", 6, 6)
        )
        self.assertEqual(keys(resp.responses[3].response_range), [b"a", b"b", b"n"])
        self.assertEqual(resp.responses[0].response_put.header.revision, 6)

    def test_nested_compares_before_writes(self) -> None:
        """Nested compares see the store before the txn, not the outer branch's writes."""
        a = seeded()
        inner = rpc_pb2.TxnRequest(
            compare=[cmp(b"a", C.VALUE, C.EQUAL, value=b"11")],
            success=[op_put(b"s", b"inner-success")],
            failure=[op_put(b"f", b"inner-failure")],
        )
        outer = rpc_pb2.TxnRequest(success=[op_put(b"a", b"changed"), op_txn(inner)])
        resp = a.txn(outer)
        self.assertTrue(resp.responses[1].response_txn.succeeded)
        self.assertEqual(keys(rng(a, b"s")), [b"s"])
        self.assertEqual(keys(rng(a, b"f")), [])

    def test_nested_path_follows_the_chosen_branch(self) -> None:
        """Only nested txns of the chosen branch are evaluated, each on its own path."""
        a = seeded()
        first = rpc_pb2.TxnRequest(
            compare=[cmp(b"zz", C.VERSION, C.GREATER)], failure=[op_put(b"x1")]
        )
        second = rpc_pb2.TxnRequest(
            compare=[cmp(b"a", C.VERSION, C.GREATER)], success=[op_put(b"x2")]
        )
        unused = rpc_pb2.TxnRequest(success=[op_put(b"never")])
        outer = rpc_pb2.TxnRequest(
            compare=[cmp(b"a", C.VERSION, C.EQUAL, version=2)],
            success=[op_txn(first), op_txn(second)],
            failure=[op_txn(unused)],
        )
        resp = a.txn(outer)
        self.assertEqual([r.response_txn.succeeded for r in resp.responses], [False, True])
        self.assertEqual(keys(rng(a, b"x", b"y")), [b"x1", b"x2"])
        self.assertEqual(keys(rng(a, b"never")), [])

    def test_nested_txn_response_header(self) -> None:
        """Nested txn responses have no header revision; their ops' responses do."""
        a = seeded()
        resp = a.txn(
            rpc_pb2.TxnRequest(success=[op_txn(rpc_pb2.TxnRequest(success=[op_put(b"q")]))])
        )
        nested = resp.responses[0].response_txn
        self.assertEqual(
            (nested.header.revision, nested.responses[0].response_put.header.revision), (0, 6)
        )

    def test_lease_not_found_fails_whole_txn(self) -> None:
        """An unknown lease anywhere on the chosen path fails the txn with nothing written."""
        a = seeded()
        inner = rpc_pb2.TxnRequest(success=[op_put(b"y", lease=0x1234)])
        t = rpc_pb2.TxnRequest(success=[op_put(b"x"), op_del(b"a"), op_txn(inner)])
        self.assertRaises(LeaseNotFoundError, a.txn, t)
        self.assertEqual(a.kv.current_rev, 5)
        self.assertEqual(keys(rng(a, b"a", b"\x00")), [b"a", b"b", b"c"])

    def test_unknown_lease_on_other_branch_is_fine(self) -> None:
        """Ops of the branch not taken are not checked."""
        a = seeded()
        t = rpc_pb2.TxnRequest(success=[op_put(b"x")], failure=[op_put(b"y", lease=0x1234)])
        self.assertTrue(a.txn(t).succeeded)

    def test_key_not_found_checked_before_lease(self) -> None:
        """Regression: in a txn, ignore_value's "key not found" comes before the lease check."""
        a = seeded()
        t = rpc_pb2.TxnRequest(success=[op_put(b"zz", b"", ignore_value=True, lease=0x1234)])
        self.assertRaises(KeyNotFoundError, a.txn, t)

    def test_ignore_value_after_delete_in_txn(self) -> None:
        """Regression: an ignore_value put of a key an earlier op deleted fails whole.

        etcd 3.5.1 panics here (its check looks at the store before the txn, and a
        delete ending in "\\0" passes check_intervals); ours refuses and writes nothing.
        """
        a = seeded()
        t = rpc_pb2.TxnRequest(
            success=[op_del(b"a", b"\x00"), op_put(b"b", b"", ignore_value=True)]
        )
        self.assertRaises(KeyNotFoundError, a.txn, t)
        self.assertEqual(a.kv.current_rev, 5)
        self.assertEqual(keys(rng(a, b"a", b"\x00")), [b"a", b"b", b"c"])
        # Deleting it after the put is fine.
        t = rpc_pb2.TxnRequest(
            success=[op_put(b"b", b"", ignore_value=True), op_del(b"a", b"\x00")]
        )
        self.assertEqual(a.txn(t).header.revision, 6)

    def test_range_revision_checks(self) -> None:
        """Regression: txn ranges check revisions like etcd: only 0 is "latest"."""
        a = seeded()
        self.assertRaises(
            FutureRevisionError, a.txn, rpc_pb2.TxnRequest(success=[op_range(b"a", revision=6)])
        )
        # Before any compaction the first revision is -1: -2 and below are "compacted".
        self.assertRaises(
            CompactedError, a.txn, rpc_pb2.TxnRequest(success=[op_range(b"a", revision=-2)])
        )
        resp = a.txn(rpc_pb2.TxnRequest(success=[op_range(b"a", revision=-1)]))
        self.assertEqual(resp.responses[0].response_range.kvs[0].value, b"11")
        a.compaction(rpc_pb2.CompactionRequest(revision=3))
        self.assertRaises(
            CompactedError, a.txn, rpc_pb2.TxnRequest(success=[op_range(b"a", revision=-1)])
        )
        self.assertRaises(
            CompactedError, a.txn, rpc_pb2.TxnRequest(success=[op_range(b"a", revision=2)])
        )
        resp = a.txn(rpc_pb2.TxnRequest(success=[op_range(b"a", revision=3)]))
        self.assertEqual(resp.responses[0].response_range.kvs[0].value, b"1")

    def test_read_only_txn_keeps_revision(self) -> None:
        """A txn that changes nothing (or only deletes missing keys) keeps the revision."""
        a = seeded()
        self.assertEqual(a.txn(rpc_pb2.TxnRequest(success=[op_range(b"a")])).header.revision, 5)
        self.assertEqual(a.txn(rpc_pb2.TxnRequest(success=[op_del(b"zz")])).header.revision, 5)

    def test_is_txn_readonly(self) -> None:
        """A txn is read-only when neither branch writes, nested ones included."""
        self.assertTrue(is_txn_readonly(rpc_pb2.TxnRequest(success=[op_range(b"a")])))
        nested = rpc_pb2.TxnRequest(failure=[op_del(b"a")])
        self.assertFalse(is_txn_readonly(rpc_pb2.TxnRequest(success=[op_txn(nested)])))


class CompactionTests(SynchronousTestCase):
    def test_compaction(self) -> None:
        """Compaction answers the current revision; repeats and the future are errors."""
        a = seeded()
        resp = a.compaction(rpc_pb2.CompactionRequest(revision=3))
        self.assertEqual(resp.header.revision, 5)
        self.assertRaises(CompactedError, a.compaction, rpc_pb2.CompactionRequest(revision=3))
        self.assertRaises(CompactedError, a.compaction, rpc_pb2.CompactionRequest(revision=-1))
        self.assertRaises(FutureRevisionError, a.compaction, rpc_pb2.CompactionRequest(revision=6))

    def test_compaction_at_zero(self) -> None:
        """A first compaction at 0 is accepted (etcd starts at -1); a second one is not."""
        a = seeded()
        a.compaction(rpc_pb2.CompactionRequest(revision=0))
        self.assertRaises(CompactedError, a.compaction, rpc_pb2.CompactionRequest(revision=0))


class InRangeTests(SynchronousTestCase):
    def test_in_range(self) -> None:
        """Wire ranges: one key, everything from key, or a half-open interval."""
        self.assertTrue(in_range(b"a", b"a", b""))
        self.assertFalse(in_range(b"ab", b"a", b""))
        self.assertTrue(in_range(b"zz", b"a", b"\x00"))
        self.assertTrue(in_range(b"a", b"a", b"b"))
        self.assertFalse(in_range(b"b", b"a", b"b"))
