"""Tests for etcd_twisted.sniff: routing a connection by its first bytes."""

from twisted.internet.address import IPv4Address
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted.sniff import HTTP2_PREFACE, SniffingFactory, classify

ADDR = IPv4Address("TCP", "127.0.0.1", 50000)


class Recorder(Protocol):
    def __init__(self) -> None:
        self.received = b""
        self.lost = False

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason: object = None) -> None:
        self.lost = True


class RecordingFactory(Factory):
    def __init__(self) -> None:
        self.built: list[Recorder] = []

    def buildProtocol(self, addr: object) -> Recorder:
        proto = Recorder()
        self.built.append(proto)
        return proto


class ClassifyTests(SynchronousTestCase):
    def test_preface_prefixes_wait(self) -> None:
        """Every proper prefix of the HTTP/2 preface asks for more bytes."""
        for n in range(len(HTTP2_PREFACE)):
            self.assertIsNone(classify(HTTP2_PREFACE[:n]))
        self.assertEqual(classify(HTTP2_PREFACE), "h2")

    def test_http1_methods(self) -> None:
        """A method token and a space is HTTP/1, including upper-case ones starting with P."""
        for line in (
            b"GET / HTTP/1.1",
            b"POST /v3/kv/put",
            b"PUT ",
            b"PRI / HTTP/1.1",
            b"OPTIONS *",
        ):
            self.assertEqual(classify(line), "http", line)

    def test_garbage(self) -> None:
        """Binary, empty or over-long first words are garbage."""
        for data in (b"\x16\x03\x01", b"G\xffT / HTTP/1.1", b" GET", b"A" * 17, b"\x00"):
            self.assertEqual(classify(data), "garbage", data)

    def test_any_token_method_is_http(self) -> None:
        """Lower-case and odd token methods are HTTP/1, which Go's server answers with 405."""
        for line in (b"get / HTTP/1.1", b"post /v3/kv/range", b"M-SEARCH *", b"BREW "):
            self.assertEqual(classify(line), "http", line)


class SniffingProtocolTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.grpc = RecordingFactory()
        self.http = RecordingFactory()
        self.factory = SniffingFactory(self.grpc, self.http, self.clock, timeout=5)

    def connect(self) -> tuple[object, StringTransport]:
        proto = self.factory.buildProtocol(ADDR)
        transport = StringTransport()
        proto.makeConnection(transport)
        return proto, transport

    def test_h2_byte_by_byte(self) -> None:
        """The preface fed one byte at a time reaches the gRPC protocol whole, then streams on."""
        proto, transport = self.connect()
        payload = HTTP2_PREFACE + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
        for i in range(len(payload)):
            proto.dataReceived(payload[i : i + 1])
        self.assertEqual(len(self.grpc.built), 1)
        self.assertEqual(self.http.built, [])
        inner = self.grpc.built[0]
        self.assertEqual(inner.received, payload)
        self.assertIs(inner.transport, transport)

    def test_http_replays_buffer(self) -> None:
        """An HTTP/1 request split mid-method reaches the HTTP protocol with every byte."""
        proto, _ = self.connect()
        proto.dataReceived(b"PO")
        proto.dataReceived(b"ST /v3/kv/put HTTP/1.1\r\n")
        proto.dataReceived(b"Host: x\r\n\r\n")
        inner = self.http.built[0]
        self.assertEqual(inner.received, b"POST /v3/kv/put HTTP/1.1\r\nHost: x\r\n\r\n")

    def test_connection_lost_forwarded(self) -> None:
        """Losing the connection after routing tells the inner protocol."""
        proto, _ = self.connect()
        proto.dataReceived(b"GET / HTTP/1.1\r\n")
        proto.connectionLost(None)
        self.assertTrue(self.http.built[0].lost)

    def test_garbage_closes(self) -> None:
        """Garbage aborts the connection and builds nothing."""
        proto, transport = self.connect()
        proto.dataReceived(b"\x16\x03\x01\x02\x00")
        self.assertTrue(transport.disconnecting)
        self.assertEqual((self.grpc.built, self.http.built), ([], []))
        self.assertEqual(self.factory.garbage_connections, 1)

    def test_stalled_prefix_times_out(self) -> None:
        """A client that sends part of the preface and stalls is dropped after the timeout."""
        proto, transport = self.connect()
        proto.dataReceived(HTTP2_PREFACE[:10])
        self.clock.advance(4.9)
        self.assertFalse(transport.disconnecting)
        self.clock.advance(0.2)
        self.assertTrue(transport.disconnecting)
        self.assertEqual(self.factory.timed_out_connections, 1)

    def test_silent_connection_times_out(self) -> None:
        """A connection that never sends anything is dropped after the timeout."""
        _, transport = self.connect()
        self.clock.advance(5)
        self.assertTrue(transport.disconnecting)

    def test_routed_connection_has_no_timeout(self) -> None:
        """Once routed, the sniffing timeout no longer applies."""
        proto, transport = self.connect()
        proto.dataReceived(HTTP2_PREFACE)
        self.clock.advance(100)
        self.assertFalse(transport.disconnecting)
        self.assertEqual(self.clock.getDelayedCalls(), [])
