"""Errors of the server itself (raft, proposals, timeouts); ``api/errors.py`` maps them."""


class ServerError(Exception):
    """Base class for server errors."""


class StoppedError(ServerError):
    """The server is stopping or stopped."""


class NoLeaderError(ServerError):
    """There is no raft leader to serve the request."""


class NotLeaderError(ServerError):
    """The request must run on the leader and this member is not it."""


class LeaderChangedError(ServerError):
    """Leadership changed while the request was in flight."""


class TimeoutError(ServerError):  # noqa: A001 - etcd's name, scoped to this module
    """The request was proposed but not applied in time."""


class TooManyRequestsError(ServerError):
    """Apply has fallen too far behind commit; the request is refused."""


class RequestTooLargeError(ServerError):
    """The encoded request is larger than ``--max-request-bytes``."""


class CanceledError(ServerError):
    """The client canceled the request."""


class CorruptError(ServerError):
    """The data directory is corrupt."""


class BadLeaderTransfereeError(ServerError):
    """Leadership can only move to a voting member other than the leader."""


class LeaderTransferTimeoutError(ServerError):
    """Leadership did not move within the time allowed."""


class NotSupportedForLearnerError(ServerError):
    """A learner serves only serializable reads and status."""
