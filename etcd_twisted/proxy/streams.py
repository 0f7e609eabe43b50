"""The hub's and the coalescer's streams to the members: each upstream watch on a Watch
stream of its own, and one shared LeaseKeepAlive stream, opened through the upstream."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from twisted.internet.defer import ensureDeferred

from etcd_twisted._pb import rpc_pb2
from etcd_twisted.grpc import GrpcError, StatusCode
from etcd_twisted.grpc.client import ClientCall
from etcd_twisted.proxy.upstream import Upstream

__all__ = ["upstream_keep_alive_opener", "upstream_watch_opener"]


def upstream_watch_opener(upstream: Upstream) -> Callable[..., Any]:
    """Opens upstream watches, one Watch stream each."""

    class Handle:
        def __init__(self) -> None:
            self.call: ClientCall | None = None
            self.cancelled = False

        def cancel(self) -> None:
            self.cancelled = True
            if self.call is not None:
                self.call.cancel()

    def open_watch(
        request: rpc_pb2.WatchCreateRequest,
        on_response: Callable[[rpc_pb2.WatchResponse], Any],
        on_closed: Callable[[str], Any],
        metadata: Sequence[tuple[str, Any]] = (),
    ) -> Handle:
        handle = Handle()

        def closed(status: GrpcError | None) -> None:
            if not handle.cancelled:
                on_closed(str(status) if status else "watch stream ended")

        async def start() -> None:
            call = await upstream.stream(
                "/etcdserverpb.Watch/Watch",
                metadata,
                lambda raw: on_response(rpc_pb2.WatchResponse.FromString(raw)),
                closed,
            )
            handle.call = call
            if handle.cancelled:
                call.cancel()
                return
            call.send(rpc_pb2.WatchRequest(create_request=request).SerializeToString())

        ensureDeferred(start()).addErrback(
            lambda f: closed(GrpcError(StatusCode.UNAVAILABLE, str(f.value)))
        )
        return handle

    return open_watch


def upstream_keep_alive_opener(upstream: Upstream) -> Callable[..., Any]:
    """Opens the upstream LeaseKeepAlive stream the coalescer shares."""

    class Stream:
        def __init__(self) -> None:
            self.call: ClientCall | None = None
            self.pending: list[bytes] = []

        def send(self, request: rpc_pb2.LeaseKeepAliveRequest) -> None:
            data = request.SerializeToString()
            if self.call is None:
                self.pending.append(data)
            else:
                self.call.send(data)

        def cancel(self) -> None:
            if self.call is not None:
                self.call.cancel()

    def open_stream(on_response: Callable[..., Any], on_closed: Callable[..., Any]) -> Stream:
        stream = Stream()

        async def start() -> None:
            call = await upstream.stream(
                "/etcdserverpb.Lease/LeaseKeepAlive",
                (),
                lambda raw: on_response(rpc_pb2.LeaseKeepAliveResponse.FromString(raw)),
                on_closed,
            )
            stream.call = call
            for data in stream.pending:
                call.send(data)
            stream.pending = []

        ensureDeferred(start()).addErrback(
            lambda f: on_closed(GrpcError(StatusCode.UNAVAILABLE, str(f.value)))
        )
        return stream

    return open_stream
