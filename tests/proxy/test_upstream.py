"""Tests for etcd_twisted.proxy.upstream: one connection at a time, failover, retries."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted.grpc import GrpcError, StatusCode
from etcd_twisted.proxy.upstream import Upstream


class FakeConnection:
    """A member's connection: answers with its name, or fails calls when it is lost."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.usable = True
        self.when_lost: Deferred[None] = Deferred()
        self.pending: list[Deferred[bytes]] = []

    def unary(self, path: str, request: bytes, metadata: Any, timeout: Any) -> Deferred[bytes]:
        d: Deferred[bytes] = Deferred()
        self.pending.append(d)
        return d

    def answer_all(self) -> None:
        for d in self.pending:
            d.callback(self.name.encode())
        self.pending = []

    def lose(self) -> None:
        self.usable = False
        for d in self.pending:
            d.errback(GrpcError(StatusCode.UNAVAILABLE, "transport is closing"))
        self.pending = []
        self.when_lost.callback(None)

    def close(self) -> None:
        self.lose()


class Network:
    def __init__(self, up: set[str]) -> None:
        self.up = up
        self.connections: dict[str, FakeConnection] = {}
        self.dials: list[str] = []

    def dial(self, host: str, port: int) -> Deferred[Any]:
        self.dials.append(host)
        if host not in self.up:
            return fail(ConnectionRefusedError())
        self.connections[host] = FakeConnection(host)
        return succeed(self.connections[host])


class UpstreamTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.network = Network({"a", "b", "c"})
        self.upstream = Upstream(
            [("a", 1), ("b", 1), ("c", 1)], self.network.dial, self.clock, give_up_after=2
        )

    def call(self, retry: bool = True) -> list[Any]:
        box: list[Any] = []
        Deferred.fromCoroutine(self.upstream.unary("/p", b"", retry=retry)).addBoth(box.append)
        return box

    def test_one_connection_shared(self) -> None:
        """Calls share the connection to the first member."""
        boxes = [self.call() for _ in range(3)]
        self.assertEqual(self.network.dials, ["a"])
        self.network.connections["a"].answer_all()
        self.assertEqual([box[0] for box in boxes], [b"a"] * 3)

    def test_refused_member_skipped(self) -> None:
        """A member that refuses is skipped for the next one."""
        self.network.up.discard("a")
        box = self.call()
        self.network.connections["b"].answer_all()
        self.assertEqual((self.network.dials, box), (["a", "b"], [b"b"]))

    def test_read_retried_after_loss(self) -> None:
        """A retryable call whose connection dies is sent again to the next member."""
        box = self.call(retry=True)
        self.network.connections["a"].lose()
        self.assertEqual(box, [])
        self.network.connections["b"].answer_all()
        self.assertEqual(box, [b"b"])

    def test_write_not_retried(self) -> None:
        """A write whose connection dies fails UNAVAILABLE; the next call goes elsewhere."""
        box = self.call(retry=False)
        self.network.connections["a"].lose()
        self.assertEqual(box[0].value.code, StatusCode.UNAVAILABLE)
        after = self.call()
        self.network.connections["b"].answer_all()
        self.assertEqual(after, [b"b"])

    def test_gives_up_when_none_reachable(self) -> None:
        """With every member down, calls fail UNAVAILABLE after the give-up time."""
        self.network.up.clear()
        box = self.call()
        self.clock.advance(1)
        self.assertEqual(box, [])
        self.clock.pump([0.2] * 10)
        self.assertEqual(box[0].value.code, StatusCode.UNAVAILABLE)
