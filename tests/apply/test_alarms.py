"""Tests for etcd_twisted.apply.alarms: raise, clear, list, persist."""

from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted._pb import rpc_pb2
from etcd_twisted.apply.alarms import NONE, NOSPACE, AlarmStore
from tests.support.memory_backend import MemoryBackend


class AlarmStoreTests(SynchronousTestCase):
    def test_activate_deactivate_and_reload(self) -> None:
        """Alarms are raised once, listed by type, cleared once, and survive a reload."""
        backend = MemoryBackend()
        alarms = AlarmStore(backend.batch_tx)
        self.assertEqual(
            alarms.activate(7, NOSPACE), rpc_pb2.AlarmMember(memberID=7, alarm=NOSPACE)
        )
        self.assertIsNone(alarms.activate(7, NOSPACE))
        alarms.activate(3, rpc_pb2.CORRUPT)
        self.assertEqual([(a.memberID, a.alarm) for a in alarms.get(NONE)], [(3, 2), (7, 1)])
        self.assertEqual([a.memberID for a in alarms.get(NOSPACE)], [7])
        reloaded = AlarmStore(backend.batch_tx)
        self.assertEqual(reloaded.get(), alarms.get())
        self.assertIsNotNone(reloaded.deactivate(7, NOSPACE))
        self.assertIsNone(reloaded.deactivate(7, NOSPACE))
        self.assertEqual(AlarmStore(backend.batch_tx).get(NOSPACE), [])
