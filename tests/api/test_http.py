"""Tests for etcd_twisted.api.http: /version, /health, /livez, /readyz, /metrics."""

import json

from treq.testing import StubTreq
from twisted.internet.defer import succeed
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
