"""Connections that stall: before routing, before the SETTINGS, and without calls."""

from __future__ import annotations

from h2.errors import ErrorCodes
from twisted.internet.protocol import Factory
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from etcd_twisted.grpc.protocol import DEFAULT_IDLE_TIMEOUT, GrpcFactory
from etcd_twisted.sniff import DEFAULT_SNIFF_TIMEOUT, SniffingFactory
from tests.grpc.h2client import PEER, HarnessCase, fallback_twin
from tests.grpc.test_protocol import echo_registry
from tests.hostile.wire import PREFACE, START, RawConnection


class ClientPortTimeoutTests(HarnessCase):
    def connect(self) -> tuple[Clock, object, StringTransport]:
        """A connection to a client port (sniffing, then gRPC) on a fake clock."""
        clock = Clock()
        grpc = GrpcFactory(echo_registry(), clock, fast_path=self.fast_path)
        port = SniffingFactory(grpc, Factory(), clock)
        proto = port.buildProtocol(PEER)
        transport = StringTransport(peerAddress=PEER)
        proto.makeConnection(transport)
        return clock, proto, transport

    def test_silent_before_routing(self) -> None:
        """Nothing sent: aborted after the sniffing timeout."""
        clock, _, transport = self.connect()
        clock.advance(DEFAULT_SNIFF_TIMEOUT - 0.1)
        self.assertFalse(transport.disconnecting or transport.disconnected)
        clock.advance(0.1)
        self.assertTrue(transport.disconnecting or transport.disconnected)

    def test_silent_after_preface(self) -> None:
        """The preface and then nothing: aborted after the preface timeout."""
        clock, proto, transport = self.connect()
        proto.dataReceived(PREFACE)
        clock.advance(9.9)
        self.assertFalse(transport.disconnecting or transport.disconnected)
        clock.advance(0.1)
        self.assertTrue(transport.disconnecting or transport.disconnected)

    def test_idle_after_settings(self) -> None:
        """The preface and SETTINGS, then no call: GOAWAY and closed after the idle timeout."""
        c = RawConnection(self.fast_path)
        c.send(START)
        c.clock.advance(DEFAULT_IDLE_TIMEOUT - 1)
        self.assertFalse(c.closing)
        c.clock.advance(1)
        self.assertIn(("GOAWAY", 0, ErrorCodes.NO_ERROR), c.frames())
        self.assertTrue(c.closing)

    def test_open_call_is_not_idle(self) -> None:
        """A connection with a call open (a watch, say) is kept however long it is quiet."""
        c = RawConnection(self.fast_path)
        c.send(START + c.headers(1))
        c.clock.advance(DEFAULT_IDLE_TIMEOUT * 10)
        self.assertFalse(c.closing)

    def test_idle_counts_from_the_last_call(self) -> None:
        """The idle time starts again when the last call ends."""
        c = RawConnection(self.fast_path)
        c.send(START)
        c.clock.advance(DEFAULT_IDLE_TIMEOUT - 10)
        c.send(c.headers(1) + c.data(1, c.echo_body()))
        c.clock.advance(DEFAULT_IDLE_TIMEOUT - 1)
        self.assertFalse(c.closing)
        c.clock.advance(1)
        self.assertTrue(c.closing)


ClientPortTimeoutFallbackTests = fallback_twin(ClientPortTimeoutTests)
