"""The LMDB backend: named buckets, one batch write transaction, the consistent index.

See the package docstring for the API and the durability design.
"""

from __future__ import annotations

import math
import os
import struct
from collections.abc import Iterator

import crc32c
import lmdb

from etcd_twisted import failpoints
from etcd_twisted.backend import buckets
from etcd_twisted.backend.errors import DatabaseSpaceExceededError, SnapshotInProgressError
from etcd_twisted.backend.snapshot import BackendSnapshot
from etcd_twisted.wal import files

__all__ = ["DEFAULT_QUOTA_BYTES", "Backend", "BatchTx", "map_size_for"]

#: ``--quota-backend-bytes 0`` means this (etcd: 2 GiB).
DEFAULT_QUOTA_BYTES = 2 * 1024**3
_MIN_HEADROOM = 64 * 1024**2
_U64 = struct.Struct(">Q")


def map_size_for(quota_bytes: int, headroom_bytes: int | None = None) -> int:
    """LMDB map size for a quota: the quota plus headroom (default: as much again, at least 64 MiB).

    The quota is a soft limit the server checks with ``would_exceed`` before
    applying a write; the headroom lets writes already admitted (deletes and
    compactions under a NOSPACE alarm, pages pinned by a snapshot being
    streamed) still land instead of hitting LMDB's hard limit.
    """
    quota = quota_bytes or DEFAULT_QUOTA_BYTES
    headroom = max(quota, _MIN_HEADROOM) if headroom_bytes is None else headroom_bytes
    return quota + headroom


class BatchTx:
    """The pending batch: writes go in, reads see them. Use ``Backend.batch_tx``."""

    def __init__(self, backend: Backend) -> None:
        self._be = backend

    def put(self, bucket: bytes, key: bytes, value: bytes) -> None:
        """Set ``key`` in ``bucket``."""
        be = self._be
        try:
            be._txn().put(key, value, db=be._dbs[bucket])
        except lmdb.MapFullError:
            be._discard()
            raise DatabaseSpaceExceededError("map full on put") from None
        except lmdb.BadValsizeError as e:
            raise ValueError(f"key or value size not accepted: {e}") from None
        be._pending += 1
        be._pending_bytes += len(key) + len(value)

    def delete(self, bucket: bytes, key: bytes) -> bool:
        """Remove ``key`` from ``bucket``; whether it was there."""
        be = self._be
        try:
            found = be._txn().delete(key, db=be._dbs[bucket])
        except lmdb.MapFullError:
            be._discard()
            raise DatabaseSpaceExceededError("map full on delete") from None
        be._pending += 1
        return found

    def get(self, bucket: bytes, key: bytes) -> bytes | None:
        """The value of ``key``, or None."""
        be = self._be
        return be._txn().get(key, db=be._dbs[bucket])

    def get_many(self, bucket: bytes, keys: list[bytes]) -> list[tuple[bytes, bytes]]:
        """``(key, value)`` of each of ``keys`` that is present, in the order given
        (one C call: long ranges read thousands of revisions at a time)."""
        be = self._be
        with be._txn().cursor(db=be._dbs[bucket]) as cursor:
            return cursor.getmulti(keys)

    def range(
        self, bucket: bytes, start: bytes, end: bytes | None = None, limit: int = 0
    ) -> list[tuple[bytes, bytes]]:
        """Sorted ``(key, value)`` pairs with ``start <= key < end``; ``end=None`` is the one key ``start``.

        ``limit`` 0 means no limit.
        """
        if end is None:
            value = self.get(bucket, start)
            return [] if value is None else [(start, value)]
        be = self._be
        out: list[tuple[bytes, bytes]] = []
        cur = be._txn().cursor(db=be._dbs[bucket])
        if not cur.set_range(start):
            return out
        for key, value in cur.iternext():
            if key >= end:
                break
            out.append((key, value))
            if len(out) == limit:
                break
        return out

    def items(self, bucket: bytes) -> Iterator[tuple[bytes, bytes]]:
        """Every pair of ``bucket`` in key order (etcd's ``ForEach``); do not write meanwhile."""
        be = self._be
        yield from be._txn().cursor(db=be._dbs[bucket])


