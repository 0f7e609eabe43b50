"""Long ranges read a page at a time and answered without decoding what they return.

A range over 100k keys decoded every stored ``KeyValue`` into a message, copied them
into the response and encoded them again: seconds of one thread, during which no other
client was served. The key bucket already holds each ``KeyValue`` encoded, and a
``RangeResponse``'s ``kvs`` on the wire are just those bytes behind a tag and a length;
so :class:`EncodedRange` reads the index and the backend a page of keys at a time (the
caller runs the pages across reactor turns) and :class:`EncodedRangeResponse` sends the
stored bytes as they are.

Only plain ranges go this way (a key span, optionally a revision and a limit: no sort,
no revision filters, not ``keys_only`` or ``count_only``), and only when the span holds
more than one page of keys; anything else is answered by the applier as before. The
result is the range as of the revision current when it started: stored revisions do not
change, and a compaction past that revision before the last page fails the range as
compacted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from etcd_twisted._pb import rpc_pb2

from .errors import CompactedError, FutureRevisionError
from .kvstore import KEY_BUCKET, KVStore
from .revision import rev_to_bytes

#: Keys read per page: a few milliseconds of work.
PAGE_KEYS = 256
#: Pages read per reactor turn, across all long ranges in progress.
PAGES_PER_TURN = 2
#: A span with at most this many keys is answered by the applier in one go.
SMALL_RANGE_KEYS = 1024
_KVS_TAG = b"\x12"  # RangeResponse.kvs: field 2, length-delimited


def pages_per_turn() -> Callable[[], bool]:
    """A termination predicate for a Twisted ``Cooperator`` running :meth:`EncodedRange.pages`
    of every long range in progress: :data:`PAGES_PER_TURN` pages, then the reactor's turn
    (counted rather than timed, so tests with a fake clock see the same slices)."""
    left = PAGES_PER_TURN

    def done() -> bool:
        nonlocal left
        left -= 1
        return left <= 0

    return done


def is_plain(r: rpc_pb2.RangeRequest) -> bool:
    """True for a range this module can answer: a key span, no sort, filters or
    value-less modes."""
    return bool(
        r.range_end
        and r.sort_order == rpc_pb2.RangeRequest.NONE
        and r.sort_target == rpc_pb2.RangeRequest.KEY
        and not (r.min_mod_revision or r.max_mod_revision)
        and not (r.min_create_revision or r.max_create_revision)
        and not (r.keys_only or r.count_only)
    )


def _varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


_SHORT = 1 << 14
#: The tag and length of every ``kvs`` entry shorter than 16 KiB (two-byte varints).
_PREFIXES = [_KVS_TAG + _varint(n) for n in range(_SHORT)]


class EncodedRangeResponse:
    """A ``RangeResponse`` whose ``kvs`` are kept encoded: ``header``, ``count`` and
    ``more`` live in :attr:`head`, a real message; ``SerializeToString`` puts the
    encoded ``kvs`` between its header and the rest, the bytes protobuf would write."""

    def __init__(self, head: rpc_pb2.RangeResponse, kvs_wire: bytes) -> None:
        self.head = head
        self.kvs_wire = kvs_wire

    @property
    def header(self) -> Any:
        return self.head.header

    @property
    def count(self) -> int:
        return self.head.count

    @property
    def more(self) -> bool:
        return self.head.more

    @property
    def kvs(self) -> Any:
        """The key-values, decoded on demand (callers other than the gRPC answer)."""
        return self.to_message().kvs

    def SerializeToString(self) -> bytes:  # noqa: N802 (protobuf's name)
        header = rpc_pb2.RangeResponse()
        header.header.CopyFrom(self.head.header)
        rest = rpc_pb2.RangeResponse(more=self.head.more, count=self.head.count)
        return header.SerializeToString() + self.kvs_wire + rest.SerializeToString()

    def to_message(self) -> rpc_pb2.RangeResponse:
        """The response as a decoded message (for the JSON gateway)."""
        return rpc_pb2.RangeResponse.FromString(self.SerializeToString())


class EncodedRange:
    """One long range in progress: :meth:`pages` reads it, :meth:`response` answers it."""

    def __init__(self, store: KVStore, r: rpc_pb2.RangeRequest, rev: int, current: int) -> None:
        self._store = store
        self._current = current
        self._end = r.range_end
        self._limit = r.limit
        self.rev = rev
        self._cursor: bytes | None = r.key
        self._parts: list[bytes] = []
        self._kept = 0
        self._count = 0

    @classmethod
    def start(cls, store: KVStore, r: rpc_pb2.RangeRequest) -> EncodedRange | None:
        """An :class:`EncodedRange` for ``r``, or None when the applier should answer it
        (not plain, or a span of at most :data:`SMALL_RANGE_KEYS` keys). Raises the
        store's errors for a compacted or future revision."""
        if not is_plain(r):
            return None
        current = store.current_rev
        if r.revision > current:
            raise FutureRevisionError()
        rev = r.revision if r.revision > 0 else current
        if rev < store.compact_main_rev:
            raise CompactedError()
        _, rest = store.index.revisions_page(r.key, r.range_end, rev, SMALL_RANGE_KEYS)
        if rest is None:
            return None
        return cls(store, r, rev, current)

    def pages(self) -> Iterator[None]:
        """Read the range a page at a time (one step per page)."""
        while self._cursor is not None:
            self._page()
            yield None

    def _page(self) -> None:
        store = self._store
        if store.compact_main_rev > self.rev:
            raise CompactedError()
        assert self._cursor is not None
        revs, self._cursor = store.index.revisions_page(
            self._cursor, self._end, self.rev, PAGE_KEYS
        )
        self._count += len(revs)
        if self._limit > 0:
            revs = revs[: max(0, self._limit - self._kept)]
        self._kept += len(revs)
        found = store.backend.batch_tx.get_many(KEY_BUCKET, [rev_to_bytes(rev) for rev in revs])
        if len(found) != len(revs):
            raise RuntimeError("mvcc: a revision is in the index but not the backend")
        parts = self._parts
        for _, data in found:
            n = len(data)
            parts.append(_PREFIXES[n] if n < _SHORT else _KVS_TAG + _varint(n))
            parts.append(data)

    def response(self) -> EncodedRangeResponse:
        """The answer, once :meth:`pages` is exhausted."""
        head = rpc_pb2.RangeResponse(count=self._count)
        head.more = self._limit > 0 and self._count > self._limit
        head.header.revision = self._current  # as the applier answers: the store's revision
        return EncodedRangeResponse(head, b"".join(self._parts))
