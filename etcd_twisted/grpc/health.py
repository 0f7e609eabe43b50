"""The standard ``grpc.health.v1.Health`` service."""

from __future__ import annotations

from twisted.python.failure import Failure

from etcd_twisted._pb import health_pb2
from etcd_twisted.grpc.call import ServerContext, ServerStream
from etcd_twisted.grpc.service import Registry
from etcd_twisted.grpc.status import GrpcError, StatusCode

__all__ = ["HealthService"]

_SERVICE = "/grpc.health.v1.Health"


class HealthService:
    """Serving status per service name; ``""`` (the whole server) starts SERVING.

    ``Check`` of an unknown service is NOT_FOUND; ``Watch`` sends the current
    status (SERVICE_UNKNOWN for an unknown service), then every change.
    """

    def __init__(self) -> None:
        self._statuses: dict[str, int] = {"": health_pb2.HealthCheckResponse.SERVING}
        self._watchers: dict[str, set[ServerStream]] = {}

    def register(self, registry: Registry) -> None:
        """Add ``Check`` and ``Watch`` to ``registry``."""
        registry.add_unary(f"{_SERVICE}/Check", health_pb2.HealthCheckRequest, self.check)
        registry.add_server_stream(f"{_SERVICE}/Watch", health_pb2.HealthCheckRequest, self.watch)

    def set_status(self, service: str, status: int) -> None:
        """Record ``service``'s status and tell its watchers if it changed."""
        if self._statuses.get(service) == status:
            return
        self._statuses[service] = status
        response = health_pb2.HealthCheckResponse(status=status)
        for stream in list(self._watchers.get(service, ())):
            stream.send(response).addErrback(_ignore)

    def check(
        self, request: health_pb2.HealthCheckRequest, ctx: ServerContext
    ) -> health_pb2.HealthCheckResponse:
        """``Check``: the service's status, or NOT_FOUND."""
        status = self._statuses.get(request.service)
        if status is None:
            raise GrpcError(StatusCode.NOT_FOUND, "unknown service")
        return health_pb2.HealthCheckResponse(status=status)

    def watch(
        self, request: health_pb2.HealthCheckRequest, ctx: ServerContext, stream: ServerStream
    ) -> None:
        """``Watch``: the current status now, then each change until cancelled."""
        service = request.service
        status = self._statuses.get(service, health_pb2.HealthCheckResponse.SERVICE_UNKNOWN)
        stream.send(health_pb2.HealthCheckResponse(status=status)).addErrback(_ignore)
        watchers = self._watchers.setdefault(service, set())
        watchers.add(stream)
        ctx.when_cancelled().addCallback(lambda _: watchers.discard(stream))


def _ignore(failure: Failure) -> None:
    """A watcher's send fails only when its call is gone; nothing to do."""
