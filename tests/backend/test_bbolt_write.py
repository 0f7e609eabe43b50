"""Tests for etcd_twisted.backend.bbolt_write: bbolt files our reader and real bbolt read back."""

from __future__ import annotations

import os
import struct

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted.backend.bbolt_format import (
    BRANCH_ELEMENT,
    BRANCH_PAGE,
    BUCKET_HEADER,
    CHECKSUM,
    FREELIST_PAGE,
    LEAF_ELEMENT,
    LEAF_PAGE,
    MAGIC,
    META,
    META_PAGE,
    PAGE_HEADER,
    fnv64a,
)
from etcd_twisted.backend.bbolt_read import BboltReader
from etcd_twisted.backend.bbolt_write import BboltFile

Data = dict[bytes, dict[bytes, bytes]]
PAGE = 4096


def bbolt_file(data: Data) -> BboltFile:
    return BboltFile(lambda: [(name, sorted(data[name].items())) for name in sorted(data)])


def file_bytes(data: Data) -> bytes:
    return b"".join(bbolt_file(data).chunks())


def page_at(raw: bytes, pgid: int) -> tuple[int, int, int, int]:
    return PAGE_HEADER.unpack_from(raw, pgid * PAGE)


def root_pairs(raw: bytes) -> dict[bytes, bytes]:
    """The root bucket's pairs (bucket name -> bucket value), read by hand from one leaf."""
    root = META.unpack_from(raw, PAGE_HEADER.size)[4]
    _, flags, count, _ = page_at(raw, root)
    assert flags == LEAF_PAGE, flags
    out = {}
    for i in range(count):
        at = root * PAGE + PAGE_HEADER.size + i * LEAF_ELEMENT.size
        _, pos, ksize, vsize = LEAF_ELEMENT.unpack_from(raw, at)
        out[raw[at + pos : at + pos + ksize]] = raw[at + pos + ksize : at + pos + ksize + vsize]
    return out


def read_back(path: str) -> Data:
    with BboltReader(path) as r:
        return {name: dict(pairs) for name, pairs in r.buckets()}


names = st.binary(min_size=1, max_size=12)
keys = st.binary(min_size=1, max_size=40)
values = st.one_of(
    st.binary(max_size=64),
    st.builds(lambda n, b: bytes([b]) * n, st.integers(3000, 9000), st.integers(0, 255)),
)
#: Few random pairs, or many regular ones (enough for branch pages).
contents = st.one_of(
    st.dictionaries(keys, values, max_size=40),
    st.builds(
        lambda n, size: {b"%08d" % i: bytes([i % 256]) * size for i in range(n)},
        st.integers(0, 3000),
        st.integers(0, 300),
    ),
)
datasets = st.dictionaries(names, contents, max_size=4)


