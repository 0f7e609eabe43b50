"""The durable store under MVCC, lease, auth and membership: LMDB with etcd's buckets.

API (pure; everything on one owner thread unless noted)::

    be = Backend(path, quota_bytes=0, batch_interval=0.1, batch_limit=10_000,
                 headroom_bytes=None, sync_commits=False)
    be.batch_tx.put(bucket, key, value)          # bucket: buckets.KEY, buckets.META, ...
    be.batch_tx.delete(bucket, key) -> bool
    be.batch_tx.get(bucket, key) -> bytes | None
    be.batch_tx.range(bucket, start, end=None, limit=0) -> [(key, value)]   # end exclusive;
                                                  # None = the single key ``start``
    be.batch_tx.items(bucket) -> iterator of (key, value)                   # etcd's ForEach
    be.set_consistent_index(index, term); be.consistent_index() -> (index, term)
    be.maybe_commit(now) -> bool; be.force_commit(); be.pending; be.commits   # fdatasync
                                                  # per commit with sync_commits
    be.would_exceed(nbytes) -> bool; be.size(); be.size_in_use(); be.quota_bytes
    be.defragment(); be.hash() -> int   # defragment: SnapshotInProgressError while a snapshot is open
    be.snapshot() -> BackendSnapshot   # .chunks() may run on another thread; .close()
    restore_snapshot(path, chunks, map_size=map_size_for(quota))   # backend closed
    be.sync()                          # fdatasync; may run on another thread
    be.close()

Reads through ``batch_tx`` see the pending batch. ``DatabaseSpaceExceededError``
("database space exceeded") means LMDB's map filled up: the whole pending batch
(everything since the last commit) was discarded, the database and its
consistent index are as of the last commit, and the backend stays usable. The
caller must then treat applied-but-uncommitted entries as not applied (replay
them from the WAL, e.g. by restarting). ``would_exceed`` lets the server refuse
a write before it gets there; the map is the quota plus headroom.

Durability design. The consistent index (the raft index of the last applied
entry, and its term) is written to the meta bucket in the same transaction as
the data it covers, so after any crash the backend is at some commit point and
the server replays WAL entries after its consistent index: replay is
idempotent. The WAL, fdatasync'd before anything is acknowledged, is the source
of truth.

Commits are durable when the server opens the backend (``sync_commits=True``,
as etcd fsyncs every bbolt commit; only ``--unsafe-no-fsync`` turns it off):
LMDB with sync but without metasync, so each commit pays one fdatasync that
orders its data pages before its meta page (the meta page is synced by the
next commit's fdatasync). A power loss at any instant, even one that writes an
arbitrary subset of the unsynced pages (``robustness/lazyfs.py``'s torn
power loss), leaves the database whole at its last or second-last commit,
and the WAL replays the rest. The fdatasync runs on the owner thread (the
reactor), once per batch (``batch_interval``), not per request. It cannot
move to another thread: LMDB's writer lock belongs to the thread that began
the write transaction (a commit elsewhere leaves it held, and the next begin
blocks for ever), there is one write transaction at a time, and every read of
the batch goes through it.

``sync_commits=False`` (NOSYNC) writes the meta page with no ordering: a
commit is in the OS page cache as soon as it returns, which survives
``kill -9``, but a power loss can leave the meta page on disk without the
pages it points to (``MDB_CORRUPTED``; a later ``sync()`` on another thread
does not help, it only shortens the window). The server still runs
``be.sync()`` on the WAL writer thread before a raft snapshot lets the WAL
release or purge entries, so no WAL file is deleted while the state it fed is
only in memory.

LMDB limits keys to 511 bytes; MVCC keys in the key bucket are revisions.
"""

from etcd_twisted.backend import buckets
from etcd_twisted.backend.backend import DEFAULT_QUOTA_BYTES, Backend, BatchTx, map_size_for
from etcd_twisted.backend.errors import (
    BackendError,
    CorruptSnapshotStreamError,
    DatabaseSpaceExceededError,
    SnapshotInProgressError,
)
from etcd_twisted.backend.snapshot import BackendSnapshot, restore_snapshot

__all__ = [
    "DEFAULT_QUOTA_BYTES",
    "Backend",
    "BackendError",
    "BackendSnapshot",
    "BatchTx",
    "CorruptSnapshotStreamError",
    "DatabaseSpaceExceededError",
    "SnapshotInProgressError",
    "buckets",
    "map_size_for",
    "restore_snapshot",
]
