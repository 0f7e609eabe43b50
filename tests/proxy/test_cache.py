"""Tests for etcd_twisted.proxy.cache: serializable answers, invalidated by writes."""

from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted._pb import rpc_pb2
from etcd_twisted.proxy.cache import RangeCache, interval_overlaps


def _request(key: bytes, end: bytes = b"", revision: int = 0) -> tuple[rpc_pb2.RangeRequest, bytes]:
    request = rpc_pb2.RangeRequest(key=key, range_end=end, revision=revision, serializable=True)
    return request, request.SerializeToString()


class OverlapTests(SynchronousTestCase):
    def test_intervals(self) -> None:
        """One key, ranges and open ends meet as etcd's intervals do."""
        self.assertTrue(interval_overlaps((b"a", b""), (b"a", b"")))
        self.assertFalse(interval_overlaps((b"a", b""), (b"b", b"")))
        self.assertTrue(interval_overlaps((b"a", b"c"), (b"b", b"")))
        self.assertFalse(interval_overlaps((b"a", b"c"), (b"c", b"")))
        self.assertTrue(interval_overlaps((b"a", b"\0"), (b"zzz", b"")))
        self.assertFalse(interval_overlaps((b"b", b"\0"), (b"a", b"")))


class CacheTests(SynchronousTestCase):
    def test_hit_after_add(self) -> None:
        """A cached answer is returned for the same request and counted."""
        cache = RangeCache()
        request, raw = _request(b"k")
        self.assertIsNone(cache.get(request, raw))
        cache.add(request, raw, b"answer")
        self.assertEqual(cache.get(request, raw), b"answer")
        self.assertEqual((cache.hits, cache.misses), (1, 1))

    def test_write_invalidates_overlapping(self) -> None:
        """A write drops the answers whose interval it touches, and only those."""
        cache = RangeCache()
        prefix, raw_prefix = _request(b"p/", b"p0")
        other, raw_other = _request(b"q")
        cache.add(prefix, raw_prefix, b"1")
        cache.add(other, raw_other, b"2")
        cache.invalidate(b"p/x")
        self.assertIsNone(cache.get(prefix, raw_prefix))
        self.assertEqual(cache.get(other, raw_other), b"2")

    def test_compaction(self) -> None:
        """Answers at revisions below a compaction go; requests below it miss."""
        cache = RangeCache()
        old, raw_old = _request(b"k", revision=3)
        latest, raw_latest = _request(b"k")
        cache.add(old, raw_old, b"old")
        cache.add(latest, raw_latest, b"new")
        cache.compact(5)
        self.assertIsNone(cache.get(old, raw_old))
        self.assertEqual(cache.get(latest, raw_latest), b"new")

    def test_least_recently_used_goes(self) -> None:
        """Past max_entries the least recently used answer is dropped."""
        cache = RangeCache(max_entries=2)
        entries = [_request(bytes([c])) for c in b"abc"]
        cache.add(*entries[0], b"a")
        cache.add(*entries[1], b"b")
        cache.get(*entries[0])
        cache.add(*entries[2], b"c")
        self.assertIsNone(cache.get(*entries[1]))
        self.assertEqual(cache.get(*entries[0]), b"a")
