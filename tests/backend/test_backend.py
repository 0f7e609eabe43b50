"""Tests for etcd_twisted.backend.backend: buckets, batching, consistent index, quota, defrag."""

from __future__ import annotations

import os

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted.backend import (
    DEFAULT_QUOTA_BYTES,
    Backend,
    DatabaseSpaceExceededError,
    buckets,
    map_size_for,
)

KEY = buckets.KEY
MiB = 1024 * 1024


class BackendTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.path = os.path.join(self.mktemp(), "db")
        os.makedirs(os.path.dirname(self.path))

    def open(self, **kwargs: object) -> Backend:
        be = Backend(self.path, **kwargs)  # type: ignore[arg-type]
        self.addCleanup(be.close)
        return be


class BatchTests(BackendTestCase):
    def test_reads_see_the_pending_batch(self) -> None:
        """get and range see writes that are not committed yet."""
        be = self.open()
        be.batch_tx.put(KEY, b"a", b"1")
        self.assertEqual(be.batch_tx.get(KEY, b"a"), b"1")
        self.assertEqual(be.batch_tx.range(KEY, b"a", b"b"), [(b"a", b"1")])
        self.assertEqual(be.pending, 1)

    def test_range_bounds_and_limit(self) -> None:
        """range is sorted, end-exclusive, limited, and end=None means the single key."""
        be = self.open()
        for k in (b"b", b"a", b"d", b"c"):
            be.batch_tx.put(KEY, k, k.upper())
        tx = be.batch_tx
        self.assertEqual(tx.range(KEY, b"a", b"c"), [(b"a", b"A"), (b"b", b"B")])
        self.assertEqual(tx.range(KEY, b"b", b"z", limit=2), [(b"b", b"B"), (b"c", b"C")])
        self.assertEqual(tx.range(KEY, b"c"), [(b"c", b"C")])
        self.assertEqual(tx.range(KEY, b"x"), [])
        self.assertEqual(tx.range(KEY, b"e", b"z"), [])

    def test_buckets_are_separate(self) -> None:
        """The same key in two buckets holds two values."""
        be = self.open()
        be.batch_tx.put(KEY, b"k", b"key")
        be.batch_tx.put(buckets.LEASE, b"k", b"lease")
        self.assertEqual(be.batch_tx.get(buckets.LEASE, b"k"), b"lease")
        self.assertEqual(list(be.batch_tx.items(KEY)), [(b"k", b"key")])

    def test_delete(self) -> None:
        """delete removes a key and says whether it was there."""
        be = self.open()
        be.batch_tx.put(KEY, b"k", b"v")
        self.assertTrue(be.batch_tx.delete(KEY, b"k"))
        self.assertFalse(be.batch_tx.delete(KEY, b"k"))
        self.assertIsNone(be.batch_tx.get(KEY, b"k"))

    def test_commit_by_interval(self) -> None:
        """maybe_commit commits once batch_interval has passed since the last commit."""
        be = self.open(batch_interval=0.1)
        be.batch_tx.put(KEY, b"a", b"1")
        self.assertTrue(be.maybe_commit(10.0))
        be.batch_tx.put(KEY, b"b", b"2")
        self.assertFalse(be.maybe_commit(10.05))
        self.assertTrue(be.maybe_commit(10.25))
        self.assertFalse(be.maybe_commit(20.0), "nothing pending")
        self.assertEqual(be.commits, 2)

    def test_commit_by_count(self) -> None:
        """maybe_commit commits as soon as batch_limit writes are pending."""
        be = self.open(batch_interval=100, batch_limit=3)
        be.maybe_commit(0.0)
        for i in range(3):
            be.batch_tx.put(KEY, b"%d" % i, b"")
        self.assertTrue(be.maybe_commit(0.0))

    def test_reopen_keeps_committed_data_and_index(self) -> None:
        """Data and the consistent index committed together survive close and reopen."""
        be = self.open()
        be.batch_tx.put(KEY, b"k", b"v")
        be.set_consistent_index(42, 3)
        be.force_commit()
        be.close()
        be = self.open()
        self.assertEqual(be.consistent_index(), (42, 3))
        self.assertEqual(be.batch_tx.get(KEY, b"k"), b"v")
        self.assertEqual(
            be.batch_tx.get(buckets.META, buckets.CONSISTENT_INDEX_KEY), (42).to_bytes(8, "big")
        )

    @given(
        st.dictionaries(st.binary(min_size=1, max_size=40), st.binary(max_size=300), max_size=60)
    )
    @settings(max_examples=20, deadline=None)
    def test_matches_a_dict(self, model: dict[bytes, bytes]) -> None:
        """After puts, a commit and a reopen, the key bucket holds exactly the model, sorted."""
        path = os.path.join(self.mktemp(), "db")
        os.makedirs(os.path.dirname(path))
        be = Backend(path)
        for k, v in model.items():
            be.batch_tx.put(KEY, k, v)
        be.close()
        be = Backend(path)
        try:
            self.assertEqual(be.batch_tx.range(KEY, b"", b"\xff" * 41), sorted(model.items()))
        finally:
            be.close()


