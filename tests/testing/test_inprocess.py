"""Tests for ``etcd_twisted.testing.inprocess`` and the trial mixin: an in-process member
driven by grpcio and etcdctl, its reset and its fault handles."""

from __future__ import annotations

import os
import time

import grpc
from twisted.internet import reactor
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from etcd_twisted._pb import rpc_pb2, rpc_pb2_grpc
from etcd_twisted.testing import NOSPACE, EtcdTestMixin, GatewayError, start_member
from tests.support.processes import etcdctl


class InProcessTests(EtcdTestMixin, TestCase):
    timeout = 120

    async def test_first_put_is_quick_and_fast_mode_is_on(self) -> None:
        """The member answers a put soon after the call; fast mode turns fsync off."""
        t0 = time.monotonic()
        member = await start_member(reactor)
        self.addCleanup(member.stop)
        await member.in_thread(member.gateway.put, "k", "v")
        self.assertLess(time.monotonic() - t0, 2.0)
        self.assertTrue(member.service.config.unsafe_no_fsync)
        self.assertEqual(member.service.config.election_timeout, 50)

    async def test_grpcio_and_etcdctl(self) -> None:
        """grpcio and etcdctl both reach the member on its one client port."""
        member = await self.start_etcd()
        channel = grpc.insecure_channel(member.endpoint)
        self.addCleanup(channel.close)
        kv = rpc_pb2_grpc.KVStub(channel)
        await deferToThread(kv.Put, rpc_pb2.PutRequest(key=b"a", value=b"1"), timeout=5)
        got = await etcdctl(member.client_url, "get", "a", "--print-value-only")
        self.assertEqual((got.code, got.out), (0, "1\n"))

    async def test_stop_removes_the_data_dir_it_made(self) -> None:
        """A member without a given data dir removes its temporary one when it stops."""
        member = await start_member(reactor)
        self.assertTrue(os.path.isdir(member.data_dir))
        await member.stop()
        self.assertFalse(os.path.exists(member.data_dir))

    async def test_expire_leases_now_deletes_their_keys(self) -> None:
        """Every lease ends at once and the keys attached to it go, as on expiry."""
        member = await self.start_etcd()
        gw = member.gateway
        lease = (await member.in_thread(gw.call, "lease/grant", {"TTL": 600}))["ID"]
        await member.in_thread(gw.put, "session", "x", int(lease))
        self.assertEqual(await member.expire_leases_now(), 1)
        self.assertIsNone(await member.in_thread(gw.get, "session"))

    async def test_compact(self) -> None:
        """``compact`` compacts at the current revision: older revisions are gone."""
        member = await self.start_etcd()
        gw = member.gateway
        first = await member.in_thread(gw.put, "k", "1")
        await member.in_thread(gw.put, "k", "2")
        await member.compact()
        with self.assertRaises(GatewayError) as e:
            await member.in_thread(gw.call, "kv/range", {"key": "aw==", "revision": str(first)})
        self.assertIn("required revision has been compacted", e.exception.message)

    async def test_fill_quota_raises_nospace(self) -> None:
        """``fill_quota`` writes until the NOSPACE alarm; then puts are refused."""
        member = await self.start_etcd(extra=["--quota-backend-bytes", str(2 * 1024 * 1024)])
        self.assertGreater(await member.fill_quota(), 0)
        with self.assertRaises(GatewayError) as e:
            await member.in_thread(member.gateway.put, "k", "v")
        self.assertEqual(e.exception.message, NOSPACE)
