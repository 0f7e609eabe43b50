"""Raft snapshot files in ``DATA_DIR/member/snap/``.

A file ``{term:016x}-{index:016x}.snap`` holds a ``walpb.SnapshotFile``: a
serialized ``raftpb.Snapshot`` (metadata plus the server's opaque state bytes)
and its CRC32-Castagnoli. Files are written to a temporary name, synced and
renamed, so a crash leaves either the whole file or none. A file that fails
its check when loaded is renamed to ``*.broken`` and skipped.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import crc32c
from google.protobuf.message import DecodeError

from etcd_twisted._pb import raft_pb2, wal_pb2
from etcd_twisted.wal import files
from etcd_twisted.wal.errors import CorruptSnapshotError, NoSnapshotError

__all__ = ["Snapshotter", "purge", "read_snapshot", "snap_name"]

SNAP_SUFFIX = ".snap"
Snapshot = raft_pb2.Snapshot


def snap_name(term: int, index: int) -> str:
    """The file name of the snapshot at ``index`` taken in ``term``."""
    return f"{term:016x}-{index:016x}{SNAP_SUFFIX}"


def _parse_snap_name(name: str) -> tuple[int, int] | None:
    stem = name.removesuffix(SNAP_SUFFIX)
    term, dash, index = stem.partition("-")
    if stem == name or not dash or len(term) != 16 or len(index) != 16:
        return None
    try:
        return int(term, 16), int(index, 16)
    except ValueError:
        return None


def _snap_names(dirpath: str) -> list[str]:
    """Snapshot file names, newest first."""
    return sorted((n for n in os.listdir(dirpath) if _parse_snap_name(n)), reverse=True)


def read_snapshot(path: str) -> Snapshot:
    """Read and check one snapshot file; CorruptSnapshotError if it is damaged."""
    with open(path, "rb") as f:
        raw = f.read()
    try:
        body = wal_pb2.SnapshotFile.FromString(raw)
    except DecodeError as e:
        raise CorruptSnapshotError(f"snap: {path}: unparsable ({e})") from None
    if not body.data:
        raise CorruptSnapshotError(f"snap: {path}: empty snapshot")
    if crc32c.crc32c(body.data) != body.crc:
        raise CorruptSnapshotError(f"snap: {path}: crc mismatch")
    try:
        return Snapshot.FromString(body.data)
    except DecodeError as e:
        raise CorruptSnapshotError(f"snap: {path}: unparsable snapshot ({e})") from None


class Snapshotter:
    """Saves and loads raft snapshots in one directory."""

    def __init__(self, dirpath: str, *, unsafe_no_fsync: bool = False) -> None:
        self.dir = dirpath
        self._unsafe_no_fsync = unsafe_no_fsync

    def save_snap(self, snapshot: Snapshot) -> None:
        """Write ``snapshot`` durably; an empty one (index 0) is ignored."""
        md = snapshot.metadata
        if md.index == 0:
            return
        data = snapshot.SerializeToString()
        body = wal_pb2.SnapshotFile(crc=crc32c.crc32c(data), data=data)
        path = os.path.join(self.dir, snap_name(md.term, md.index))
        files.write_file_atomic(path, body.SerializeToString(), sync=not self._unsafe_no_fsync)

    def load(self) -> Snapshot:
        """The newest valid snapshot; NoSnapshotError if there is none."""
        return self._load_first(_snap_names(self.dir))

    def load_newest_available(self, wal_snaps: Sequence[wal_pb2.Snapshot]) -> Snapshot:
        """The newest valid snapshot that the WAL also records (see ``valid_snapshot_entries``)."""
        wanted = {(s.term, s.index) for s in wal_snaps}
        names = [n for n in _snap_names(self.dir) if _parse_snap_name(n) in wanted]
        return self._load_first(names)

    def _load_first(self, names: list[str]) -> Snapshot:
        for name in names:
            path = os.path.join(self.dir, name)
            try:
                return read_snapshot(path)
            except CorruptSnapshotError:
                os.replace(path, path + ".broken")
        raise NoSnapshotError(f"snap: no available snapshot in {self.dir}")


def purge(dirpath: str, max_files: int) -> list[str]:
    """Delete the oldest snapshot files beyond ``max_files``; return their paths. 0 keeps all."""
    if max_files <= 0:
        return []
    removed = []
    for name in _snap_names(dirpath)[max_files:]:
        path = os.path.join(dirpath, name)
        os.unlink(path)
        removed.append(path)
    if removed:
        files.fsync_dir(dirpath)
    return removed
