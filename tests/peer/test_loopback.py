"""Transports talking over real 127.0.0.1 sockets."""

from __future__ import annotations

import os

import treq
from twisted.internet.defer import Deferred
from twisted.trial.unittest import TestCase
from twisted.web.client import HTTPConnectionPool

from etcd_twisted._pb import raft_pb2
from etcd_twisted.backend.backend import Backend
from etcd_twisted.backend.snapshot import restore_snapshot
from tests.peer.fakes import app
from tests.peer.loopback import LoopbackMember, reactor, sleep, start_members, wait_for


def _d(coro: object) -> Deferred[None]:
    return Deferred.fromCoroutine(coro)  # type: ignore[arg-type]


class LoopbackTests(TestCase):
    timeout = 60

    async def members(self, *ids: int) -> list[LoopbackMember]:
        members = await start_members(list(ids), self.mktemp())
        for m in members:
            self.addCleanup(lambda m=m: _d(m.stop()))
        return members

    def test_three_members_exchange_in_order(self) -> Deferred[None]:
        """Three members each send 1,000 messages to the other two; all arrive in order."""

        async def run() -> None:
            members = await self.members(1, 2, 3)
            await wait_for(
                lambda: all(
                    m.transport.is_active(o.id) for m in members for o in members if o is not m
                )
            )
            for i in range(10):
                for m in members:
                    m.transport.send(
                        [
                            app(o.id, m.id, i * 100 + k)
                            for k in range(100)
                            for o in members
                            if o is not m
                        ]
                    )
                await sleep(0)
            await wait_for(lambda: all(len(m.received) == 2000 for m in members))
            for m in members:
                for o in members:
                    if o is not m:
                        got = [x.index for x in m.received if x.from_ == o.id]
                        self.assertEqual(got, list(range(1000)))

        return _d(run())

    def test_reconnect_after_restart(self) -> Deferred[None]:
        """When a peer restarts on the same port, the stream comes back and messages flow."""

        async def run() -> None:
            a, b = await self.members(1, 2)
            await wait_for(lambda: a.transport.is_active(2))
            await b.stop()
            await wait_for(lambda: not a.transport.is_active(2))
            self.assertIn(2, a.unreachable)
            a.transport.send([app(2, 1, 1)])
            await sleep(0.3)
            b2 = LoopbackMember(2, self.mktemp(), port=b.port)
            self.addCleanup(lambda: _d(b2.stop()))
            await b2.start()
            b2.transport.add_peer(1, [a.url])
            await wait_for(lambda: a.transport.is_active(2))
            a.transport.send([app(2, 1, 2)])
            await wait_for(lambda: len(b2.received) == 2)
            self.assertEqual([m.index for m in b2.received], [1, 2])

        return _d(run())

    def test_snapshot_of_real_backend(self) -> Deferred[None]:
        """A backend snapshot (several MB) arrives byte for byte and restores into a database."""

        async def run() -> None:
            a, b = await self.members(1, 2)
            be = Backend(os.path.join(self.mktemp(), "db"))
            self.addCleanup(be.close)
            for i in range(6000):
                be.batch_tx.put(b"key", b"k%08d" % i, os.urandom(1000))
            expected = b"".join(be.snapshot().chunks())
            a.db = be.snapshot()
            message = raft_pb2.Message(
                type=raft_pb2.MsgSnap,
                to=2,
                from_=1,
                term=2,
                snapshot=raft_pb2.Snapshot(metadata=raft_pb2.SnapshotMetadata(index=77, term=2)),
            )
            await wait_for(lambda: a.transport.is_active(2))
            a.transport.send([message])
            await wait_for(lambda: a.snapshot_status == [(2, True)])
            got, path = b.snapshots[0]
            self.assertEqual(got, message)
            self.assertTrue(path.endswith("000000000000004d.snap.db"))
            with open(path, "rb") as f:
                self.assertEqual(f.read(), expected)
            self.assertGreater(len(expected), 6_000_000)
            target = os.path.join(self.mktemp(), "restored")
            os.makedirs(os.path.dirname(target))
            with open(path, "rb") as f:
                restore_snapshot(target, iter(lambda: f.read(1 << 20), b""), map_size=be.map_size)
            restored = Backend(target)
            self.addCleanup(restored.close)
            self.assertEqual(restored.hash(), be.hash())

        return _d(run())

    def test_members_on_the_raft_port(self) -> Deferred[None]:
        """The port that carries raft streams also answers HTTP."""

        async def run() -> None:
            (a,) = await self.members(1)
            pool = HTTPConnectionPool(reactor, persistent=False)
            response = await treq.get(a.url + "/version", pool=pool)
            self.assertEqual(response.code, 200)
            await treq.content(response)
            response = await treq.get(a.url + "/members", pool=pool)
            self.assertEqual(await treq.json_content(response), [])

        return _d(run())
