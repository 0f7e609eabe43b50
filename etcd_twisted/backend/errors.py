"""Exceptions raised by the backend."""

from __future__ import annotations


class BackendError(Exception):
    """Base class for backend failures."""


class SnapshotInProgressError(BackendError):
    """A whole-database operation cannot run while a snapshot of the database is open."""


class DatabaseSpaceExceededError(BackendError):
    """The database map is full: the pending batch was discarded as a whole."""

    def __init__(self, detail: str = "") -> None:
        super().__init__("database space exceeded" + (f" ({detail})" if detail else ""))


class CorruptSnapshotStreamError(BackendError):
    """A backend snapshot stream is truncated or fails its checksum."""
