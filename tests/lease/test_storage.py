"""How a lease is stored in the backend's ``lease`` bucket."""

import os

from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted._pb.lease_pb2 import Lease as LeasePB
from etcd_twisted.backend import Backend
from etcd_twisted.lease import Lessor
from etcd_twisted.lease.lease import Lease
from etcd_twisted.lease.storage import (
    LEASE_BUCKET,
    delete_lease,
    lease_key,
    load_leases,
    save_lease,
)

from .fake_storage import DictStorage


class StorageTests(SynchronousTestCase):
    def test_lease_key_is_big_endian_int64(self) -> None:
        """The key is the id as 8 big-endian bytes; negative ids in two's complement."""
        self.assertEqual(lease_key(0x0102030405060708), bytes.fromhex("0102030405060708"))
        self.assertEqual(lease_key(-1), b"\xff" * 8)

    def test_value_is_leasepb(self) -> None:
        """The value is leasepb.Lease{ID, TTL, RemainingTTL}, byte for byte as etcd's."""
        storage = DictStorage()
        save_lease(storage, Lease(5, 60, 30))
        value = storage.buckets[LEASE_BUCKET][lease_key(5)]
        self.assertEqual(value, bytes([0x08, 5, 0x10, 60, 0x18, 30]))
        self.assertEqual(LeasePB.FromString(value), LeasePB(ID=5, TTL=60, RemainingTTL=30))

    def test_load_every_lease_in_key_order(self) -> None:
        """load_leases returns every record, negative ids after positive ones."""
        storage = DictStorage()
        for lease_id in (7, -3, 1, 2**63 - 1):
            save_lease(storage, Lease(lease_id, 10))
        delete_lease(storage, 1)
        self.assertEqual([r.ID for r in load_leases(storage)], [7, 2**63 - 1, -3])


class RealBackendTests(SynchronousTestCase):
    def test_round_trip_through_lmdb(self) -> None:
        """A lessor on Backend.batch_tx stores leases that a new lessor restores after reopening."""
        path = os.path.join(self.mktemp(), "db")
        os.makedirs(os.path.dirname(path))
        be = Backend(path)
        lessor = Lessor(be.batch_tx, 2)
        lessor.grant(1, 60, 0.0)
        lessor.grant(-2, 1, 0.0)
        lessor.grant(3, 60, 0.0)
        lessor.revoke(3)
        be.force_commit()
        be.close()

        be = Backend(path)
        self.addCleanup(be.close)
        restored = Lessor(be.batch_tx, 2)
        restored.restore()
        self.assertEqual([(le.id, le.ttl) for le in restored.leases()], [(-2, 2), (1, 60)])
