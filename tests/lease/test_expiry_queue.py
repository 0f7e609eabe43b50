"""The expiry queue: ids by due time, one live entry per id, stale entries dropped."""

from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted.lease.expiry_queue import ExpiryQueue


def drain(queue: ExpiryQueue, now: float) -> list[int]:
    out = []
    while (lease_id := queue.pop_due(now)) is not None:
        out.append(lease_id)
    return out


class ExpiryQueueTests(SynchronousTestCase):
    def test_pops_due_ids_earliest_first(self) -> None:
        """Ids come out in due order, and only once their time has come."""
        q = ExpiryQueue()
        for lease_id, due in [(1, 30.0), (2, 10.0), (3, 20.0)]:
            q.schedule(lease_id, due)
        self.assertEqual(drain(q, 5.0), [])
        self.assertEqual(drain(q, 20.0), [2, 3])
        self.assertEqual(drain(q, 100.0), [1])
        self.assertEqual(len(q), 0)

    def test_reschedule_replaces(self) -> None:
        """Scheduling an id again moves it; its old time no longer counts."""
        q = ExpiryQueue()
        q.schedule(1, 10.0)
        q.schedule(1, 50.0)
        q.schedule(2, 20.0)
        self.assertEqual(len(q), 2)
        self.assertEqual(drain(q, 30.0), [2])
        self.assertEqual(drain(q, 50.0), [1])

    def test_reschedule_to_same_time_yields_once(self) -> None:
        """An id scheduled twice at one time still comes out once."""
        q = ExpiryQueue()
        q.schedule(1, 10.0)
        q.schedule(1, 10.0)
        self.assertEqual(drain(q, 10.0), [1])

    def test_remove(self) -> None:
        """A removed id never comes out; removing an unknown id is a no-op."""
        q = ExpiryQueue()
        q.schedule(1, 10.0)
        q.schedule(2, 10.0)
        q.remove(1)
        q.remove(99)
        self.assertEqual(drain(q, 10.0), [2])

    def test_clear(self) -> None:
        """clear() forgets everything."""
        q = ExpiryQueue()
        q.schedule(1, 1.0)
        q.clear()
        self.assertEqual((len(q), drain(q, 10.0)), (0, []))

    def test_stale_entries_are_compacted(self) -> None:
        """Many reschedules of few ids keep the heap near the number of ids."""
        q = ExpiryQueue()
        for i in range(10_000):
            q.schedule(i % 10, float(i))
        self.assertLess(len(q._heap), 2 * 10 + 64 + 1)
        self.assertEqual(drain(q, 1e9), list(range(10)))
