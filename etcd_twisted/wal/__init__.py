"""Durable raft log and snapshots: the WAL, snapshot files and the data-dir layout.

Pure (no Twisted): ``etcd_twisted.server.wal_writer`` runs a ``WAL`` on a
writer thread.

* ``record``: the sans-I/O record codec (frames, CRC chain, torn-tail detection);
* ``wal``: ``WAL`` segment files (create, open, read_all, save, cut, release, purge);
* ``snap``: ``Snapshotter`` for ``*.snap`` files;
* ``data_dir``: ``identify_data_dir`` and the paths under ``DATA_DIR/member``.
"""

from etcd_twisted.wal.data_dir import (
    DataDir,
    DirType,
    backend_path,
    identify_data_dir,
    member_dir,
    snap_dir,
    snapshot_db_path,
    wal_dir,
)
from etcd_twisted.wal.errors import (
    CorruptSnapshotError,
    CorruptWALError,
    DataDirError,
    MetadataConflictError,
    NoSnapshotError,
    SnapError,
    SnapshotMismatchError,
    SnapshotNotFoundError,
    WALError,
    WALExistsError,
    WALLockedError,
    WALNotFoundError,
)
from etcd_twisted.wal.snap import Snapshotter
from etcd_twisted.wal.snap import purge as purge_snapshots
from etcd_twisted.wal.wal import SEGMENT_BYTES, WAL, exist, valid_snapshot_entries
from etcd_twisted.wal.wal import purge as purge_wals

__all__ = [
    "SEGMENT_BYTES",
    "WAL",
    "CorruptSnapshotError",
    "CorruptWALError",
    "DataDir",
    "DataDirError",
    "DirType",
    "MetadataConflictError",
    "NoSnapshotError",
    "SnapError",
    "SnapshotMismatchError",
    "SnapshotNotFoundError",
    "Snapshotter",
    "WALError",
    "WALExistsError",
    "WALLockedError",
    "WALNotFoundError",
    "backend_path",
    "exist",
    "identify_data_dir",
    "member_dir",
    "purge_snapshots",
    "purge_wals",
    "snap_dir",
    "snapshot_db_path",
    "valid_snapshot_entries",
    "wal_dir",
]
