"""Tests for etcd_twisted.membership.ids: the ids real etcd 3.5.1 computes."""

from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted.membership.ids import cluster_id, format_id, member_id


class IdsTests(SynchronousTestCase):
    def test_matches_real_etcd(self) -> None:
        """Member and cluster ids equal those real etcd 3.5.1 reported for the same flags."""
        # etcd --name infra1 --initial-advertise-peer-urls http://127.0.0.1:23801
        #      --initial-cluster-token tok-x  (then: etcdctl member list -w json)
        mid = member_id(["http://127.0.0.1:23801"], "tok-x")
        self.assertEqual(mid, 4577858347370119897)
        self.assertEqual(cluster_id([mid]), 13858927436611866398)

    def test_order_independent(self) -> None:
        """Peer URL order and member order do not change the ids."""
        a = member_id(["http://b:2", "http://a:1"], "t")
        self.assertEqual(a, member_id(["http://a:1", "http://b:2"], "t"))
        self.assertEqual(cluster_id([1, 2, 3]), cluster_id([3, 1, 2]))

    def test_token_and_time_change_member_id(self) -> None:
        """Another token or an addition time gives another id."""
        base = member_id(["http://a:1"], "t")
        self.assertNotEqual(base, member_id(["http://a:1"], "u"))
        self.assertNotEqual(base, member_id(["http://a:1"], "t", now=1700000000))

    def test_format(self) -> None:
        """Ids print as lower-case hex, as etcdctl shows them."""
        self.assertEqual(format_id(4577858347370119897), "3f87d1e9930d82d9")
