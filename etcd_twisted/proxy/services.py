"""The grpc-proxy's own handlers: KV (with the serializable cache and the namespace),
Watch (through the coalescing hub), LeaseKeepAlive (through the coalescer) and
MemberList (answering with the proxies rather than the members)."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from etcd_twisted._pb import rpc_pb2
from etcd_twisted.grpc import GrpcError, Registry, ServerContext, ServerStream, StatusCode
from etcd_twisted.proxy.cache import RangeCache
from etcd_twisted.proxy.forward import Raw, call_metadata
from etcd_twisted.proxy.lease import KeepAliveCoalescer
from etcd_twisted.proxy.namespace import Namespace
from etcd_twisted.proxy.upstream import Upstream
from etcd_twisted.proxy.watch import ClientWatcher, Encoded, WatchHub

__all__ = ["KVProxy", "register_cluster", "register_keep_alive", "register_watch"]

log = Logger()

_KV = "/etcdserverpb.KV"


class KVProxy:
    """KV calls to the members; serializable ranges answered from the cache when they can be."""

    def __init__(self, upstream: Upstream, cache: RangeCache, namespace: Namespace | None) -> None:
        self._upstream = upstream
        self.cache = cache
        self._namespace = namespace

    def register(self, registry: Registry) -> None:
        registry.add_unary(f"{_KV}/Range", rpc_pb2.RangeRequest, self.range)
        for name, request_cls, response_cls in (
            ("Put", rpc_pb2.PutRequest, rpc_pb2.PutResponse),
            ("DeleteRange", rpc_pb2.DeleteRangeRequest, rpc_pb2.DeleteRangeResponse),
            ("Txn", rpc_pb2.TxnRequest, rpc_pb2.TxnResponse),
            ("Compact", rpc_pb2.CompactionRequest, rpc_pb2.CompactionResponse),
        ):
            registry.add_unary(f"{_KV}/{name}", request_cls, self._write(name, response_cls))

    def range(self, request: rpc_pb2.RangeRequest, ctx: ServerContext) -> Any:
        if self._namespace is not None:
            self._namespace.request(request)
        raw = request.SerializeToString()
        if request.serializable:
            cached = self.cache.get(request, raw)
            if cached is not None:
                return self._answer(cached, rpc_pb2.RangeResponse)

        def answered(data: bytes) -> Any:
            if request.serializable:
                self.cache.add(request, raw, data)
            return self._answer(data, rpc_pb2.RangeResponse)

        d = Deferred.fromCoroutine(
            self._upstream.unary(f"{_KV}/Range", raw, call_metadata(ctx), ctx.time_remaining())
        )
        return d.addCallback(answered)

    def _write(self, name: str, response_cls: Any) -> Callable[[Any, ServerContext], Any]:
        path = f"{_KV}/{name}"

        def handle(request: Any, ctx: ServerContext) -> Deferred[Any]:
            if self._namespace is not None:
                self._namespace.request(request)
            d = Deferred.fromCoroutine(
                self._upstream.unary(
                    path,
                    request.SerializeToString(),
                    call_metadata(ctx),
                    ctx.time_remaining(),
                    retry=False,
                )
            )

            def answered(data: bytes) -> Any:
                self._invalidate(request, data)
                return self._answer(data, response_cls)

            return d.addCallback(answered)

        return handle

    def _invalidate(self, request: Any, answer: bytes) -> None:
        if isinstance(request, rpc_pb2.PutRequest):
            self.cache.invalidate(request.key)
        elif isinstance(request, rpc_pb2.DeleteRangeRequest):
            self.cache.invalidate(request.key, request.range_end)
        elif isinstance(request, rpc_pb2.TxnRequest):
            for op in list(request.success) + list(request.failure):
                kind = op.WhichOneof("request")
                if kind in ("request_put", "request_delete_range"):
                    inner = getattr(op, kind)
                    self.cache.invalidate(inner.key, getattr(inner, "range_end", b""))
                elif kind == "request_txn":
                    self._invalidate(op.request_txn, answer)
        elif isinstance(request, rpc_pb2.CompactionRequest):
            self.cache.compact(request.revision)

    def _answer(self, data: bytes, response_cls: Any) -> Any:
        if self._namespace is None:
            return Raw(data)
        response = response_cls.FromString(data)
        self._namespace.response(response)
        return response


def register_watch(
    registry: Registry, hub: WatchHub, namespace: Namespace | None, upstream: Upstream
) -> None:
    """``Watch``: every client watcher is served by the hub."""

    def watch(ctx: ServerContext, stream: ServerStream) -> None:
        session = _WatchSession(hub, stream, namespace, upstream, call_metadata(ctx))
        stream.set_receiver(session.on_request, on_end=session.end)
        ctx.when_cancelled().addCallback(lambda _: session.close())

    registry.add_bidi_stream("/etcdserverpb.Watch/Watch", rpc_pb2.WatchRequest, watch)


class _WatchSession:
    """One client's Watch stream: its watchers by id.

    A client with an auth token has each watch checked first, as etcd's proxy does: a
    serializable keys-only read of the range with the client's token; a refusal cancels
    the watch with the error's text. An upstream watch the client causes carries its token.
    """

    def __init__(
        self,
        hub: WatchHub,
        stream: ServerStream,
        namespace: Namespace | None,
        upstream: Upstream,
        metadata: list[tuple[str, Any]],
    ) -> None:
        self._hub = hub
        self._stream = stream
        self._namespace = namespace
        self._upstream = upstream
        self._metadata = metadata
        self._authenticated = any(k in ("token", "authorization") for k, _ in metadata)
        self._watchers: dict[int, ClientWatcher] = {}
        self._next_id = 0
        self._closed = False

    def on_request(self, request: rpc_pb2.WatchRequest) -> None:
        kind = request.WhichOneof("request_union")
        if kind == "create_request":
            self._create(request.create_request)
        elif kind == "cancel_request":
            watcher = self._watchers.pop(request.cancel_request.watch_id, None)
            if watcher is not None:
                self._hub.remove(watcher)
                self._send(rpc_pb2.WatchResponse(watch_id=watcher.watch_id, canceled=True))
        elif kind == "progress_request":
            self._progress()

    def _progress(self) -> None:
        """Answer a progress request (watch id -1) with a revision every watcher of the
        stream has seen all events up to; without one, the members' current revision."""
        seen = [w.next_revision - 1 for w in self._watchers.values() if w.created]
        if seen:
            self._send(
                rpc_pb2.WatchResponse(
                    watch_id=-1, header=rpc_pb2.ResponseHeader(revision=min(seen))
                )
            )
            return
        probe = rpc_pb2.RangeRequest(key=b"\0", count_only=True, serializable=True, limit=1)
        d = Deferred.fromCoroutine(
            self._upstream.unary(f"{_KV}/Range", probe.SerializeToString(), self._metadata)
        )

        def answer(raw: bytes) -> None:
            header = rpc_pb2.RangeResponse.FromString(raw).header
            self._send(rpc_pb2.WatchResponse(watch_id=-1, header=header))

        d.addCallbacks(
            answer, lambda f: log.warn("no revision for a progress request: {e}", e=f.value)
        )

    def _create(self, create: rpc_pb2.WatchCreateRequest) -> None:
        key, end = create.key, create.range_end
        if end and end != b"\0" and end <= key:
            self._send(rpc_pb2.WatchResponse(watch_id=-1, created=True, canceled=True))
            return
        if self._namespace is not None:
            create.key, create.range_end = self._namespace.interval(key, end)
        watch_id = create.watch_id or self._next_id
        if watch_id in self._watchers:
            self._send(rpc_pb2.WatchResponse(watch_id=watch_id, created=True, canceled=True))
            return
        self._next_id = max(self._next_id, watch_id) + 1
        watcher = ClientWatcher.from_request(watch_id, create, self._send, self._metadata)
        self._watchers[watch_id] = watcher
        if not self._authenticated:
            self._hub.add(watcher)
            return
        check = rpc_pb2.RangeRequest(
            key=create.key or b"\0",
            range_end=create.range_end,
            serializable=True,
            keys_only=True,
            limit=1,
        )
        d = Deferred.fromCoroutine(
            self._upstream.unary(f"{_KV}/Range", check.SerializeToString(), self._metadata)
        )
        d.addCallbacks(lambda _: self._admit(watcher), lambda f: self._refuse(watcher, f.value))

    def _admit(self, watcher: ClientWatcher) -> None:
        if not self._closed and self._watchers.get(watcher.watch_id) is watcher:
            self._hub.add(watcher)

    def _refuse(self, watcher: ClientWatcher, error: BaseException) -> None:
        """Cancel as a member would: the watch's own id, and the gRPC error's Go text."""
        self._watchers.pop(watcher.watch_id, None)
        self._send(
            rpc_pb2.WatchResponse(
                watch_id=watcher.watch_id,
                created=True,
                canceled=True,
                cancel_reason=_go_error_text(_as_grpc(error)),
            )
        )

    def _send(self, response: rpc_pb2.WatchResponse | Encoded) -> None:
        if self._closed:
            return
        if isinstance(response, rpc_pb2.WatchResponse) and not response.HasField("header"):
            # Go's client reads the header of every response: it must be there.
            response.header.SetInParent()
        if self._namespace is not None:
            # Decoded here (a copy, whatever the hub shares) to take the prefix off.
            copy = rpc_pb2.WatchResponse.FromString(response.SerializeToString())
            self._namespace.events(copy)
            response = copy
        self._stream.send(response)

    def end(self) -> None:
        self.close()
        self._stream.finish()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for watcher in self._watchers.values():
            self._hub.remove(watcher)
        self._watchers.clear()