class Backend:
    """An LMDB environment with etcd's buckets and a batch transaction driven by calls.

    Use from one thread (the owner); only ``sync`` and a ``BackendSnapshot``'s
    ``chunks`` may run elsewhere.
    """

    def __init__(
        self,
        path: str,
        *,
        quota_bytes: int = 0,
        batch_interval: float = 0.1,
        batch_limit: int = 10_000,
        headroom_bytes: int | None = None,
        sync_commits: bool = False,
    ) -> None:
        self.path = path
        self.quota_bytes = quota_bytes or DEFAULT_QUOTA_BYTES
        self.map_size = map_size_for(quota_bytes, headroom_bytes)
        self.batch_interval = batch_interval
        self.batch_limit = batch_limit
        self._sync_commits = sync_commits
        self.batch_tx = BatchTx(self)
        self._write: lmdb.Transaction | None = None
        self._pending = 0
        self._pending_bytes = 0
        self._last_commit = -math.inf
        #: Number of commits so far (for metrics and tests).
        self.commits = 0
        self._closed = False
        self._snapshots: set[BackendSnapshot] = set()
        directory = os.path.dirname(os.path.abspath(path))
        files.makedirs_durable(directory)
        if os.path.exists(path + ".defrag"):  # a defragment cut short
            os.unlink(path + ".defrag")
        created = not os.path.exists(path)
        self._open()
        if created:  # the new file's entry; its pages are synced with the first commit
            files.fsync_dir(directory)

    def _open(self) -> None:
        self._env = lmdb.open(
            self.path,
            subdir=False,
            map_size=self.map_size,
            max_dbs=len(buckets.ALL) + 4,
            sync=self._sync_commits,
            metasync=False,
            mode=files.FILE_MODE,
        )
        with self._env.begin(write=True) as txn:
            self._dbs = {name: self._env.open_db(name, txn=txn) for name in buckets.ALL}
        self._ci = self._read_consistent_index()
        self._file_size = os.stat(self.path).st_size

    # -- transactions -------------------------------------------------------

    def _txn(self) -> lmdb.Transaction:
        if self._write is None:
            self._write = self._env.begin(write=True)
        return self._write

    def _discard(self) -> None:
        """Abort the pending batch; the database stays at the last commit."""
        if self._write is not None:
            self._write.abort()
            self._write = None
        self._pending = 0
        self._pending_bytes = 0
        self._ci = self._read_consistent_index()

    def _read_consistent_index(self) -> tuple[int, int]:
        with self._env.begin() as txn:
            meta = self._dbs[buckets.META]
            index = txn.get(buckets.CONSISTENT_INDEX_KEY, db=meta)
            term = txn.get(buckets.TERM_KEY, db=meta)
        return (
            _U64.unpack(index)[0] if index else 0,
            _U64.unpack(term)[0] if term else 0,
        )

    @property
    def pending(self) -> int:
        """Writes in the batch not yet committed."""
        return self._pending

    def set_consistent_index(self, index: int, term: int) -> None:
        """Record in the batch that everything up to raft ``index`` (of ``term``) is applied."""
        meta = buckets.META
        self.batch_tx.put(meta, buckets.CONSISTENT_INDEX_KEY, _U64.pack(index))
        self.batch_tx.put(meta, buckets.TERM_KEY, _U64.pack(term))
        self._ci = (index, term)

    def consistent_index(self) -> tuple[int, int]:
        """``(index, term)`` of the last applied entry, pending batch included."""
        return self._ci

    def maybe_commit(self, now: float) -> bool:
        """Commit if the batch is due (``batch_interval`` since the last commit, or ``batch_limit`` writes)."""
        if not self._pending:
            return False
        if self._pending < self.batch_limit and now - self._last_commit < self.batch_interval:
            return False
        self.force_commit()
        self._last_commit = now
        return True

    def force_commit(self) -> None:
        """Commit the batch now (one fdatasync with ``sync_commits``, none without)."""
        if self._write is None:
            return
        txn, self._write = self._write, None
        try:
            failpoints.hit("before_backend_commit")
            txn.commit()
            failpoints.hit("after_backend_commit")
        except lmdb.MapFullError:
            self._discard()
            raise DatabaseSpaceExceededError("map full on commit") from None
        self._pending = 0
        self._pending_bytes = 0
        self.commits += 1
        self._file_size = os.stat(self.path).st_size

    def sync(self) -> None:
        """Flush committed data to disk (fdatasync). Safe to call from another thread."""
        self._env.sync(True)

    # -- space --------------------------------------------------------------

    def size(self) -> int:
        """Bytes the database file takes (``etcd_mvcc_db_total_size_in_bytes``), as of the
        last commit (the file grows only when a commit writes to it)."""
        return self._file_size

    def size_in_use(self) -> int:
        """Bytes of live pages, pending batch included (``..._in_use_in_bytes``)."""
        txn = self._txn()
        total = 0
        for db in (None, *self._dbs.values()):
            st = txn.stat(db) if db is not None else txn.stat()
            total += (st["branch_pages"] + st["leaf_pages"] + st["overflow_pages"]) * st["psize"]
        return total

    def would_exceed(self, nbytes: int) -> bool:
        """Whether writing about ``nbytes`` more would take the database past its quota."""
        return self.size() + self._pending_bytes + nbytes > self.quota_bytes

    def defragment(self) -> None:
        """Commit, write a compacted copy, and swap it in for the database file.

        Blocks the caller for the copy (etcd blocks writes too). The environment is
        reopened, so it is refused (``SnapshotInProgressError``) while a
        ``BackendSnapshot`` is open (being streamed to a client or a follower).
        """
        if self._snapshots:
            raise SnapshotInProgressError(
                f"cannot defragment while {len(self._snapshots)} snapshot(s) are being sent"
            )
        self.force_commit()
        tmp = self.path + ".defrag"
        self._env.copy(tmp, compact=True)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        self._env.close()
        failpoints.hit("before_defragment_swap")
        os.replace(tmp, self.path)
        failpoints.hit("after_defragment_swap")
        files.fsync_dir(os.path.dirname(self.path) or ".")
        self._open()

    # -- whole-database views -----------------------------------------------

    def snapshot(self) -> BackendSnapshot:
        """Commit, then pin the database for streaming (see ``BackendSnapshot``)."""
        self.force_commit()
        snap = BackendSnapshot(self._env.begin(), dict(self._dbs), self._snapshots.discard)
        self._snapshots.add(snap)
        return snap

    def hash(self) -> int:
        """CRC32-Castagnoli over the key bucket's pairs, pending batch included."""
        crc = crc32c.crc32c(buckets.KEY)
        for key, value in self.batch_tx.items(buckets.KEY):
            crc = crc32c.crc32c(value, crc32c.crc32c(key, crc))
        return crc

    def close(self) -> None:
        """Commit the batch, flush to disk and close; the backend is unusable afterwards."""
        if self._closed:
            return
        self.force_commit()
        self._env.sync(True)
        self._env.close()
        self._closed = True

    def __repr__(self) -> str:
        return f"<Backend {self.path} pending={self._pending}>"
