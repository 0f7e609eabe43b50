"""Tests for etcd_twisted.listen: which ALPN protocol a TLS client gets."""

from __future__ import annotations

from OpenSSL import SSL
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.ssl import CertificateOptions
from twisted.internet.testing import StringTransport
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted.listen import tls_options
from tests.peer.test_tls import self_signed


def negotiate(options: CertificateOptions, offered: list[bytes]) -> bytes | None:
    """Handshake in memory, through Twisted's TLS protocol, with a client offering
    ``offered``; the protocol the server chose."""
    server = TLSMemoryBIOFactory(options, False, Factory.forProtocol(Protocol)).buildProtocol(None)
    wire = StringTransport()
    server.makeConnection(wire)
    context = SSL.Context(SSL.TLS_METHOD)
    context.set_alpn_protos(offered)
    client = SSL.Connection(context, None)
    client.set_connect_state()
    for _ in range(10):
        try:
            client.do_handshake()
        except SSL.WantReadError:
            pass
        try:
            server.dataReceived(client.bio_read(65536))
        except SSL.WantReadError:
            pass
        if wire.value():
            client.bio_write(wire.value())
            wire.clear()
    return server.negotiatedProtocol


class AlpnTests(SynchronousTestCase):
    def setUp(self) -> None:
        cert, key = self_signed(self.mktemp())
        self.options = tls_options(cert, key)

    def test_grpc_clients_get_h2(self) -> None:
        """A client offering only h2 (grpc-go, etcdctl) or grpc-exp and h2 (grpcio) gets h2."""
        self.assertEqual(negotiate(self.options, [b"h2"]), b"h2")
        self.assertEqual(negotiate(self.options, [b"grpc-exp", b"h2"]), b"h2")

    def test_browsers_get_http1(self) -> None:
        """A client that also offers http/1.1 (a browser, curl) gets HTTP/1.1, whose
        handlers serve the JSON gateway and the dashboard."""
        self.assertEqual(negotiate(self.options, [b"h2", b"http/1.1"]), b"http/1.1")
        self.assertEqual(negotiate(self.options, [b"http/1.1"]), b"http/1.1")
