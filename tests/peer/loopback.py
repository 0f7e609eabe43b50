"""Real transports on 127.0.0.1 ports, for loopback tests and the throughput benchmark."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from twisted.internet import reactor as global_reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.task import deferLater

from etcd_twisted._pb import raft_pb2
from etcd_twisted.listen import ListeningService
from etcd_twisted.peer.http import PeerApi
from etcd_twisted.peer.snapshot import DbSnapshot
from etcd_twisted.peer.transport import Transport

CLUSTER = 0x5EED
reactor: Any = global_reactor


class LoopbackMember:
    """A transport listening on a loopback port, recording what it receives."""

    def __init__(self, member_id: int, snapshot_dir: str, port: int = 0, **kwargs: Any) -> None:
        self.id = member_id
        self.received: list[raft_pb2.Message] = []
        self.unreachable: list[int] = []
        self.snapshot_status: list[tuple[int, bool]] = []
        self.snapshots: list[tuple[raft_pb2.Message, str]] = []
        self.db: DbSnapshot | None = None
        self.transport = Transport(
            reactor,
            member_id,
            CLUSTER,
            on_message=kwargs.pop("on_message", self.received.append),
            on_unreachable=self.unreachable.append,
            on_snapshot_status=lambda i, ok: self.snapshot_status.append((i, ok)),
            on_snapshot=lambda m, path: self.snapshots.append((m, path)),
            open_snapshot=self._open_snapshot,
            snapshot_dir=snapshot_dir,
            **kwargs,
        )
        self.listening = ListeningService(
            "peer",
            self.transport.server_factory(PeerApi().site()),
            [TCP4ServerEndpoint(reactor, port, interface="127.0.0.1")],
        )

    def _open_snapshot(self) -> DbSnapshot:
        assert self.db is not None
        return self.db

    async def start(self) -> int:
        """Listen, start the transport; return the port."""
        self.listening.startService()
        ports = await self.listening.listening()
        self.port: int = ports[0].getHost().port
        self.url = f"http://127.0.0.1:{self.port}"
        self.transport.startService()
        return self.port

    async def stop(self) -> None:
        await self.transport.stopService()
        await self.listening.stopService()


async def start_members(ids: list[int], snapshot_dir: str, **kwargs: Any) -> list[LoopbackMember]:
    """Members that all know each other."""
    members = [LoopbackMember(i, os.path.join(snapshot_dir, str(i)), **kwargs) for i in ids]
    for m in members:
        await m.start()
    for m in members:
        for other in members:
            m.transport.add_peer(other.id, [other.url])
    return members


async def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll ``condition`` every 5 ms until it holds; fail after ``timeout`` seconds."""
    deadline = reactor.seconds() + timeout
    while not condition():
        if reactor.seconds() > deadline:
            raise AssertionError("condition not met in time")
        await sleep(0.005)


def sleep(seconds: float) -> Deferred[None]:
    return deferLater(reactor, seconds, lambda: None)
