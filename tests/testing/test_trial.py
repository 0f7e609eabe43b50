"""Tests for ``etcd_twisted.testing.trial``: the mixin's shared member and its clusters."""

from __future__ import annotations

import time

from twisted.trial.unittest import TestCase

from etcd_twisted.testing import EtcdTestMixin
from tests.support.processes import etcdctl


class SharedMemberTests(EtcdTestMixin, TestCase):
    timeout = 120

    async def test_shared_member_is_reset(self) -> None:
        """The run's shared member comes back empty: keys, leases, users, roles and auth."""
        shared = await self.shared_etcd()
        gw = shared.members[0].gateway
        lease = (await shared.in_thread(gw.call, "lease/grant", {"TTL": 60}))["ID"]
        await shared.in_thread(gw.put, "kept", "v", int(lease))
        await shared.in_thread(gw.call, "auth/role/add", {"name": "reader"})
        await shared.in_thread(gw.call, "auth/user/add", {"name": "root", "password": "root"})
        await shared.in_thread(gw.call, "auth/user/grant", {"user": "root", "role": "root"})
        await shared.in_thread(gw.call, "auth/enable")
        t0 = time.monotonic()
        again = await self.shared_etcd()
        took = time.monotonic() - t0
        self.assertIs(again, shared)
        self.assertIsNone(await shared.in_thread(gw.get, "kept"))
        self.assertEqual(await shared.in_thread(gw.lease_ids), [])
        self.assertFalse((await shared.in_thread(gw.call, "auth/status")).get("enabled", False))
        self.assertEqual((await shared.in_thread(gw.call, "auth/role/list")).get("roles", []), [])
        self.assertEqual((await shared.in_thread(gw.call, "auth/user/list")).get("users", []), [])
        self.assertLess(took, 1.0)

    async def test_shared_member_serves_etcdctl(self) -> None:
        """The shared member is a real member for etcdctl, and starts this test empty."""
        shared = await self.shared_etcd()
        url = shared.endpoints[0]
        self.assertEqual((await etcdctl(url, "get", "", "--from-key", "--keys-only")).out, "")
        self.assertEqual((await etcdctl(url, "put", "x", "1")).code, 0)


class ClusterTests(EtcdTestMixin, TestCase):
    timeout = 240

    async def test_leader_loss_partition_and_restart(self) -> None:
        """A 3-member cluster's handles: kill the leader, a new one is elected; cut a member
        off, the others keep a leader; heal; restart the killed one and it serves again."""
        cluster = await self.start_etcd_cluster(3)
        first = await cluster.leader()
        await cluster.kill(first)
        second = await cluster.leader()
        self.assertIsNot(second, first)
        self.assertTrue(second.running)
        cluster.isolate(second)
        others = [m for m in cluster.members if m is not first and m is not second]
        put = await etcdctl(others[0].client_url, "put", "during", "x", timeout=2)
        self.assertNotEqual(put.code, 0)  # one live member of three left connected: no quorum
        cluster.heal()
        await cluster.restart(first)
        third = await cluster.leader()
        self.assertTrue(third.running)
        got = await etcdctl(",".join(cluster.endpoints), "put", "after", "y")
        self.assertEqual(got.code, 0, got.err)
        got = await etcdctl(first.client_url, "get", "after", "--print-value-only")
        self.assertEqual(got.out, "y\n")

    async def test_partition_majority_keeps_serving(self) -> None:
        """``partition([leader])`` leaves the two others a quorum: they elect a leader
        between them and take writes; the cut-off leader cannot."""
        cluster = await self.start_etcd_cluster(3)
        old = await cluster.leader()
        cluster.partition([old])
        rest = [m for m in cluster.members if m is not old]
        deadline = time.monotonic() + 15
        while True:
            got = await etcdctl(rest[0].client_url, "put", "k", "v", timeout=2)
            if got.code == 0 or time.monotonic() > deadline:
                break
        self.assertEqual(got.code, 0, got.err)
        lone = await etcdctl(old.client_url, "put", "k", "lost", timeout=2)
        self.assertNotEqual(lone.code, 0)
        cluster.heal()

    async def test_pause_and_resume(self) -> None:
        """A paused member answers nobody; resumed, it serves again."""
        cluster = await self.start_etcd_cluster(3)
        m = cluster.members[0]
        cluster.pause(m)
        self.assertIsNone(await cluster.gateway_status(m))
        got = await etcdctl(m.client_url, "get", "k", timeout=1)
        self.assertNotEqual(got.code, 0)
        cluster.resume(m)
        await cluster.wait_ready(m)
        got = await etcdctl(m.client_url, "put", "k", "v")
        self.assertEqual(got.code, 0, got.err)

    async def test_real_etcd_member(self) -> None:
        """The same harness starts real etcd 3.5.1 (``kind="etcd"``), and resets it."""
        cluster = await self.start_etcd_cluster(1, kind="etcd")
        url = cluster.endpoints[0]
        self.assertEqual((await etcdctl(url, "put", "k", "v")).code, 0)
        await cluster.reset()
        self.assertEqual((await etcdctl(url, "get", "k")).out, "")