class BboltWriteTests(SynchronousTestCase):
    def write(self, data: Data) -> str:
        path = self.mktemp()
        with open(path, "wb") as f:
            for chunk in bbolt_file(data).chunks():
                f.write(chunk)
        return path

    @settings(max_examples=40, deadline=None)
    @given(datasets)
    def test_round_trip(self, data: Data) -> None:
        """Random buckets, keys and values (some spanning pages) read back unchanged."""
        self.assertEqual(read_back(self.write(data)), data)

    def test_size_is_the_bytes_written(self) -> None:
        """``size`` (laid out without writing) is the length of ``chunks()``, whole pages."""
        data = {b"key": {b"%08d" % i: b"v" * (i % 300) for i in range(5000)}}
        f = bbolt_file(data)
        self.assertEqual(f.size, len(b"".join(f.chunks())))
        self.assertEqual(f.size % PAGE, 0)

    def test_meta_pages(self) -> None:
        """Pages 0 and 1 are meta pages (txid 1 and 0) with valid FNV-64a checksums, naming
        the freelist page 2 and the page count; page 2 is an empty freelist."""
        raw = file_bytes({b"a": {b"k": b"v"}})
        for pgid, txid in ((0, 1), (1, 0)):
            self.assertEqual(page_at(raw, pgid)[:2], (pgid, META_PAGE))
            start = pgid * PAGE + PAGE_HEADER.size
            fields = raw[start : start + META.size]
            magic, version, psize, _, _, _, freelist, high_water, got_txid = META.unpack(fields)
            self.assertEqual((magic, version, psize), (MAGIC, 2, PAGE))
            self.assertEqual((freelist, high_water, got_txid), (2, len(raw) // PAGE, txid))
            (checksum,) = CHECKSUM.unpack_from(raw, start + META.size)
            self.assertEqual(checksum, fnv64a(fields))
        self.assertEqual(page_at(raw, 2), (2, FREELIST_PAGE, 0, 0))

    def test_small_buckets_are_inline(self) -> None:
        """A bucket within a quarter page is stored inline (root 0), a bigger one on pages."""
        raw = file_bytes({b"small": {b"k": b"v" * 900}, b"large": {b"k": b"v" * 1100}})
        buckets = root_pairs(raw)
        self.assertEqual(BUCKET_HEADER.unpack_from(buckets[b"small"])[0], 0)
        self.assertEqual(
            PAGE_HEADER.unpack_from(buckets[b"small"], BUCKET_HEADER.size)[1], LEAF_PAGE
        )
        self.assertNotEqual(BUCKET_HEADER.unpack_from(buckets[b"large"])[0], 0)

    def test_empty_bucket(self) -> None:
        """An empty bucket is an inline leaf with no elements."""
        raw = file_bytes({b"empty": {}})
        value = root_pairs(raw)[b"empty"]
        self.assertEqual(value, BUCKET_HEADER.pack(0, 0) + PAGE_HEADER.pack(0, LEAF_PAGE, 0, 0))

    def test_large_value_overflows(self) -> None:
        """A value larger than a page sits on a page with overflow pages after it."""
        raw = file_bytes({b"b": {b"big": b"x" * 10_000, b"small": b"y" * 2000}})
        root = BUCKET_HEADER.unpack_from(root_pairs(raw)[b"b"])[0]
        self.assertEqual(page_at(raw, root)[1], BRANCH_PAGE)
        first_leaf = struct.unpack_from("<Q", raw, root * PAGE + PAGE_HEADER.size + 8)[0]
        self.assertEqual(page_at(raw, first_leaf), (first_leaf, LEAF_PAGE, 1, 2))

    def test_deep_tree(self) -> None:
        """Many keys make a tree of branch pages over branch pages over leaves."""
        data = {b"key": {struct.pack(">QBQ", i, 95, 0): os.urandom(60) for i in range(30_000)}}
        path = self.write(data)
        with open(path, "rb") as f:
            raw = f.read()
        root = BUCKET_HEADER.unpack_from(root_pairs(raw)[b"key"])[0]
        self.assertEqual(page_at(raw, root)[1], BRANCH_PAGE)
        child = BRANCH_ELEMENT.unpack_from(raw, root * PAGE + PAGE_HEADER.size)[2]
        self.assertEqual(page_at(raw, child)[1], BRANCH_PAGE)
        self.assertEqual(read_back(path), data)

    def test_every_page_is_used(self) -> None:
        """Pages are laid out with no gaps: the page count is what the tree needs."""
        data = {b"key": {b"%06d" % i: b"v" * 100 for i in range(2000)}}
        raw = file_bytes(data)
        used = {0, 1, 2}
        with BboltReader(self.write(data)) as r:
            pending = [r._root]
        while pending:
            pgid = pending.pop()
            _, flags, count, overflow = page_at(raw, pgid)
            used.update(range(pgid, pgid + overflow + 1))
            if flags == BRANCH_PAGE:
                for i in range(count):
                    at = pgid * PAGE + PAGE_HEADER.size + i * BRANCH_ELEMENT.size
                    pending.append(BRANCH_ELEMENT.unpack_from(raw, at)[2])
            elif pgid == META.unpack_from(raw, PAGE_HEADER.size)[4]:
                for value in root_pairs(raw).values():
                    if BUCKET_HEADER.unpack_from(value)[0]:
                        pending.append(BUCKET_HEADER.unpack_from(value)[0])
        self.assertEqual(used, set(range(len(raw) // PAGE)))

    def test_refuses_unordered_input(self) -> None:
        """Buckets or keys out of order, or an empty key, are refused (bbolt cannot hold them)."""
        for data in (
            [(b"b", []), (b"a", [])],
            [(b"a", [(b"2", b""), (b"1", b"")])],
            [(b"a", [(b"1", b""), (b"1", b"")])],
            [(b"a", [(b"", b"")])],
        ):
            with self.assertRaises(ValueError):
                _ = BboltFile(lambda data=data: data).size

    def test_changed_data_is_detected(self) -> None:
        """If the source gives other data the second time, writing fails instead of lying."""
        calls = []

        def source() -> list[tuple[bytes, list[tuple[bytes, bytes]]]]:
            calls.append(1)
            return [(b"a", [(b"%05d" % i, b"v" * 50) for i in range(100 * len(calls))])]

        with self.assertRaises(RuntimeError):
            list(BboltFile(source).chunks())
