"""The grpc-proxy's cache of serializable range answers.

Answers are kept by request (its serialized bytes) with the key interval they cover;
a write through the proxy drops every answer whose interval it touches, and a
compaction drops answers at revisions it removed. Least recently used answers go
first once ``max_entries`` is reached. Writes made by other clients directly on the
members are not seen: a serializable read may be stale, as etcd's proxy allows.
"""

from __future__ import annotations

from collections import OrderedDict

from etcd_twisted._pb import rpc_pb2

__all__ = ["RangeCache", "interval_overlaps"]

#: etcd's grpc-proxy keeps this many answers.
DEFAULT_MAX_ENTRIES = 2048


def interval_overlaps(a: tuple[bytes, bytes], b: tuple[bytes, bytes]) -> bool:
    """Whether two etcd key ranges meet (an empty end is one key; ``\\0`` is no end)."""

    def bounds(key: bytes, end: bytes) -> tuple[bytes, bytes | None]:
        if not end:
            return key, key + b"\0"
        if end == b"\0":
            return key, None
        return key, end

    (a0, a1), (b0, b1) = bounds(*a), bounds(*b)
    return (a1 is None or b0 < a1) and (b1 is None or a0 < b1)


class RangeCache:
    """Serializable range answers, invalidated by the proxy's own writes."""

    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        self._max = max_entries
        self._entries: OrderedDict[bytes, tuple[tuple[bytes, bytes], int, bytes]] = OrderedDict()
        self.compacted_revision = 0
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    @staticmethod
    def cacheable(request: rpc_pb2.RangeRequest) -> bool:
        return request.serializable

    def get(self, request: rpc_pb2.RangeRequest, raw: bytes) -> bytes | None:
        """The cached answer to ``request`` (``raw``: its bytes), if any."""
        if request.revision and request.revision < self.compacted_revision:
            self.misses += 1
            return None
        entry = self._entries.get(raw)
        if entry is None:
            self.misses += 1
            return None
        self._entries.move_to_end(raw)
        self.hits += 1
        return entry[2]

    def add(self, request: rpc_pb2.RangeRequest, raw: bytes, answer: bytes) -> None:
        """Keep ``answer`` for ``request``."""
        self._entries[raw] = ((request.key, request.range_end), request.revision, answer)
        self._entries.move_to_end(raw)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    def invalidate(self, key: bytes, range_end: bytes = b"") -> None:
        """Drop every answer covering a key in ``[key, range_end)``."""
        written = (key, range_end)
        stale = [
            raw for raw, (span, _, _) in self._entries.items() if interval_overlaps(span, written)
        ]
        for raw in stale:
            del self._entries[raw]

    def compact(self, revision: int) -> None:
        """Drop answers at revisions below ``revision``."""
        self.compacted_revision = max(self.compacted_revision, revision)
        stale = [raw for raw, (_, rev, _) in self._entries.items() if rev and rev < revision]
        for raw in stale:
            del self._entries[raw]