def register_keep_alive(registry: Registry, coalescer: KeepAliveCoalescer) -> None:
    """``LeaseKeepAlive``: each request answered through the coalescer, in order."""

    def keep_alive(ctx: ServerContext, stream: ServerStream) -> None:
        def on_message(request: rpc_pb2.LeaseKeepAliveRequest) -> Deferred[None]:
            d = coalescer.renew(request.ID)
            d.addCallback(stream.send)
            d.addErrback(lambda f: stream.finish(_as_grpc(f.value)))
            return d

        stream.set_receiver(on_message, on_end=lambda: stream.finish())

    registry.add_bidi_stream(
        "/etcdserverpb.Lease/LeaseKeepAlive", rpc_pb2.LeaseKeepAliveRequest, keep_alive
    )


def register_cluster(
    registry: Registry, upstream: Upstream, advertise_url: str, resolver_prefix: str
) -> None:
    """``MemberList`` answers with the proxies (etcd's rules, below); ``MemberPromote`` is
    not implemented by etcd's proxy either.

    - an advertised URL and a resolver prefix: the proxies registered under the prefix
      (this one alone until any is registered);
    - an advertised URL only: this proxy;
    - neither: the members' own list.
    """
    hostname = socket.gethostname()

    async def member_list(request: Raw, ctx: ServerContext) -> Any:
        if not advertise_url:
            return Raw(
                await upstream.unary(
                    "/etcdserverpb.Cluster/MemberList", request.data, call_metadata(ctx)
                )
            )
        members = []
        if resolver_prefix:
            members = await registered_proxies(upstream, resolver_prefix)
        if not members:
            members = [rpc_pb2.Member(name=hostname, clientURLs=[advertise_url])]
        return rpc_pb2.MemberListResponse(members=members)

    def member_promote(request: Raw, ctx: ServerContext) -> Any:
        raise GrpcError(StatusCode.UNKNOWN, "not implemented")

    registry.add_unary("/etcdserverpb.Cluster/MemberList", Raw, member_list)
    registry.add_unary("/etcdserverpb.Cluster/MemberPromote", Raw, member_promote)


