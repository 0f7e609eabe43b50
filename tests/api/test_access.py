"""etcd's access controller: --host-whitelist, --cors, and the gateway CN refusal."""

from __future__ import annotations

from OpenSSL import crypto
from twisted.internet.address import IPv4Address
from twisted.internet.interfaces import ISSLTransport
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from etcd_twisted.api.access import AccessPolicy, hostname
from etcd_twisted.api.http import HttpApi
from etcd_twisted.metrics import Metrics
from tests.api.test_http import exchange
from tests.support.certs import CA

REBINDING_TAIL = (
    '  - e.g. etcd --host-whitelist "evil.example"\n\n'
    'This requirement has been added to help prevent "DNS Rebinding" attacks (CVE-2018-5702).\n\n'
)


def get(policy: AccessPolicy, host: bytes, extra: bytes = b"", method: bytes = b"GET"):
    request = b"%s /version HTTP/1.1\r\nHost: %s\r\n%s\r\n" % (method, host, extra)
    return exchange(HttpApi(Metrics(), access=policy), request)


@implementer(ISSLTransport)
class TLSTransport(StringTransport):
    """A secure transport whose client presented ``cert``."""

    def __init__(self, cert: crypto.X509 | None) -> None:
        super().__init__()
        self.cert = cert

    def getPeerCertificate(self) -> crypto.X509 | None:  # noqa: N802
        return self.cert

    def setTcpNoDelay(self, enabled: bool) -> None:  # noqa: N802
        """Twisted's HTTP channel asks for it on TCP-like transports."""


class HostWhitelistTests(SynchronousTestCase):
    policy = AccessPolicy(host_whitelist=frozenset({"good.example", "127.0.0.1"}))

    def test_foreign_host(self) -> None:
        """A Host outside the whitelist gets 421 with etcd's text (compared with etcd 3.5.1)."""
        status, headers, body = get(self.policy, b"evil.example:2379")
        self.assertEqual(status, b"HTTP/1.1 421 Misdirected Request")
        self.assertEqual(headers[b"content-type"], b"text/plain; charset=utf-8")
        self.assertEqual(headers[b"x-content-type-options"], b"nosniff")
        self.assertTrue(body.startswith(b"\netcd received your request, but the Host header"))
        self.assertTrue(body.decode().endswith(REBINDING_TAIL))
        self.assertEqual(headers[b"content-length"], b"374")

    def test_listed_host(self) -> None:
        """A listed Host (the port does not matter) is served."""
        for host in (b"good.example", b"127.0.0.1:2379"):
            self.assertEqual(get(self.policy, host)[0], b"HTTP/1.1 200 OK")

    def test_default_allows_any(self) -> None:
        """The default whitelist (*) serves any Host."""
        self.assertEqual(get(AccessPolicy(), b"anything.example")[0], b"HTTP/1.1 200 OK")

    def test_hostname(self) -> None:
        """The Host header's host part, as Go's GetHostname takes it."""
        self.assertEqual(hostname("a.example:80"), "a.example")
        self.assertEqual(hostname("a.example"), "a.example")
        self.assertEqual(hostname("[::1]:2379"), "::1")
        self.assertEqual(hostname("::1"), "::1")


class CorsTests(SynchronousTestCase):
    policy = AccessPolicy(cors=frozenset({"http://a.example:80"}))

    def test_listed_origin(self) -> None:
        """A listed Origin is echoed in Access-Control-Allow-Origin."""
        _, headers, _ = get(self.policy, b"h", b"Origin: http://a.example:80\r\n")
        self.assertEqual(headers[b"access-control-allow-origin"], b"http://a.example:80")

    def test_other_origin(self) -> None:
        """Another Origin gets no CORS headers; OPTIONS is still 200 and empty."""
        _, headers, _ = get(self.policy, b"h", b"Origin: http://b.example:80\r\n")
        self.assertNotIn(b"access-control-allow-origin", headers)
        status, headers, body = get(
            self.policy, b"h", b"Origin: http://b.example:80\r\n", b"OPTIONS"
        )
        self.assertEqual((status, body), (b"HTTP/1.1 200 OK", b""))

    def test_star(self) -> None:
        """The default (*) allows every origin with a literal *."""
        _, headers, _ = get(AccessPolicy(), b"h", b"Origin: http://z:1\r\n")
        self.assertEqual(headers[b"access-control-allow-origin"], b"*")


class GatewayCommonNameTests(SynchronousTestCase):
    def setUp(self) -> None:
        ca = CA.create(self.mktemp())
        with open(ca.issue("alice", cn="alice").cert_file, "rb") as f:
            self.alice = crypto.load_certificate(crypto.FILETYPE_PEM, f.read())
        with open(ca.issue("anonymous").cert_file, "rb") as f:
            self.anonymous = crypto.load_certificate(crypto.FILETYPE_PEM, f.read())

    def post(self, cert: crypto.X509 | None, auth_enabled: bool) -> bytes:
        policy = AccessPolicy(client_cert_auth=True, auth_enabled=lambda: auth_enabled)
        site = HttpApi(Metrics(), access=policy).site(Clock())
        channel = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
        transport = TLSTransport(cert)
        channel.makeConnection(transport)
        channel.dataReceived(
            b"POST /v3/kv/range HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"
        )
        return transport.value()

    def test_cn_refused_with_auth(self) -> None:
        """With auth on, a gateway request from a certificate with a CN is 400, as etcd."""
        response = self.post(self.alice, auth_enabled=True)
        self.assertTrue(response.startswith(b"HTTP/1.1 400 "))
        self.assertIn(
            b"CommonName of client sending a request against gateway will be ignored", response
        )

    def test_allowed_otherwise(self) -> None:
        """Without auth, or without a CN, the request goes on (here: no gateway, 404)."""
        self.assertTrue(self.post(self.alice, auth_enabled=False).startswith(b"HTTP/1.1 404"))
        self.assertTrue(self.post(self.anonymous, auth_enabled=True).startswith(b"HTTP/1.1 404"))
