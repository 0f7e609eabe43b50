"""The multi-version key-value store on the backend (etcd's ``server/mvcc/kvstore*.go``).

Every change is stored in the backend's ``key`` bucket under its revision (see
:mod:`revision`), the value being the encoded ``mvccpb.KeyValue`` (a tombstone stores
only the key). The :class:`TreeIndex` maps keys to their revisions and is rebuilt
from the bucket on start. A write runs in a :class:`WriteTxn`: all its changes share
one main revision (``begin_rev + 1``), sub-revisions number them, later operations
see earlier ones, and the store revision moves only if something changed.

Compaction is logical at once (the index forgets, reads below it fail) and physical
in bounded steps (:meth:`KVStore.compaction_step`) that the server schedules, so a
large compaction never stalls the reactor.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

import crc32c

from etcd_twisted._pb.kv_pb2 import KeyValue
from etcd_twisted.backend import buckets

from .errors import CompactedError, FutureRevisionError, RevisionNotFoundError
from .index import TreeIndex
from .revision import Revision, bytes_to_rev, is_tombstone, rev_to_bytes

KEY_BUCKET = buckets.KEY
META_BUCKET = buckets.META
SCHEDULED_COMPACT_KEY = b"scheduledCompactRev"
FINISHED_COMPACT_KEY = b"finishedCompactRev"
#: Backend deletions per physical compaction step (etcd's ``compactionBatchLimit``).
COMPACTION_BATCH_LIMIT = 1000


class BatchTx(Protocol):
    """The backend write transaction the store needs (``etcd_twisted.backend``)."""

    def put(self, bucket: bytes, key: bytes, value: bytes) -> None: ...
    def get(self, bucket: bytes, key: bytes) -> bytes | None: ...
    def get_many(self, bucket: bytes, keys: list[bytes]) -> list[tuple[bytes, bytes]]: ...
    def delete(self, bucket: bytes, key: bytes) -> None: ...
    def range(
        self, bucket: bytes, start: bytes, end: bytes | None = None, limit: int = 0
    ) -> list[tuple[bytes, bytes]]: ...


class Backend(Protocol):
    """The backend the store runs on."""

    @property
    def batch_tx(self) -> BatchTx: ...


class LeaseHooks(Protocol):
    """What the store tells the lessor about keys attached to leases."""

    def attach(self, lease_id: int, key: bytes) -> None: ...
    def detach(self, lease_id: int, key: bytes) -> None: ...
    def get_lease(self, key: bytes) -> int: ...


@dataclass(slots=True)
class RangeResult:
    """Keys found by a range (``count`` is the whole range's size, regardless of limit)."""

    kvs: list[KeyValue]
    count: int
    rev: int


@dataclass(slots=True)
class Change:
    """One change of a write: the new ``KeyValue`` (a bare key for a deletion)."""

    kv: KeyValue
    deleted: bool


@dataclass(slots=True)
class _Compaction:
    rev: int
    keep: set[Revision]
    cursor: bytes = field(default=rev_to_bytes(Revision(0, 0)))


@dataclass
class KeyHasher:
    """Folds ``key``-bucket records, in key order, into ``KVStore.hash_kv``'s CRC; feed it
    the records before ``end`` (from the store, or from a pinned snapshot in steps)."""

    rev: int
    current_rev: int
    compact_rev: int
    #: The revisions at or below ``compact_rev`` that compaction keeps.
    keep: set[Revision]
    crc: int = crc32c.crc32c(KEY_BUCKET)

    @property
    def end(self) -> bytes:
        """The first record key past the hashed revisions."""
        return rev_to_bytes(Revision(self.rev + 1, 0))

    def add(self, key: bytes, value: bytes) -> None:
        """Fold one record in (unless compaction will delete it)."""
        if self.keep and bytes_to_rev(key) < Revision(self.compact_rev + 1, 0):
            if bytes_to_rev(key) not in self.keep:
                return
        self.crc = crc32c.crc32c(value, crc32c.crc32c(key, self.crc))

    def result(self) -> tuple[int, int, int]:
        """``(hash, current_rev, compact_rev)``."""
        return self.crc, self.current_rev, self.compact_rev


class KVStore:
    """Revisions, the key index and the ``key`` bucket, behind range / write / compact."""

    def __init__(self, backend: Backend, leases: LeaseHooks | None = None) -> None:
        self._backend = backend
        self._leases = leases
        self.index = TreeIndex()
        #: The revision of the last write; a new store is at 1.
        self.current_rev = 1
        #: The last compacted main revision (-1: never compacted).
        self.compact_main_rev = -1
        self._compaction: _Compaction | None = None
        #: Called with ``(rev, changes)`` after every write that changed something
        #: (the watchable store listens here).
        self.on_write: Callable[[int, list[Change]], None] | None = None
        self._restore()

    @property
    def backend(self) -> Backend:
        """The backend the store runs on (history readers scan its ``key`` bucket)."""
        return self._backend

    # --- reads

    def range(
        self,
        key: bytes,
        end: bytes | None = None,
        rev: int = 0,
        limit: int = 0,
        count_only: bool = False,
    ) -> RangeResult:
        """Keys in ``[key, end)`` as of ``rev`` (0: now); raises on compacted/future revs."""
        return self._range(key, end, rev, limit, count_only, self.current_rev)

    def _range(
        self,
        key: bytes,
        end: bytes | None,
        rev: int,
        limit: int,
        count_only: bool,
        cur_rev: int,
    ) -> RangeResult:
        if rev > cur_rev:
            raise FutureRevisionError()
        if rev <= 0:
            rev = cur_rev
        if rev < self.compact_main_rev:
            raise CompactedError()
        if count_only:
            return RangeResult([], self.index.count_revisions(key, end, rev), cur_rev)
        revs, total = self.index.revisions(key, end, rev, limit)
        tx = self._backend.batch_tx
        kvs = []
        for r in revs:
            data = tx.get(KEY_BUCKET, rev_to_bytes(r))
            if data is None:
                raise RuntimeError(f"mvcc: revision {r} is in the index but not the backend")
            kvs.append(KeyValue.FromString(data))
        return RangeResult(kvs, total, cur_rev)

    # --- writes

    def write(self) -> WriteTxn:
        """Begin a write; call :meth:`WriteTxn.end` to commit its revision."""
        return WriteTxn(self)

    # --- compaction

    def compact(self, rev: int) -> None:
        """Compact at ``rev``: reads below it fail from now on; space is freed in steps.

        Raises :class:`CompactedError` at or below the last compaction and
        :class:`FutureRevisionError` above the current revision.
        """
        if rev <= self.compact_main_rev:
            raise CompactedError()
        if rev > self.current_rev:
            raise FutureRevisionError()
        self.compact_main_rev = rev
        tx = self._backend.batch_tx
        tx.put(META_BUCKET, SCHEDULED_COMPACT_KEY, rev_to_bytes(Revision(rev, 0)))
        keep = self.index.compact(rev)
        self._compaction = _Compaction(rev, keep)

    @property
    def compacting(self) -> bool:
        """True while a compaction still has backend records to delete."""
        return self._compaction is not None

    def compaction_step(self, limit: int = COMPACTION_BATCH_LIMIT) -> bool:
        """Delete up to ``limit`` compacted records; True when the compaction is done."""
        job = self._compaction
        if job is None:
            return True
        tx = self._backend.batch_tx
        end = rev_to_bytes(Revision(job.rev + 1, 0))
        batch = tx.range(KEY_BUCKET, job.cursor, end, limit)
        for k, _ in batch:
            if bytes_to_rev(k) not in job.keep:
                tx.delete(KEY_BUCKET, k)
        if len(batch) < limit:
            tx.put(META_BUCKET, FINISHED_COMPACT_KEY, rev_to_bytes(Revision(job.rev, 0)))
            self._compaction = None
            return True
        job.cursor = batch[-1][0] + b"\x00"
        return False

    # --- hashing

    def hasher(self, rev: int = 0) -> KeyHasher:
        """A :class:`KeyHasher` for the ``key`` bucket up to ``rev`` (0: now), fixed at
        this moment; raises for a compacted or future revision."""
        if rev > self.current_rev:
            raise FutureRevisionError()
        if 0 < rev < self.compact_main_rev:
            raise CompactedError()
        if rev <= 0:
            rev = self.current_rev
        compact_rev = self.compact_main_rev
        keep = self.index.keep(compact_rev) if compact_rev > 0 else set()
        return KeyHasher(rev, self.current_rev, compact_rev, keep)

    def hash_kv(self, rev: int = 0) -> tuple[int, int, int]:
        """``(hash, current_rev, compact_rev)``: CRC32-C over the ``key`` bucket up to ``rev``.

        Records a pending compaction will delete are skipped, so members that compacted
        at the same revision agree whether or not their physical compaction finished.
        """
        hasher = self.hasher(rev)
        for k, v in self._iter_bucket(rev_to_bytes(Revision(0, 0)), hasher.end):
            hasher.add(k, v)
        return hasher.result()

    def _iter_bucket(
        self, start: bytes, end: bytes, batch: int = 1000
    ) -> Iterator[tuple[bytes, bytes]]:
        tx = self._backend.batch_tx
        while True:
            rows = tx.range(KEY_BUCKET, start, end, batch)
            yield from rows
            if len(rows) < batch:
                return
            start = rows[-1][0] + b"\x00"

    # --- restore

    def _restore(self) -> None:
        """Rebuild the index and revisions from the backend, resuming a cut-short compaction."""
        tx = self._backend.batch_tx
        finished = tx.get(META_BUCKET, FINISHED_COMPACT_KEY)
        scheduled = tx.get(META_BUCKET, SCHEDULED_COMPACT_KEY)
        if finished is not None:
            self.compact_main_rev = bytes_to_rev(finished).main
        end = rev_to_bytes(Revision(2**63 - 1, 0))
        restore = self.index.restore
        for k, v in self._iter_bucket(rev_to_bytes(Revision(0, 0)), end):
            rev = bytes_to_rev(k)
            kv = KeyValue.FromString(v)
            tombstone = is_tombstone(k)
            restore(kv.key, rev, kv.create_revision, kv.version, tombstone)
            if rev.main > self.current_rev:
                self.current_rev = rev.main
        if scheduled is not None:
            scheduled_rev = bytes_to_rev(scheduled).main
            self.current_rev = max(self.current_rev, scheduled_rev)
            if scheduled_rev > self.compact_main_rev:
                self.compact_main_rev = scheduled_rev
                self._compaction = _Compaction(scheduled_rev, self.index.compact(scheduled_rev))
        if self._leases is not None:
            self._reattach_leases()

    def _reattach_leases(self) -> None:
        leases = self._leases
        assert leases is not None
        for key, rev in zip(*self.index.range(b"\x00", b"\x00", self.current_rev), strict=True):
            data = self._backend.batch_tx.get(KEY_BUCKET, rev_to_bytes(rev))
            if data is not None:
                kv = KeyValue.FromString(data)
                if kv.lease:
                    leases.attach(kv.lease, key)


class WriteTxn:
    """One atomic write: its changes share main revision ``begin_rev + 1``."""

    __slots__ = ("_store", "begin_rev", "changes")

    def __init__(self, store: KVStore) -> None:
        self._store = store
        self.begin_rev = store.current_rev
        self.changes: list[Change] = []

    @property
    def rev(self) -> int:
        """The revision reads in this txn see (including its own writes)."""
        return self.begin_rev + 1 if self.changes else self.begin_rev

    def range(
        self,
        key: bytes,
        end: bytes | None = None,
        rev: int = 0,
        limit: int = 0,
        count_only: bool = False,
    ) -> RangeResult:
        """A range that sees this txn's earlier writes."""
        return self._store._range(key, end, rev, limit, count_only, self.rev)

    def put(self, key: bytes, value: bytes, lease: int = 0) -> None:
        """Write ``key``; its create revision and version follow its history."""
        store = self._store
        rev = self.begin_rev + 1
        created, version = rev, 0
        ki = store.index.key_index(key)
        if ki is not None:
            try:
                _, created_rev, version = ki.get(rev)
            except RevisionNotFoundError:
                pass
            else:
                created = created_rev.main
        idx_rev = Revision(rev, len(self.changes))
        kv = KeyValue(
            key=key,
            value=value,
            create_revision=created,
            mod_revision=rev,
            version=version + 1,
            lease=lease,
        )
        store._backend.batch_tx.put(KEY_BUCKET, rev_to_bytes(idx_rev), kv.SerializeToString())
        store.index.put(key, idx_rev)
        self.changes.append(Change(kv, False))
        leases = store._leases
        if leases is not None:
            old_lease = leases.get_lease(key)
            if old_lease != lease:
                if old_lease:
                    leases.detach(old_lease, key)
                if lease:
                    leases.attach(lease, key)

    def delete_range(self, key: bytes, end: bytes | None = None) -> int:
        """Delete the live keys in the range; returns how many were deleted."""
        store = self._store
        keys, _ = store.index.range(key, end, self.rev)
        for k in keys:
            self._delete(k)
        return len(keys)

    def _delete(self, key: bytes) -> None:
        store = self._store
        idx_rev = Revision(self.begin_rev + 1, len(self.changes))
        kv = KeyValue(key=key, mod_revision=idx_rev.main)
        store._backend.batch_tx.put(
            KEY_BUCKET, rev_to_bytes(idx_rev, tombstone=True), KeyValue(key=key).SerializeToString()
        )
        store.index.tombstone(key, idx_rev)
        self.changes.append(Change(kv, True))
        leases = store._leases
        if leases is not None:
            old_lease = leases.get_lease(key)
            if old_lease:
                leases.detach(old_lease, key)

    def end(self) -> int:
        """Finish the write; the store revision moves on if anything changed. Returns it."""
        store = self._store
        if self.changes:
            store.current_rev = self.begin_rev + 1
            if store.on_write is not None:
                store.on_write(store.current_rev, self.changes)
        return store.current_rev