async def registered_proxies(upstream: Upstream, prefix: str) -> list[rpc_pb2.Member]:
    """The proxies registered under ``prefix`` (etcd's endpoint records: JSON with
    ``Addr`` and ``Metadata``, itself JSON with the proxy's ``name``)."""
    start = (prefix + "/").encode()
    request = rpc_pb2.RangeRequest(key=start, range_end=start[:-1] + b"0", serializable=False)
    data = await upstream.unary(f"{_KV}/Range", request.SerializeToString())
    members = []
    for kv in rpc_pb2.RangeResponse.FromString(data).kvs:
        try:
            record = json.loads(kv.value)
            name = json.loads(record.get("Metadata") or "{}").get("name", "")
            members.append(rpc_pb2.Member(name=name, clientURLs=[record["Addr"]]))
        except (ValueError, KeyError, AttributeError):
            continue
    return members


def _go_error_text(error: GrpcError) -> str:
    """grpc-go's text for a status error (``rpc error: code = PermissionDenied desc = ...``)."""
    name = (
        "Canceled"
        if error.code == StatusCode.CANCELLED
        else error.code.name.title().replace("_", "")
    )
    return f"rpc error: code = {name} desc = {error.message}"


def _as_grpc(error: BaseException) -> GrpcError:
    if isinstance(error, GrpcError):
        return error
    return GrpcError(StatusCode.UNAVAILABLE, str(error))