class QuotaTests(BackendTestCase):
    def test_default_quota(self) -> None:
        """Quota 0 means 2 GiB, and the map leaves headroom above it."""
        be = self.open()
        self.assertEqual(be.quota_bytes, DEFAULT_QUOTA_BYTES)
        self.assertGreater(be.map_size, DEFAULT_QUOTA_BYTES)
        self.assertEqual(map_size_for(0), 2 * DEFAULT_QUOTA_BYTES)

    def test_would_exceed(self) -> None:
        """would_exceed turns true once size plus the pending batch plus the write pass the quota."""
        be = self.open(quota_bytes=MiB)
        self.assertFalse(be.would_exceed(1000))
        self.assertTrue(be.would_exceed(MiB))
        while not be.would_exceed(10_000):
            be.batch_tx.put(KEY, os.urandom(16), os.urandom(1000))
        self.assertLessEqual(be.size(), MiB)

    def test_full_map_discards_the_batch_cleanly(self) -> None:
        """Filling the map raises DatabaseSpaceExceededError, drops the whole batch, and stays usable."""
        be = self.open(quota_bytes=MiB, headroom_bytes=MiB)
        be.batch_tx.put(KEY, b"kept", b"v")
        be.set_consistent_index(1, 1)
        be.force_commit()
        be.batch_tx.put(KEY, b"dropped", b"v")
        be.set_consistent_index(2, 1)
        with self.assertRaises(DatabaseSpaceExceededError) as caught:
            for i in range(100_000):
                be.batch_tx.put(KEY, b"%08d" % i, os.urandom(500))
        self.assertIn("database space exceeded", str(caught.exception))
        self.assertEqual(be.consistent_index(), (1, 1))
        self.assertIsNone(be.batch_tx.get(KEY, b"dropped"))
        self.assertEqual(be.batch_tx.get(KEY, b"kept"), b"v")
        be.batch_tx.put(KEY, b"after", b"v")
        be.force_commit()
        self.assertEqual(be.batch_tx.get(KEY, b"after"), b"v")

    def test_sizes(self) -> None:
        """size is the file size; size_in_use counts live pages and grows with data."""
        be = self.open()
        before = be.size_in_use()
        for i in range(2000):
            be.batch_tx.put(KEY, b"%08d" % i, b"x" * 200)
        be.force_commit()
        self.assertGreater(be.size_in_use(), before + 2000 * 200)
        self.assertEqual(be.size(), os.path.getsize(self.path))


class DefragmentTests(BackendTestCase):
    def test_defragment_keeps_data_and_shrinks(self) -> None:
        """After deleting most keys, defragment keeps the rest and the index and shrinks the file."""
        be = self.open()
        for i in range(5000):
            be.batch_tx.put(KEY, b"%08d" % i, b"x" * 200)
        be.set_consistent_index(7, 2)
        be.force_commit()
        for i in range(0, 5000):
            if i % 100:
                be.batch_tx.delete(KEY, b"%08d" % i)
        be.force_commit()
        before, digest = be.size(), be.hash()
        be.defragment()
        self.assertLess(be.size(), before)
        self.assertEqual(be.hash(), digest)
        self.assertEqual(be.consistent_index(), (7, 2))
        be.batch_tx.put(KEY, b"new", b"v")
        be.close()
        be = self.open()
        self.assertEqual(len(list(be.batch_tx.items(KEY))), 51)

    def test_hash_covers_the_key_bucket_only(self) -> None:
        """hash changes with the key bucket and ignores other buckets."""
        be = self.open()
        empty = be.hash()
        be.batch_tx.put(buckets.LEASE, b"l", b"1")
        self.assertEqual(be.hash(), empty)
        be.batch_tx.put(KEY, b"k", b"1")
        self.assertNotEqual(be.hash(), empty)
