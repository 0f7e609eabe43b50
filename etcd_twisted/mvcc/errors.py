"""Errors raised by the MVCC layer; ``api/errors.py`` maps them to gRPC codes."""


class MvccError(Exception):
    """Base class for MVCC errors; ``str(err)`` is etcd's message."""

    message = "mvcc: error"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.message)


class RevisionNotFoundError(MvccError):
    """The key has no live revision at the requested point (or nothing to tombstone)."""

    message = "mvcc: revision not found"


class CompactedError(MvccError):
    """The requested revision is at or below the compacted revision."""

    message = "mvcc: required revision has been compacted"


class FutureRevisionError(MvccError):
    """The requested revision is above the current revision."""

    message = "mvcc: required revision is a future revision"
