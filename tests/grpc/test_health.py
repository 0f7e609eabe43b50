"""grpc.health.v1.Health over the in-memory h2 client."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted._pb.health_pb2 import HealthCheckRequest, HealthCheckResponse
from etcd_twisted.grpc.health import HealthService
from etcd_twisted.grpc.service import Registry
from etcd_twisted.grpc.status import StatusCode
from tests.grpc.h2client import Harness

CHECK = "/grpc.health.v1.Health/Check"
WATCH = "/grpc.health.v1.Health/Watch"


def statuses(raw: list[bytes]) -> list[int]:
    return [HealthCheckResponse.FromString(m).status for m in raw]


class HealthTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.health = HealthService()
        registry = Registry()
        self.health.register(registry)
        self.h = Harness(registry)

    def test_check_server(self) -> None:
        """Check of service "" is SERVING."""
        resp = self.h.call(CHECK, HealthCheckRequest(service=""))
        self.assertEqual(statuses(resp.messages), [HealthCheckResponse.SERVING])
        self.assertEqual(resp.status, 0)

    def test_check_unknown(self) -> None:
        """Check of an unknown service is NOT_FOUND 'unknown service'."""
        resp = self.h.call(CHECK, HealthCheckRequest(service="nope"))
        self.assertEqual((resp.status, resp.message), (StatusCode.NOT_FOUND, b"unknown service"))

    def test_check_set(self) -> None:
        """A status set for a service is what Check reports."""
        self.health.set_status("kv", HealthCheckResponse.NOT_SERVING)
        resp = self.h.call(CHECK, HealthCheckRequest(service="kv"))
        self.assertEqual(statuses(resp.messages), [HealthCheckResponse.NOT_SERVING])

    def test_watch(self) -> None:
        """Watch sends the current status, then each change, and nothing for a repeat."""
        resp = self.h.call(WATCH, HealthCheckRequest(service=""))
        self.health.set_status("", HealthCheckResponse.SERVING)
        self.health.set_status("", HealthCheckResponse.NOT_SERVING)
        self.h.exchange()
        self.assertEqual(
            statuses(resp.messages), [HealthCheckResponse.SERVING, HealthCheckResponse.NOT_SERVING]
        )
        self.assertIsNone(resp.status)

    def test_watch_unknown_then_known(self) -> None:
        """Watch of an unknown service sends SERVICE_UNKNOWN, then its status once set."""
        resp = self.h.call(WATCH, HealthCheckRequest(service="kv"))
        self.health.set_status("kv", HealthCheckResponse.SERVING)
        self.h.exchange()
        self.assertEqual(
            statuses(resp.messages),
            [HealthCheckResponse.SERVICE_UNKNOWN, HealthCheckResponse.SERVING],
        )

    def test_watch_cancel_forgets(self) -> None:
        """A cancelled Watch is no longer notified."""
        self.h.call(WATCH, HealthCheckRequest(service=""))
        sid = max(self.h.responses)
        self.h.client.reset_stream(sid)
        self.h.exchange()
        self.assertEqual(self.health._watchers[""], set())
