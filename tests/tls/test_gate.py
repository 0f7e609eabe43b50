"""The post-handshake checks: CRL and the peer certificate's SAN (tls/gate.py)."""

from __future__ import annotations

from cryptography import x509
from OpenSSL import SSL, crypto
from twisted.internet.address import IPv4Address
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import StringTransport
from twisted.logger import capturedLogs, formatEvent
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted.tls.gate import (
    GateFactory,
    RejectedError,
    check_crl,
    check_san,
    has_checks,
    run_now,
)
from etcd_twisted.tls.info import TLSInfo
from tests.support.certs import CA, Leaf


def load(leaf: Leaf) -> x509.Certificate:
    with open(leaf.cert_file, "rb") as f:
        return x509.load_pem_x509_certificate(f.read())


class TLSTransport(StringTransport):
    """A StringTransport that presents a client certificate, as a TLS transport does."""

    def __init__(self, cert: x509.Certificate | None, host: str) -> None:
        super().__init__(peerAddress=IPv4Address("TCP", host, 50000))
        self.cert = cert

    def getPeerCertificate(self) -> crypto.X509 | None:  # noqa: N802
        return None if self.cert is None else crypto.X509.from_cryptography(self.cert)


class Echo(Protocol):
    def dataReceived(self, data: bytes) -> None:  # noqa: N802
        self.transport.write(data)


class ChecksTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.ca = CA.create(self.mktemp())

    def test_crl(self) -> None:
        """A revoked serial is refused with etcd's message; others pass."""
        revoked, fine = self.ca.issue("revoked"), self.ca.issue("fine")
        crl = self.ca.crl("list", [revoked.serial])
        check_crl(crl, load(fine))
        with self.assertRaises(RejectedError) as caught:
            check_crl(crl, load(revoked))
        self.assertEqual(
            str(caught.exception), f"transport: certificate serial {revoked.serial:x} revoked"
        )

    def test_unreadable_crl(self) -> None:
        """A CRL that cannot be read refuses every certificate."""
        with self.assertRaises(RejectedError):
            check_crl("/nonexistent.crl", load(self.ca.issue("a")))

    def test_san_ip(self) -> None:
        """The connecting address must be one of the IP SANs when only IPs are given."""
        cert = load(self.ca.issue("ip", ips=["127.0.0.1"], dns=[]))
        check_san(cert, "127.0.0.1")
        with self.assertRaises(RejectedError):
            check_san(cert, "127.0.0.2")

    def test_san_dns(self) -> None:
        """A DNS SAN that resolves to the connecting address passes."""
        cert = load(self.ca.issue("dns", ips=[], dns=["localhost"]))
        check_san(cert, "127.0.0.1")
        with self.assertRaises(RejectedError) as caught:
            check_san(
                load(self.ca.issue("other", ips=[], dns=["nonexistent.invalid"])), "127.0.0.1"
            )
        self.assertEqual(
            str(caught.exception),
            'tls: "127.0.0.1" does not match any of DNSNames ["nonexistent.invalid"]',
        )

    def test_no_san(self) -> None:
        """A certificate without IP or DNS SANs passes, as in etcd."""
        check_san(load(self.ca.issue("none", ips=[], dns=[])), "10.9.9.9")

    def test_has_checks(self) -> None:
        """Certificates are checked only when a CRL or a SAN check on client certificates applies."""
        self.assertFalse(has_checks(TLSInfo(cert_file="c", key_file="k")))
        self.assertFalse(has_checks(TLSInfo(cert_file="c", key_file="k", check_san=True)))
        self.assertTrue(
            has_checks(TLSInfo(cert_file="c", key_file="k", check_san=True, client_cert_auth=True))
        )
        self.assertTrue(has_checks(TLSInfo(cert_file="c", key_file="k", crl_file="x.crl")))


class GateProtocolTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.ca = CA.create(self.mktemp())
        self.revoked = self.ca.issue("revoked")
        self.info = TLSInfo(crl_file=self.ca.crl("list", [self.revoked.serial]), check_san=True)

    def connect(self, cert: x509.Certificate | None, host: str = "127.0.0.1") -> TLSTransport:
        factory = GateFactory(Factory.forProtocol(Echo), self.info, run_now)
        proto = factory.buildProtocol(IPv4Address("TCP", host, 50000))
        transport = TLSTransport(cert, host)
        proto.makeConnection(transport)
        proto.dataReceived(b"early ")  # held until the checks pass
        proto.handshakeCompleted()
        proto.dataReceived(b"later")
        return transport

    def test_passes(self) -> None:
        """A good certificate reaches the inner protocol, with the bytes held meanwhile."""
        transport = self.connect(load(self.ca.issue("good")))
        self.assertEqual(transport.value(), b"early later")
        self.assertFalse(transport.disconnecting)

    def test_revoked_closed(self) -> None:
        """A revoked certificate's connection is aborted before the inner protocol sees it."""
        transport = self.connect(load(self.revoked))
        self.assertEqual(transport.value(), b"")
        self.assertTrue(transport.disconnecting)

    def test_wrong_address_closed(self) -> None:
        """A peer certificate whose SAN does not name the connecting address is refused."""
        transport = self.connect(load(self.ca.issue("elsewhere", ips=["10.0.0.9"], dns=[])))
        self.assertTrue(transport.disconnecting)

    def test_failed_handshake_logged(self) -> None:
        """A connection whose handshake failed is logged as rejected, as etcd logs it."""
        factory = GateFactory(Factory.forProtocol(Echo), self.info, run_now)
        proto = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 50000))
        proto.makeConnection(TLSTransport(None, "127.0.0.1"))
        with capturedLogs() as events:
            proto.connectionLost(Failure(SSL.Error([("SSL routines", "", "no certificate")])))
        self.assertEqual(factory.rejected, 1)
        self.assertIn("rejected connection from", formatEvent(events[0]))

    def test_no_certificate(self) -> None:
        """Without a client certificate (none was asked for) there is nothing to check."""
        self.assertEqual(self.connect(None).value(), b"early later")
