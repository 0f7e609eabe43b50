"""Tests for etcd_twisted.api.http: /version, /health, /livez, /readyz, /metrics."""

import json

from treq.testing import StubTreq
from twisted.internet.address import IPv4Address
from twisted.internet.defer import succeed
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted import CLUSTER_VERSION, ETCD_VERSION
from etcd_twisted.api.http import HttpApi
from etcd_twisted.metrics import Metrics


class HttpApiTests(SynchronousTestCase):
    def client(self, health=None) -> StubTreq:
        api = HttpApi(Metrics()) if health is None else HttpApi(Metrics(), health)
        return StubTreq(api.app.resource())

    def get(self, treq: StubTreq, path: str) -> tuple[int, bytes, object]:
        response = self.successResultOf(treq.get("http://127.0.0.1" + path))
        body = self.successResultOf(response.content())
        return response.code, body, response.headers

    def test_version(self) -> None:
        """/version reports etcd's server and cluster versions as JSON."""
        code, body, headers = self.get(self.client(), "/version")
        self.assertEqual(code, 200)
        self.assertEqual(
            json.loads(body), {"etcdserver": ETCD_VERSION, "etcdcluster": CLUSTER_VERSION}
        )
        self.assertEqual(headers.getRawHeaders(b"content-type"), [b"application/json"])

    def test_health_ok(self) -> None:
        """/health is 200 with health "true" and an empty reason."""
        code, body, _ = self.get(self.client(), "/health")
        self.assertEqual((code, json.loads(body)), (200, {"health": "true", "reason": ""}))

    def test_health_unhealthy_async(self) -> None:
        """An unhealthy member answers 503 with the reason, even from a Deferred check."""
        calls = []

        def check(serializable: bool):
            calls.append(serializable)
            return succeed((False, "RAFT NO LEADER"))

        treq = self.client(check)
        code, body, _ = self.get(treq, "/health?serializable=true")
        self.assertEqual(code, 503)
        self.assertEqual(json.loads(body), {"health": "false", "reason": "RAFT NO LEADER"})
        self.assertEqual(calls, [True])
        code, body, _ = self.get(treq, "/readyz")
        self.assertEqual(code, 503)

    def test_livez_readyz(self) -> None:
        """/livez and /readyz answer ok."""
        treq = self.client()
        self.assertEqual(self.get(treq, "/livez")[:2], (200, b"ok"))
        self.assertEqual(self.get(treq, "/readyz")[:2], (200, b"ok"))

    def test_metrics(self) -> None:
        """/metrics is Prometheus text with etcd's and the process's metric names."""
        code, body, headers = self.get(self.client(), "/metrics")
        self.assertEqual(code, 200)
        self.assertIn(b"text/plain", headers.getRawHeaders(b"content-type")[0])
        self.assertIn(b'etcd_server_version{server_version="%s"} 1.0' % ETCD_VERSION.encode(), body)
        self.assertIn(b"process_resident_memory_bytes", body)
        self.assertIn(b"# TYPE grpc_server_handled_total counter", body)

    def test_unknown_path(self) -> None:
        """An unknown path is 404."""
        self.assertEqual(self.get(self.client(), "/nope")[0], 404)


def exchange(api: HttpApi, request: bytes) -> tuple[bytes, dict[bytes, bytes], bytes]:
    """Send one raw HTTP/1.1 request to ``api``'s site; its status line, headers, body."""
    site = api.site(Clock())
    channel = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
    transport = StringTransport()
    channel.makeConnection(transport)
    channel.dataReceived(request)
    head, _, body = transport.value().partition(b"\r\n\r\n")
    status, *lines = head.split(b"\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, body


class HttpFramingTests(SynchronousTestCase):
    """Responses as etcd 3.5.1's Go HTTP server frames them (compared with curl -i)."""

    def get(self, path: str, method: bytes = b"GET", api: HttpApi | None = None):
        request = b"%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % (method, path.encode())
        return exchange(api or HttpApi(Metrics()), request)

    def test_cors_headers_everywhere(self) -> None:
        """Every response carries etcd's CORS headers (its --cors default is *)."""
        for path in ("/version", "/health", "/metrics", "/nope", "/v3/kv/range"):
            _, headers, _ = self.get(path)
            self.assertEqual(headers.get(b"access-control-allow-origin"), b"*", path)
            self.assertEqual(
                headers.get(b"access-control-allow-methods"), b"POST, GET, OPTIONS, PUT, DELETE"
            )
            self.assertEqual(
                headers.get(b"access-control-allow-headers"), b"accept, content-type, authorization"
            )

    def test_options_preflight(self) -> None:
        """OPTIONS on any path is 200 with an empty body (etcd's CORS handler answers it)."""
        for path in ("/version", "/v3/kv/range", "/anything"):
            status, headers, body = self.get(path, b"OPTIONS")
            self.assertEqual(
                (status, headers[b"content-length"], body), (b"HTTP/1.1 200 OK", b"0", b"")
            )
            self.assertNotIn(b"content-type", headers)

    def test_content_length_and_no_server_header(self) -> None:
        """A small body goes out with Content-Length, not chunked, and no Server header."""
        status, headers, body = self.get("/version")
        self.assertEqual(status, b"HTTP/1.1 200 OK")
        self.assertEqual(headers[b"content-length"], str(len(body)).encode())
        self.assertNotIn(b"transfer-encoding", headers)
        self.assertNotIn(b"server", headers)

    def test_large_body_chunked(self) -> None:
        """A body over Go's 2048-byte buffer goes out chunked, as etcd's /metrics does."""
        _, headers, _ = self.get("/metrics")
        self.assertEqual(headers[b"transfer-encoding"], b"chunked")
        self.assertEqual(headers[b"content-type"], b"text/plain; version=0.0.4; charset=utf-8")

    def test_metrics_any_method(self) -> None:
        """/metrics answers any method, as Prometheus' Go handler does."""
        self.assertEqual(self.get("/metrics", b"POST")[0], b"HTTP/1.1 200 OK")

    def test_health_content_type(self) -> None:
        """/health's JSON goes out as text/plain (etcd sets no type; Go sniffs it)."""
        _, headers, body = self.get("/health")
        self.assertEqual(headers[b"content-type"], b"text/plain; charset=utf-8")
        self.assertEqual(json.loads(body), {"health": "true", "reason": ""})

    def test_not_found_and_wrong_method(self) -> None:
        """Unknown paths and wrong methods answer as Go's http.Error does, not in HTML."""
        status, headers, body = self.get("/nope")
        self.assertEqual((status, body), (b"HTTP/1.1 404 Not Found", b"404 page not found\n"))
        self.assertEqual(headers[b"content-type"], b"text/plain; charset=utf-8")
        self.assertEqual(headers[b"x-content-type-options"], b"nosniff")
        for method, path in ((b"POST", "/version"), (b"HEAD", "/version"), (b"PUT", "/health")):
            status, headers, body = self.get(path, method)
            self.assertEqual(status, b"HTTP/1.1 405 Method Not Allowed", (method, path))
            self.assertEqual(headers[b"allow"], b"GET")
        status, headers, body = self.get("/v3/kv/range")
        self.assertEqual(
            (status, body), (b"HTTP/1.1 405 Method Not Allowed", b"Method Not Allowed\n")
        )
        self.assertEqual(headers[b"x-content-type-options"], b"nosniff")
