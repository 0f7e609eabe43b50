"""Tests for ``etcd_twisted.testing.proxy``: pass, delay, drop, blackhole and bounded buffers on loopback."""

from __future__ import annotations

import random
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.protocol import ClientFactory, Factory, Protocol
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from etcd_twisted.testing.proxy import IN, OUT, PeerProxy, Rule

HEAD = (
    b"POST /raft/stream HTTP/1.1\r\nHost: x\r\nUpgrade: etcd-twisted-raft/1\r\n"
    b"X-Server-From: %x\r\nX-Raft-To: 2\r\n\r\n"
)


class Echo(Protocol):
    """The member behind the proxy: echoes everything back."""

    def dataReceived(self, data: bytes) -> None:
        self.factory.received += len(data)  # type: ignore[attr-defined]
        self.transport.write(data)


class Client(Protocol):
    """A dialer that collects what comes back and notes when it is closed."""

    def __init__(self) -> None:
        self.data = b""
        self.lost: Deferred[None] = Deferred()
        self.arrivals: list[float] = []

    def dataReceived(self, data: bytes) -> None:
        self.data += data
        self.arrivals.append(reactor.seconds())

    def connectionLost(self, reason: Any = None) -> None:
        self.lost.callback(None)


def sleep(seconds: float) -> Deferred[None]:
    return deferLater(reactor, seconds, lambda: None)


class ProxyTests(TestCase):
    timeout = 30

    def setUp(self) -> None:
        self.echo_factory = Factory.forProtocol(Echo)
        self.echo_factory.received = 0  # type: ignore[attr-defined]
        self.server = reactor.listenTCP(0, self.echo_factory, interface="127.0.0.1")
        self.addCleanup(self.server.stopListening)
        self.proxy = PeerProxy(reactor, self.server.getHost().port, random.Random(7))
        self.port = self.proxy.listen()
        self.addCleanup(self.proxy.stop)

    async def dial(self, source: int = 1) -> Client:
        client = Client()
        connected: Deferred[Client] = Deferred()

        class F(ClientFactory):
            def buildProtocol(self, addr: Any) -> Protocol:
                reactor.callLater(0, connected.callback, client)
                return client

        reactor.connectTCP("127.0.0.1", self.port, F())
        await connected
        self.addCleanup(lambda: client.transport.abortConnection() or client.lost)
        client.transport.write(HEAD % source)
        return client

    async def wait_for(self, client: Client, size: int, timeout: float = 5.0) -> None:
        for _ in range(int(timeout / 0.01)):
            if len(client.data) >= size:
                return
            await sleep(0.01)
        self.fail(f"only {len(client.data)} of {size} bytes came back")

    async def test_pass(self) -> None:
        """Without rules the bytes go both ways unchanged, head included."""
        client = await self.dial()
        client.transport.write(b"hello")
        await self.wait_for(client, len(HEAD % 1) + 5)
        self.assertEqual(client.data, HEAD % 1 + b"hello")

    async def test_delay(self) -> None:
        """A 0.2 s ± 0.05 delay on "in" holds every chunk back that long, in order."""
        self.proxy.set_rule(Rule(delay=0.2, jitter=0.05), (IN,))
        client = await self.dial()
        started = reactor.seconds()
        for i in range(20):
            client.transport.write(b"%02d" % i)
            await sleep(0.005)
        expected = HEAD % 1 + b"".join(b"%02d" % i for i in range(20))
        await self.wait_for(client, len(expected))
        self.assertEqual(client.data, expected)
        self.assertGreaterEqual(client.arrivals[0] - started, 0.14)
        self.assertGreater(self.proxy.stats["delayed_chunks"], 0)

    async def test_drop_resets(self) -> None:
        """Dropping every chunk resets the connection at the first one."""
        self.proxy.set_rule(Rule(drop=1.0), (OUT,))
        client = await self.dial()
        await client.lost
        self.assertEqual(client.data, b"")
        self.assertEqual(self.proxy.stats["dropped_chunks"], 1)

    async def test_blackhole_then_heal(self) -> None:
        """A blackholed dialer gets nothing through; lifting the hole resets its connection."""
        self.proxy.set_rule(Rule(blackhole=True), source=5)
        blocked = await self.dial(5)
        other = await self.dial(6)
        blocked.transport.write(b"lost")
        await self.wait_for(other, len(HEAD % 6))
        await sleep(0.2)
        self.assertEqual(blocked.data, b"")
        self.assertEqual(self.echo_factory.received, len(HEAD % 6))  # type: ignore[attr-defined]
        self.assertGreater(self.proxy.stats["blackholed_bytes"], 0)
        self.proxy.clear()
        await blocked.lost
        again = await self.dial(5)
        await self.wait_for(again, len(HEAD % 5))

    async def test_blackhole_one_direction(self) -> None:
        """Blackholing only "out" lets the member receive but nothing comes back."""
        self.proxy.set_rule(Rule(blackhole=True), (OUT,))
        client = await self.dial()
        for _ in range(100):
            if self.echo_factory.received:  # type: ignore[attr-defined]
                break
            await sleep(0.01)
        self.assertEqual(self.echo_factory.received, len(HEAD % 1))  # type: ignore[attr-defined]
        await sleep(0.1)
        self.assertEqual(client.data, b"")

    async def test_bounded_buffer(self) -> None:
        """A delayed direction stops reading once its queue is over the bound."""
        self.proxy.max_buffer = 64 << 10
        self.proxy.set_rule(Rule(delay=0.3), (IN,))
        client = await self.dial()
        chunk = b"x" * (16 << 10)
        total = len(HEAD % 1) + 64 * len(chunk)
        for _ in range(64):
            client.transport.write(chunk)
        await self.wait_for(client, total, timeout=20)
        self.assertEqual(len(client.data), total)
        (conn,) = self.proxy.connections
        # Bounded by the limit plus what one read can bring in.
        self.assertLess(conn.pipes[IN].high_water, (64 << 10) + (256 << 10))
