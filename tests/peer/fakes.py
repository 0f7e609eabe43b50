"""Test doubles for the peer transport: an in-memory network, recorders, a fake database."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

from twisted.internet.defer import Deferred, fail, maybeDeferred, succeed
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.test import iosim
from zope.interface import implementer

from etcd_twisted._pb import raft_pb2
from etcd_twisted.peer.http import PeerApi
from etcd_twisted.peer.link import Timing
from etcd_twisted.peer.transport import Transport

CLUSTER = 0xC1
TIMING = Timing(ping_interval=1.0, idle_timeout=5.0)


def url(member_id: int) -> str:
    return f"http://10.0.0.{member_id}:2380"


class Network:
    """Peer URLs served by factories; connections are iosim pumps flushed by ``run``."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.servers: dict[str, Factory] = {}
        self.pumps: list[iosim.IOPump] = []
        self.attempts: list[tuple[float, str]] = []

    def endpoint(self, peer_url: str) -> IStreamClientEndpoint:
        return _Endpoint(self, peer_url)

    def run(self) -> None:
        """Move bytes and zero-delay calls until nothing changes."""
        for _ in range(1000):
            self.clock.advance(0)
            moved = False
            for pump in list(self.pumps):
                moved = pump.pump(advanceClock=False) or moved
            self.pumps = [
                p for p in self.pumps if not (p.clientIO.disconnected and p.serverIO.disconnected)
            ]
            if not moved and not any(c.getTime() <= self.clock.seconds() for c in self.clock.calls):
                return
        raise AssertionError("network never settled")

    def advance(self, seconds: float, step: float = 0.05) -> None:
        """Let ``seconds`` pass in small steps, running the network at each."""
        start = self.clock.seconds()
        steps = max(1, round(seconds / step))
        for i in range(1, steps + 1):
            self.clock.advance(start + seconds * i / steps - self.clock.seconds())
            self.run()

    def cut(self, peer_url: str) -> None:
        """Stop serving ``peer_url`` and drop its connections (a crashed member)."""
        factory = self.servers.pop(peer_url)
        for pump in self.pumps:
            if getattr(pump, "factory", None) is factory:
                pump.serverIO.loseConnection()
                pump.clientIO.loseConnection()
        self.run()


@implementer(IStreamClientEndpoint)
class _Endpoint:
    def __init__(self, network: Network, peer_url: str) -> None:
        self._network = network
        self._url = peer_url

    def connect(self, factory: Factory) -> Deferred[Protocol]:
        network = self._network
        network.attempts.append((network.clock.seconds(), self._url))
        server_factory = network.servers.get(self._url)
        if server_factory is None:
            return fail(ConnectionRefusedError())
        client = factory.buildProtocol(None)
        server = server_factory.buildProtocol(None)
        pump = iosim.connect(
            server,
            iosim.FakeTransport(server, isServer=True),
            client,
            iosim.FakeTransport(client, isServer=False),
            greet=False,
        )
        pump.factory = server_factory
        network.pumps.append(pump)
        return succeed(client)


class ManualThreads:
    """A ``run_in_thread`` whose calls wait until the test runs them."""

    def __init__(self) -> None:
        self.pending: list[tuple[Callable[..., Any], tuple[Any, ...], Deferred[Any]]] = []

    def __call__(self, f: Callable[..., Any], *args: Any) -> Deferred[Any]:
        d: Deferred[Any] = Deferred()
        self.pending.append((f, args, d))
        return d

    def run_one(self) -> None:
        f, args, d = self.pending.pop(0)
        maybeDeferred(f, *args).chainDeferred(d)


class FakeDb:
    """A database stream of fixed chunks that records whether it was closed."""

    def __init__(self, chunks: list[bytes]) -> None:
        self._chunks = chunks
        self.closed = False

    def chunks(self) -> Iterator[bytes]:
        yield from self._chunks

    def close(self) -> None:
        self.closed = True


class Member:
    """A transport plus everything it reported, on a shared fake network."""

    def __init__(
        self,
        network: Network,
        member_id: int,
        snapshot_dir: str,
        cluster_id: int = CLUSTER,
        **kwargs: Any,
    ) -> None:
        self.id = member_id
        self.received: list[raft_pb2.Message] = []
        self.unreachable: list[int] = []
        self.snapshot_status: list[tuple[int, bool]] = []
        self.snapshots: list[tuple[raft_pb2.Message, bytes]] = []
        self.round_trips: list[tuple[int, float]] = []
        self.removed_calls = 0
        self.db = FakeDb([b"db"])
        self.transport = Transport(
            network.clock,
            member_id,
            cluster_id,
            on_message=self.received.append,
            on_unreachable=self.unreachable.append,
            on_snapshot_status=lambda i, ok: self.snapshot_status.append((i, ok)),
            on_snapshot=self._snapshot,
            open_snapshot=lambda: self.db,
            snapshot_dir=snapshot_dir,
            on_round_trip=lambda i, s: self.round_trips.append((i, s)),
            on_removed=self._removed,
            endpoint_for=network.endpoint,
            timing=TIMING,
            **{"run_in_thread": lambda f, *a: maybeDeferred(f, *a), **kwargs},
        )
        network.servers[url(member_id)] = self.transport.server_factory(PeerApi().site())

    def _snapshot(self, message: raft_pb2.Message, path: str) -> None:
        with open(path, "rb") as f:
            self.snapshots.append((message, f.read()))
        os.unlink(path)

    def _removed(self) -> None:
        self.removed_calls += 1


def app(to: int, frm: int, index: int, payload: bytes = b"x" * 256) -> raft_pb2.Message:
    """A MsgApp with one entry."""
    return raft_pb2.Message(
        type=raft_pb2.MsgApp,
        to=to,
        from_=frm,
        term=1,
        index=index,
        entries=[raft_pb2.Entry(term=1, index=index + 1, data=payload)],
    )
