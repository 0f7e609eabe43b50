"""Server TLS as etcd configures it, checked with in-memory handshakes (no sockets)."""

from __future__ import annotations

import os

from OpenSSL import SSL
from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted.tls.context import ServerTLS, TLSConfigError
from etcd_twisted.tls.info import TLSInfo
from tests.support.certs import CA, Leaf


def client_context(
    ca: CA | None = None,
    leaf: Leaf | None = None,
    alpn: list[bytes] | None = None,
    max_version: int = SSL.TLS1_3_VERSION,
) -> SSL.Context:
    ctx = SSL.Context(SSL.TLS_METHOD)
    ctx.set_max_proto_version(max_version)
    if ca is not None:
        ctx.load_verify_locations(ca.cert_file)
        ctx.set_verify(SSL.VERIFY_PEER, lambda *args: bool(args[-1]))
    if leaf is not None:
        ctx.use_certificate_file(leaf.cert_file)
        ctx.use_privatekey_file(leaf.key_file)
    if alpn:
        ctx.set_alpn_protos(alpn)
    return ctx


def handshake(server: ServerTLS, client_ctx: SSL.Context) -> tuple[SSL.Connection, SSL.Connection]:
    """Run a handshake between memory BIOs; raises the first side's SSL.Error."""
    s = server.serverConnectionForTLS(None)
    s.set_accept_state()
    c = SSL.Connection(client_ctx, None)
    c.set_connect_state()
    done = {s: False, c: False}
    for _ in range(50):
        for a, b in ((c, s), (s, c)):
            if not done[a]:
                try:
                    a.do_handshake()
                    done[a] = True
                except SSL.WantReadError:
                    pass
            try:
                b.bio_write(a.bio_read(1 << 16))
            except SSL.WantReadError:
                pass
        if all(done.values()):
            # TLS 1.3: the server learns of a bad client certificate once it reads more.
            c.send(b"x")
            s.bio_write(c.bio_read(1 << 16))
            s.recv(1)
            return s, c
    raise AssertionError("handshake did not finish")


class ServerTLSTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.ca = CA.create(self.mktemp())
        self.server = self.ca.issue("server")
        self.alice = self.ca.issue("alice", cn="alice", ips=["10.1.1.1"], dns=[])
        self.bob = self.ca.issue("bob", cn="bob", ips=["127.0.0.1"], dns=[])

    def info(self, **kw: object) -> TLSInfo:
        return TLSInfo(cert_file=self.server.cert_file, key_file=self.server.key_file, **kw)

    def test_alpn_and_version(self) -> None:
        """ALPN picks h2 (else http/1.1); TLS 1.2 is the most served, as etcd 3.5.1."""
        tls = ServerTLS(self.info())
        s, c = handshake(tls, client_context(self.ca, alpn=[b"http/1.1", b"h2"]))
        self.assertEqual(s.get_alpn_proto_negotiated(), b"h2")
        self.assertEqual(c.get_protocol_version_name(), "TLSv1.2")
        s, _ = handshake(tls, client_context(self.ca, alpn=[b"http/1.1"]))
        self.assertEqual(s.get_alpn_proto_negotiated(), b"http/1.1")

    def test_tls13_when_allowed(self) -> None:
        """--tls-max-version TLS1.3 serves TLS 1.3; --tls-min-version TLS1.3 refuses 1.2."""
        _, c = handshake(ServerTLS(self.info(max_version="TLS1.3")), client_context(self.ca))
        self.assertEqual(c.get_protocol_version_name(), "TLSv1.3")
        only13 = ServerTLS(self.info(min_version="TLS1.3", max_version="TLS1.3"))
        with self.assertRaises(SSL.Error):
            handshake(only13, client_context(self.ca, max_version=SSL.TLS1_2_VERSION))

    def test_cipher_suites(self) -> None:
        """--cipher-suites limits the TLS 1.2 suites offered."""
        tls = ServerTLS(self.info(cipher_suites=("TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",)))
        _, c = handshake(tls, client_context(self.ca))
        self.assertEqual(c.get_cipher_name(), "ECDHE-ECDSA-AES128-GCM-SHA256")
        rsa_only = ServerTLS(self.info(cipher_suites=("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",)))
        with self.assertRaises(SSL.Error):
            handshake(rsa_only, client_context(self.ca))  # an ECDSA key cannot do RSA suites

    def test_client_certificate_required(self) -> None:
        """A trusted CA (or --client-cert-auth) makes a client certificate mandatory."""
        tls = ServerTLS(self.info(trusted_ca_file=self.ca.cert_file))
        with self.assertRaises(SSL.Error):
            handshake(tls, client_context(self.ca))
        handshake(tls, client_context(self.ca, self.alice))
        stranger = CA.create(self.mktemp(), "another CA").issue("eve", cn="eve")
        with self.assertRaises(SSL.Error):
            handshake(tls, client_context(self.ca, stranger))

    def test_allowed_cn(self) -> None:
        """--peer-cert-allowed-cn: only that CN completes the handshake."""
        tls = ServerTLS(
            self.info(trusted_ca_file=self.ca.cert_file, client_cert_auth=True, allowed_cn="alice")
        )
        handshake(tls, client_context(self.ca, self.alice))
        with self.assertRaises(SSL.Error):
            handshake(tls, client_context(self.ca, self.bob))

    def test_allowed_hostname(self) -> None:
        """--peer-cert-allowed-hostname / --client-cert-allowed-hostname match the SAN."""
        tls = ServerTLS(self.info(trusted_ca_file=self.ca.cert_file, allowed_hostname="127.0.0.1"))
        handshake(tls, client_context(self.ca, self.bob))
        with self.assertRaises(SSL.Error):
            handshake(tls, client_context(self.ca, self.alice))

    def test_cn_and_hostname_exclusive(self) -> None:
        """An allowed CN and an allowed hostname together are refused, as etcd does."""
        with self.assertRaises(TLSConfigError) as caught:
            ServerTLS(self.info(allowed_cn="a", allowed_hostname="b"))
        self.assertEqual(
            str(caught.exception),
            'AllowedCN and AllowedHostname are mutually exclusive (cn="a", hostname="b")',
        )

    def test_missing_file(self) -> None:
        """A missing certificate file is named in the error."""
        with self.assertRaises(TLSConfigError) as caught:
            ServerTLS(TLSInfo(cert_file="/nonexistent/c.pem", key_file="/nonexistent/k.pem"))
        self.assertEqual(
            str(caught.exception), "open /nonexistent/c.pem: no such file or directory"
        )

    def test_rotated_certificate(self) -> None:
        """A certificate replaced on disk is served to the next connection."""
        tls = ServerTLS(self.info())
        _, c = handshake(tls, client_context(self.ca))
        self.assertEqual(c.get_peer_certificate().get_serial_number(), self.server.serial)
        renewed = self.ca.issue("server")  # same file names, a new serial
        stamp = os.stat(renewed.cert_file).st_mtime + 5
        os.utime(renewed.cert_file, (stamp, stamp))
        _, c = handshake(tls, client_context(self.ca))
        self.assertEqual(c.get_peer_certificate().get_serial_number(), renewed.serial)
