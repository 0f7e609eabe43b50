"""The lessor's view of the backend, and how a lease is stored in its ``lease`` bucket."""

import struct
from typing import Protocol

from etcd_twisted._pb.lease_pb2 import Lease as LeasePB
from etcd_twisted.backend import buckets

from .lease import Lease

LEASE_BUCKET = buckets.LEASE

# Every 8-byte key lies in [_FIRST_KEY, _PAST_LAST_KEY).
_FIRST_KEY = b"\x00" * 8
_PAST_LAST_KEY = b"\xff" * 9

_ID = struct.Struct(">q")


class LeaseStorage(Protocol):
    """The backend operations the lessor needs: ``Backend.batch_tx``, or a fake."""

    def put(self, bucket: bytes, key: bytes, value: bytes) -> None: ...
    def delete(self, bucket: bytes, key: bytes) -> object: ...
    def range(
        self, bucket: bytes, start: bytes, end: bytes | None = None, limit: int = 0
    ) -> list[tuple[bytes, bytes]]: ...


def lease_key(lease_id: int) -> bytes:
    """The bucket key of a lease: its id as 8 bytes, big-endian (two's complement), as etcd."""
    return _ID.pack(lease_id)


def save_lease(storage: LeaseStorage, lease: Lease) -> None:
    """Write ``leasepb.Lease{ID, TTL, RemainingTTL}`` under the lease's key."""
    record = LeasePB(ID=lease.id, TTL=lease.ttl, RemainingTTL=lease.remaining_ttl)
    storage.put(LEASE_BUCKET, lease_key(lease.id), record.SerializeToString())


def delete_lease(storage: LeaseStorage, lease_id: int) -> None:
    """Remove a lease's record."""
    storage.delete(LEASE_BUCKET, lease_key(lease_id))


def load_leases(storage: LeaseStorage) -> list[LeasePB]:
    """Every stored lease record, in key order."""
    return [
        LeasePB.FromString(value)
        for _, value in storage.range(LEASE_BUCKET, _FIRST_KEY, _PAST_LAST_KEY)
    ]
