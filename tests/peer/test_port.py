"""Tests for etcd_twisted.peer.port: raft links and HTTP on one port."""

from __future__ import annotations

from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted.peer.port import PeerPortFactory, is_raft


class Recorder(Protocol):
    def __init__(self) -> None:
        self.received = b""

    def dataReceived(self, data: bytes) -> None:
        self.received += data


class PortTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.raft: list[Recorder] = []
        self.http: list[Recorder] = []
        self.clock = Clock()
        self.factory = PeerPortFactory(
            Factory.forProtocol(lambda: self._make(self.raft)),
            Factory.forProtocol(lambda: self._make(self.http)),
            self.clock,
            timeout=5,
        )

    def _make(self, into: list[Recorder]) -> Recorder:
        proto = Recorder()
        into.append(proto)
        return proto

    def connect(self, data: bytes) -> StringTransport:
        proto = self.factory.buildProtocol(None)
        transport = StringTransport()
        proto.makeConnection(transport)
        for i in range(len(data)):
            proto.dataReceived(data[i : i + 1])
        return transport

    def test_classify(self) -> None:
        """Raft request lines are recognised; prefixes wait; anything else is HTTP."""
        self.assertTrue(is_raft(b"POST /raft/stream HTTP/1.1"))
        self.assertTrue(is_raft(b"POST /raft/snapshot "))
        self.assertIsNone(is_raft(b"POST /raft/s"))
        self.assertFalse(is_raft(b"GET /version"))
        self.assertFalse(is_raft(b"POST /raft/streamx"))

    def test_raft_and_http_routed_byte_by_byte(self) -> None:
        """Each connection reaches its protocol with every byte, fed one at a time."""
        self.connect(b"POST /raft/stream HTTP/1.1\r\n\r\n")
        self.connect(b"GET /members HTTP/1.1\r\n\r\n")
        self.assertEqual([p.received for p in self.raft], [b"POST /raft/stream HTTP/1.1\r\n\r\n"])
        self.assertEqual([p.received for p in self.http], [b"GET /members HTTP/1.1\r\n\r\n"])

    def test_stalled_connection_times_out(self) -> None:
        """A connection that never says enough is dropped after the timeout."""
        transport = self.connect(b"POST /ra")
        self.clock.advance(5)
        self.assertTrue(transport.disconnecting)
