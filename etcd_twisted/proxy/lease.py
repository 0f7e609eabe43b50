"""Lease keep-alive coalescing: keep-alives for one lease from any number of clients
share one upstream request at a time, on one upstream keep-alive stream.

No I/O here: the upstream stream comes from the ``open_stream`` callable.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from twisted.internet.defer import Deferred

from etcd_twisted._pb import rpc_pb2
from etcd_twisted.grpc.status import GrpcError, StatusCode

__all__ = ["KeepAliveCoalescer", "KeepAliveStream"]


class KeepAliveStream(Protocol):
    """An open upstream ``LeaseKeepAlive`` stream."""

    def send(self, request: rpc_pb2.LeaseKeepAliveRequest) -> None: ...

    def cancel(self) -> None: ...


#: ``open_stream(on_response, on_closed)``: open an upstream keep-alive stream.
OpenStream = Callable[
    [Callable[[rpc_pb2.LeaseKeepAliveResponse], Any], Callable[[GrpcError], Any]],
    KeepAliveStream,
]


class KeepAliveCoalescer:
    """Renews leases for many clients through one upstream stream."""

    def __init__(self, open_stream: OpenStream) -> None:
        self._open_stream = open_stream
        self._stream: KeepAliveStream | None = None
        self._waiting: dict[int, list[Deferred[rpc_pb2.LeaseKeepAliveResponse]]] = {}
        #: Requests answered by another client's upstream request.
        self.coalesced = 0
        self.upstream_requests = 0

    def renew(self, lease_id: int) -> Deferred[rpc_pb2.LeaseKeepAliveResponse]:
        """The upstream answer to a keep-alive of ``lease_id`` (shared by every client
        asking while one request is in flight)."""
        d: Deferred[rpc_pb2.LeaseKeepAliveResponse] = Deferred()
        waiters = self._waiting.get(lease_id)
        if waiters is not None:
            waiters.append(d)
            self.coalesced += 1
            return d
        self._waiting[lease_id] = [d]
        if self._stream is None:
            self._stream = self._open_stream(self._answered, self._closed)
        self.upstream_requests += 1
        self._stream.send(rpc_pb2.LeaseKeepAliveRequest(ID=lease_id))
        return d

    def _answered(self, response: rpc_pb2.LeaseKeepAliveResponse) -> None:
        for d in self._waiting.pop(response.ID, []):
            d.callback(response)

    def _closed(self, error: GrpcError | None) -> None:
        self._stream = None
        reason = error or GrpcError(StatusCode.UNAVAILABLE, "keep-alive stream closed")
        waiting, self._waiting = self._waiting, {}
        for waiters in waiting.values():
            for d in waiters:
                d.errback(reason)

    def close(self) -> None:
        """Close the upstream stream."""
        if self._stream is not None:
            stream, self._stream = self._stream, None
            stream.cancel()
