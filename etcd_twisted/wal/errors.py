"""Exceptions raised by the WAL, snapshot and data-dir code."""

from __future__ import annotations


class WALError(Exception):
    """Base class for WAL failures."""


class CorruptWALError(WALError):
    """A WAL file holds damaged data; the message names the file and offset."""

    def __init__(self, path: str, offset: int, reason: str) -> None:
        super().__init__(f"wal: corrupt data in {path} at offset {offset}: {reason}")
        self.path = path
        self.offset = offset
        self.reason = reason


class WALNotFoundError(WALError):
    """No WAL file covers the requested position (etcd: "wal: file not found")."""


class WALExistsError(WALError):
    """``create`` was asked to overwrite an existing WAL."""


class WALLockedError(WALError):
    """Another open WAL (in this or another process) holds the segment files."""


class SnapshotNotFoundError(WALError):
    """The WAL holds no record of the snapshot it was opened at."""


class SnapshotMismatchError(WALError):
    """The WAL records the snapshot index with another term."""


class MetadataConflictError(WALError):
    """Segment files carry different metadata."""


class SnapError(Exception):
    """Base class for snapshot-file failures."""


class NoSnapshotError(SnapError):
    """No valid snapshot file is available (etcd: "snap: no available snapshot")."""


class CorruptSnapshotError(SnapError):
    """A snapshot file fails its CRC or cannot be parsed."""


class DataDirError(Exception):
    """The data directory has a layout this server refuses to use."""
