"""The lessor: grant, revoke, renew, attach; expiry and checkpoints on the primary."""

from .errors import (
    LeaseError,
    LeaseExistsError,
    LeaseExpiredError,
    LeaseNotFoundError,
    LeaseTTLTooLargeError,
    NotPrimaryError,
)
from .lease import FOREVER, Lease
from .lessor import (
    CHECKPOINT_BATCH_LIMIT,
    DEFAULT_CHECKPOINT_INTERVAL,
    EXPIRED_LEASE_RETRY_INTERVAL,
    LEASE_CHECK_INTERVAL,
    LEASE_REVOKE_RATE,
    MAX_LEASE_TTL,
    REVOKE_LIMIT,
    Lessor,
    TimeToLive,
)
from .storage import LEASE_BUCKET, LeaseStorage, lease_key

__all__ = [
    "CHECKPOINT_BATCH_LIMIT",
    "DEFAULT_CHECKPOINT_INTERVAL",
    "EXPIRED_LEASE_RETRY_INTERVAL",
    "FOREVER",
    "LEASE_BUCKET",
    "LEASE_CHECK_INTERVAL",
    "LEASE_REVOKE_RATE",
    "MAX_LEASE_TTL",
    "REVOKE_LIMIT",
    "Lease",
    "LeaseError",
    "LeaseExistsError",
    "LeaseExpiredError",
    "LeaseNotFoundError",
    "LeaseStorage",
    "LeaseTTLTooLargeError",
    "Lessor",
    "NotPrimaryError",
    "TimeToLive",
    "lease_key",
]
