"""Errors raised by the lessor; ``api/errors.py`` maps them to gRPC codes and etcd's strings."""


class LeaseError(Exception):
    """Base class for lessor errors; ``str(err)`` is etcd's lessor message."""

    message = "lease: error"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.message)


class LeaseNotFoundError(LeaseError):
    """No lease has this id (or the id is 0, which names no lease)."""

    message = "lease not found"


class LeaseExpiredError(LeaseNotFoundError):
    """The lease's time ran out and it waits for its revoke: it can no longer be renewed.

    etcd's primary holds such a renewal until the revoke is applied and then answers
    "lease not found"; a caller that does not wait may answer that at once.
    """


class LeaseExistsError(LeaseError):
    """A lease with this id already exists."""

    message = "lease already exists"


class LeaseTTLTooLargeError(LeaseError):
    """The requested TTL is above ``MAX_LEASE_TTL``."""

    message = "too large lease TTL"


class NotPrimaryError(LeaseError):
    """Only the primary lessor (on the raft leader) renews leases."""

    message = "not a primary lessor"
