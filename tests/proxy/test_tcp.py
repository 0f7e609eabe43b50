"""Tests for etcd_twisted.proxy.tcp: picking, failover, re-activation and splicing."""

import random

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted.proxy.tcp import Remote, Splice, TcpProxy


class FakeNetwork:
    """Connects to the remotes listed as up, over StringTransports; refuses the others."""

    def __init__(self, up: set[str]) -> None:
        self.up = up
        self.attempts: list[str] = []
        self.connected: list[Protocol] = []

    def connect(self, remote: Remote, factory: Factory) -> Deferred[Protocol]:
        self.attempts.append(remote.addr)
        if remote.addr not in self.up:
            return fail(ConnectionRefusedError())
        protocol = factory.buildProtocol(None)
        protocol.makeConnection(StringTransport())
        self.connected.append(protocol)
        return succeed(protocol)


def _proxy(remotes: list[Remote], up: set[str], clock: Clock | None = None) -> tuple:
    network = FakeNetwork(up)
    proxy = TcpProxy(remotes, network.connect, clock or Clock(), 60.0, random.Random(1))
    return proxy, network


def _client(proxy: TcpProxy) -> tuple[Splice, StringTransport]:
    splice = Splice(proxy)
    transport = StringTransport()
    splice.makeConnection(transport)
    return splice, transport


class PickTests(SynchronousTestCase):
    def test_round_robin(self) -> None:
        """Without weights, connections go round the active endpoints in order."""
        proxy, _ = _proxy([Remote("a", 1), Remote("b", 1), Remote("c", 1)], set())
        proxy.remotes[1].active = False
        picked = [proxy.pick().target for _ in range(4)]  # type: ignore[union-attr]
        self.assertEqual(picked, ["a", "c", "a", "c"])

    def test_priority_class(self) -> None:
        """Only the lowest priority class with an active endpoint is used."""
        proxy, _ = _proxy([Remote("low", 1, priority=0), Remote("high", 1, priority=5)], set())
        self.assertEqual({proxy.pick().target for _ in range(20)}, {"low"})  # type: ignore[union-attr]
        proxy.remotes[0].active = False
        self.assertEqual(proxy.pick().target, "high")  # type: ignore[union-attr]

    def test_weights(self) -> None:
        """Weighted endpoints are picked in proportion to their weights."""
        proxy, _ = _proxy([Remote("a", 1, weight=1), Remote("b", 1, weight=3)], set())
        picks = [proxy.pick().target for _ in range(4000)]  # type: ignore[union-attr]
        self.assertTrue(0.71 < picks.count("b") / 4000 < 0.79, picks.count("b"))

    def test_none_active(self) -> None:
        """With every endpoint inactive there is nothing to pick."""
        proxy, _ = _proxy([Remote("a", 1)], set())
        proxy.remotes[0].active = False
        self.assertIsNone(proxy.pick())


class ServeTests(SynchronousTestCase):
    def test_relay_both_ways(self) -> None:
        """Bytes sent before the endpoint connected are delivered, then relayed both ways."""
        proxy, network = _proxy([Remote("a", 1)], {"a:1"})
        splice = Splice(proxy)
        client = StringTransport()
        # Connect lazily to see the early bytes buffered.
        pending: Deferred[Protocol] = Deferred()
        proxy._connect = lambda remote, factory: pending.addCallback(
            lambda _: network.connect(remote, factory)
        )
        splice.makeConnection(client)
        splice.dataReceived(b"early")
        pending.callback(None)
        outbound = network.connected[0]
        self.assertEqual(outbound.transport.value(), b"early")
        outbound.dataReceived(b"reply")
        splice.dataReceived(b"more")
        self.assertEqual(client.value(), b"reply")
        self.assertEqual(outbound.transport.value(), b"earlymore")

    def test_failover_deactivates(self) -> None:
        """A refused endpoint is set inactive and the next one is tried at once."""
        proxy, network = _proxy([Remote("a", 1), Remote("b", 1)], {"b:1"})
        _client(proxy)
        self.assertEqual(network.attempts, ["a:1", "b:1"])
        self.assertFalse(proxy.remotes[0].active)
        _client(proxy)
        self.assertEqual(network.attempts[2:], ["b:1"])

    def test_all_down_closes(self) -> None:
        """With no endpoint reachable the client's connection is closed."""
        proxy, _ = _proxy([Remote("a", 1)], set())
        _, transport = _client(proxy)
        self.assertTrue(transport.disconnecting)

    def test_close_propagates(self) -> None:
        """Either side closing closes the other."""
        proxy, network = _proxy([Remote("a", 1)], {"a:1"})
        splice, client = _client(proxy)
        network.connected[0].connectionLost(None)
        self.assertTrue(client.disconnecting)
        splice2, _ = _client(proxy)
        splice2.connectionLost(None)
        self.assertTrue(network.connected[1].transport.disconnecting)


class MonitorTests(SynchronousTestCase):
    def test_reactivated_after_retry_delay(self) -> None:
        """An inactive endpoint is probed every interval and used again once it answers."""
        clock = Clock()
        proxy, network = _proxy([Remote("a", 1), Remote("b", 1)], {"b:1"}, clock)
        proxy.start()
        _client(proxy)
        self.assertFalse(proxy.remotes[0].active)
        clock.advance(60)
        self.assertFalse(proxy.remotes[0].active)
        network.up.add("a:1")
        clock.advance(59)
        self.assertFalse(proxy.remotes[0].active)
        clock.advance(1)
        self.assertTrue(proxy.remotes[0].active)
        proxy.stop()
