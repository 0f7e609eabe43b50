"""One lease: its TTL, its checkpointed remaining TTL, its expiry and its keys."""

import math
from dataclasses import dataclass, field

#: The expiry of every lease on a lessor that is not primary: it never expires there.
FOREVER = math.inf


@dataclass(slots=True, eq=False)
class Lease:
    """A lease as the lessor holds it; its fields are the lessor's to change.

    ``expiry`` is a time on the caller's monotonic clock (``FOREVER`` unless the lessor
    is primary); ``remaining_ttl`` is the last checkpointed remaining TTL in seconds,
    0 when unset; ``keys`` are the keys attached to the lease.
    """

    id: int
    ttl: int
    remaining_ttl: int = 0
    expiry: float = FOREVER
    keys: set[bytes] = field(default_factory=set)

    def refresh_ttl(self) -> int:
        """The seconds a refresh on promotion grants: the checkpointed remaining TTL, or the TTL."""
        return self.remaining_ttl if self.remaining_ttl > 0 else self.ttl

    def remaining(self, now: float) -> float:
        """Seconds until expiry at ``now`` (negative once expired, ``FOREVER`` if never)."""
        return self.expiry - now
