"""Tests for etcd_twisted.mvcc.encoded_range: long ranges read in pages answer exactly
what the applier answers, as of the revision they started at."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted._pb import rpc_pb2
from etcd_twisted.apply.kv import KVApplier
from etcd_twisted.mvcc.encoded_range import SMALL_RANGE_KEYS, EncodedRange, is_plain
from etcd_twisted.mvcc.errors import CompactedError
from etcd_twisted.mvcc.kvstore import KVStore
from tests.support.memory_backend import MemoryBackend

KEYS = 1500


def filled_store() -> KVStore:
    """1500 keys, a third of them rewritten and a few deleted afterwards."""
    store = KVStore(MemoryBackend())
    w = store.write()
    for i in range(KEYS):
        w.put(b"k%05d" % i, b"v%d" % i)
    w.end()
    w = store.write()
    for i in range(0, KEYS, 3):
        w.put(b"k%05d" % i, b"again")
    w.end()
    w = store.write()
    w.delete_range(b"k00100", b"k00110")
    w.end()
    return store


def run(store: KVStore, r: rpc_pb2.RangeRequest) -> bytes:
    paged = EncodedRange.start(store, r)
    assert paged is not None
    for _ in paged.pages():
        pass
    return paged.response().SerializeToString()


class EncodedRangeTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.store = filled_store()
        self.applier = KVApplier(self.store)

    @settings(max_examples=12, deadline=None)
    @given(
        start=st.integers(0, 400),
        limit=st.sampled_from([0, 1, 700, 1389, 1490, 5000]),
        revision=st.sampled_from([0, 2, 3]),
    )
    def test_same_bytes_as_applier(self, start: int, limit: int, revision: int) -> None:
        """Any plain long range serializes to the applier's answer, byte for byte."""
        r = rpc_pb2.RangeRequest(key=b"k%05d" % start, range_end=b"\0", limit=limit,
                                 revision=revision)  # fmt: skip
        self.assertEqual(run(self.store, r), self.applier.range(self.store, r).SerializeToString())

    def test_small_or_special_ranges_left_to_applier(self) -> None:
        """Single keys, short spans, sorts, filters and value-less modes are not paged."""
        self.assertIsNone(EncodedRange.start(self.store, rpc_pb2.RangeRequest(key=b"k00001")))
        short = rpc_pb2.RangeRequest(key=b"k", range_end=b"k%05d" % (SMALL_RANGE_KEYS - 1))
        self.assertIsNone(EncodedRange.start(self.store, short))
        for special in ({"keys_only": True}, {"count_only": True}, {"min_mod_revision": 2},
                        {"sort_order": rpc_pb2.RangeRequest.DESCEND},
                        {"sort_target": rpc_pb2.RangeRequest.MOD}):  # fmt: skip
            self.assertFalse(is_plain(rpc_pb2.RangeRequest(key=b"k", range_end=b"\0", **special)))

    def test_writes_between_pages_not_seen(self) -> None:
        """Writes applied while the range is being read do not change its answer."""
        r = rpc_pb2.RangeRequest(key=b"k", range_end=b"\0")
        expected = self.applier.range(self.store, r).SerializeToString()
        paged = EncodedRange.start(self.store, r)
        assert paged is not None
        for i, _ in enumerate(paged.pages()):
            w = self.store.write()
            w.put(b"k%05d" % (KEYS - 1 - i), b"later")
            w.put(b"k%05d" % (i * 7 + 1) + b"new", b"new key")
            w.end()
        self.assertEqual(paged.response().SerializeToString(), expected)

    def test_compaction_between_pages_fails_the_range(self) -> None:
        """A compaction past the range's revision before it is done fails it as compacted."""
        paged = EncodedRange.start(self.store, rpc_pb2.RangeRequest(key=b"k", range_end=b"\0"))
        assert paged is not None
        pages = paged.pages()
        next(pages)
        w = self.store.write()
        w.put(b"x", b"y")
        w.end()
        self.store.compact(self.store.current_rev)
        self.assertRaises(CompactedError, next, pages)

    def test_header_and_count_fields_kept(self) -> None:
        """The encoded response keeps a real header the gRPC layer can fill."""
        paged = EncodedRange.start(self.store, rpc_pb2.RangeRequest(key=b"k", range_end=b"\0"))
        assert paged is not None
        list(paged.pages())
        response = paged.response()
        response.header.member_id = 9
        decoded = rpc_pb2.RangeResponse.FromString(response.SerializeToString())
        self.assertEqual((decoded.header.member_id, decoded.count), (9, KEYS - 10))
        self.assertEqual(response.to_message(), decoded)
        self.assertEqual(
            (response.count, response.more, len(response.kvs)), (KEYS - 10, False, KEYS - 10)
        )
