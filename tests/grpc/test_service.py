"""The method registry."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted._pb.health_pb2 import HealthCheckRequest
from etcd_twisted.grpc.service import MethodKind, Registry
from etcd_twisted.grpc.status import GrpcError, StatusCode


def handler(*args: object) -> None:
    """Any handler."""


class RegistryTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.r = Registry()
        self.r.add_unary("/pkg.Svc/Get", HealthCheckRequest, handler)
        self.r.add_bidi_stream("/pkg.Svc/Watch", HealthCheckRequest, handler)

    def test_lookup(self) -> None:
        """A registered path gives its kind, handler and request parser."""
        m = self.r.lookup("/pkg.Svc/Watch")
        self.assertEqual(m.kind, MethodKind.BIDI_STREAM)
        self.assertIs(m.handler, handler)
        self.assertEqual(m.deserialize(b"\n\x01a").service, "a")

    def test_unknown_service(self) -> None:
        """An unknown service is UNIMPLEMENTED 'unknown service X'."""
        e = self.assertRaises(GrpcError, self.r.lookup, "/other.Svc/Get")
        self.assertEqual(
            (e.code, e.message), (StatusCode.UNIMPLEMENTED, "unknown service other.Svc")
        )

    def test_unknown_method(self) -> None:
        """An unknown method of a known service is 'unknown method Y for service X'."""
        e = self.assertRaises(GrpcError, self.r.lookup, "/pkg.Svc/Put")
        self.assertEqual(e.message, "unknown method Put for service pkg.Svc")

    def test_malformed(self) -> None:
        """A path without a slash after the service is 'malformed method name'."""
        e = self.assertRaises(GrpcError, self.r.lookup, "/nothing")
        self.assertEqual(e.message, 'malformed method name: "/nothing"')

    def test_bad_registration(self) -> None:
        """Malformed or duplicate paths are refused."""
        self.assertRaises(ValueError, self.r.add_unary, "pkg.Svc/Get", HealthCheckRequest, handler)
        self.assertRaises(ValueError, self.r.add_unary, "/pkg.Svc/", HealthCheckRequest, handler)
        self.assertRaises(ValueError, self.r.add_unary, "/pkg.Svc/Get", HealthCheckRequest, handler)

    def test_streams_requests(self) -> None:
        """Only client- and bidi-streaming handlers start before the requests end."""
        self.assertEqual([k.streams_requests for k in MethodKind], [False, False, True, True])
