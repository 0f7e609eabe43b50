"""Tests for etcd_twisted.membership.cluster: members persisted in the backend."""

from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted.membership.cluster import Cluster, Member
from tests.support.memory_backend import MemoryBackend


class ClusterTests(SynchronousTestCase):
    def test_add_update_remove_and_reload(self) -> None:
        """Members and removed ids are stored, listed by id, and reloaded."""
        backend = MemoryBackend()
        cluster = Cluster(99, backend.batch_tx)
        cluster.add(Member(20, "b", ["http://b:2380"]))
        cluster.add(Member(10, "", ["http://a:2380"], is_learner=True))
        cluster.set_attributes(10, "a", ["http://a:2379"])
        cluster.set_attributes(12345, "ghost", [])  # unknown members are ignored
        cluster.remove(20)
        reloaded = Cluster(99, backend.batch_tx)
        reloaded.load()
        self.assertEqual(
            reloaded.sorted_members(),
            [Member(10, "a", ["http://a:2380"], ["http://a:2379"], True)],
        )
        self.assertEqual(reloaded.removed, {20})

    def test_context_round_trip(self) -> None:
        """A member survives the ConfChange context encoding."""
        m = Member(1, "n", ["http://p:1", "http://p:2"], ["http://c:1"], True)
        self.assertEqual(Member.from_context(m.to_context()), m)
