"""What the Lock and Election services stand on: etcd's ``clientv3/concurrency``, in-process.

etcd serves ``v3lockpb.Lock`` and ``v3electionpb.Election`` with an in-process
client (``v3client``) running ``concurrency.Mutex`` and ``concurrency.Election``
against its own KV, Lease and Watch services. This module is that client and the
waiting they share, written over the server's calls (so every write goes through
raft) and the watchable store:

- :class:`Client`: txn, get, delete and lease grant with full response headers,
  and watches (:class:`KeyWatch`);
- :func:`wait_deletes`: wait until no key under a prefix was created before a
  revision, by watching for the deletion of the newest such key, again and again;
- :func:`call_handler`: runs a request as a coroutine, cancels it when the gRPC
  call is cancelled, and reports errors as etcd's lock and election servers do:
  code UNKNOWN with the client's message (etcd's in-process client turns every
  status into a plain error, and gRPC sends a plain error as UNKNOWN).

Calls into the server are shielded from cancellation: cancelling a request stops
waiting for a proposal's answer, never the proposal.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any, Protocol, TypeVar

from twisted.internet.defer import CancelledError, Deferred, fail, maybeDeferred
from twisted.python.failure import Failure

from etcd_twisted._pb import rpc_pb2
from etcd_twisted._pb.kv_pb2 import Event
from etcd_twisted.api.errors import to_grpc_error
from etcd_twisted.api.unary import (
    HeaderSource,
    auth_info_of,
    check_learner,
    fill_header,
    require_leader,
)
from etcd_twisted.grpc import GrpcError, ServerContext, StatusCode
from etcd_twisted.mvcc.errors import CompactedError
from etcd_twisted.mvcc.watchable_store import WatchableStore
from etcd_twisted.mvcc.watcher import WatchResponse

T = TypeVar("T")

#: The TTL of the lease a session grants when the request names none (``defaultSessionTTL``).
SESSION_TTL = 60


class ConcurrencyError(Exception):
    """An error of etcd's concurrency package or its servers; its text is what clients see."""

    message = ""

    def __str__(self) -> str:
        return self.message


class SessionExpiredError(ConcurrencyError):
    message = "mutex: session is expired"


class NotLeaderError(ConcurrencyError):
    message = "election: not leader"


class NoLeaderError(ConcurrencyError):
    message = "election: no leader"


class MissingLeaderKeyError(ConcurrencyError):
    message = '"leader" field must be provided'


class LostWatcherError(ConcurrencyError):
    message = "lost watcher waiting for delete"


class AuthInfoSource(Protocol):
    def auth_info(self, token: str | None, common_name: str | None = None) -> Any:
        """The caller's credentials (value or Deferred; None without any)."""
        ...


class KVCalls(Protocol):
    """The KV calls the Lock and Election services make (``KVFrontend``)."""

    def range(self, r: rpc_pb2.RangeRequest, auth: Any = None) -> Any: ...

    def txn(self, t: rpc_pb2.TxnRequest, auth: Any = None) -> Any: ...

    def delete_range(self, d: rpc_pb2.DeleteRangeRequest, auth: Any = None) -> Any: ...


class LeaseCalls(Protocol):
    """The lease call sessions make (``LeaseFrontend``)."""

    def grant(self, r: rpc_pb2.LeaseGrantRequest, auth: Any = None) -> Any: ...


class ConcurrencyServer(HeaderSource, Protocol):
    """What the Lock and Election services need from the server."""

    @property
    def watchable(self) -> WatchableStore: ...

    @property
    def auth_frontend(self) -> AuthInfoSource: ...

    @property
    def kv_frontend(self) -> KVCalls: ...

    @property
    def leases(self) -> LeaseCalls: ...


def prefix_end(prefix: bytes) -> bytes:
    """The range end covering every key that starts with ``prefix`` (``"\\0"``: all keys)."""
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        return b"\0"
    return stripped[:-1] + bytes([stripped[-1] + 1])


def first_create(prefix: bytes) -> rpc_pb2.RangeRequest:
    """The oldest key under ``prefix`` (clientv3's ``WithFirstCreate``)."""
    return rpc_pb2.RangeRequest(
        key=prefix,
        range_end=prefix_end(prefix),
        sort_target=rpc_pb2.RangeRequest.CREATE,
        sort_order=rpc_pb2.RangeRequest.ASCEND,
        limit=1,
    )


def last_create_before(prefix: bytes, max_create_rev: int) -> rpc_pb2.RangeRequest:
    """The newest key under ``prefix`` created at or before ``max_create_rev``."""
    return rpc_pb2.RangeRequest(
        key=prefix,
        range_end=prefix_end(prefix),
        sort_target=rpc_pb2.RangeRequest.CREATE,
        sort_order=rpc_pb2.RangeRequest.DESCEND,
        limit=1,
        max_create_revision=max_create_rev,
    )


def created_at(key: bytes, rev: int) -> rpc_pb2.Compare:
    """The compare ``create_revision(key) == rev`` (0: the key does not exist)."""
    return rpc_pb2.Compare(
        key=key,
        target=rpc_pb2.Compare.CREATE,
        result=rpc_pb2.Compare.EQUAL,
        create_revision=rev,
    )


def _shielded(d: Deferred[T]) -> Deferred[T]:
    """A Deferred with ``d``'s result whose cancellation leaves ``d`` alone."""
    out: Deferred[T] = Deferred(lambda _: None)

    def relay(result: Any) -> None:
        if not out.called:
            if isinstance(result, Failure):
                out.errback(result)
            else:
                out.callback(result)

    d.addBoth(relay)
    return out


class KeyWatch:
    """A watch on the server's watchable store, read one event batch at a time.

    Responses wait in the watch stream (bounded, like any watch) until :meth:`next`
    takes them, so a reader that stops reading holds no growing queue.
    """

    def __init__(self, watchable: WatchableStore, key: bytes, end: bytes, start_rev: int) -> None:
        self._ws = watchable.new_watch_stream()
        self._ws.on_ready = self._wake
        self._buffer: deque[WatchResponse] = deque()
        self._waiting: Deferred[None] | None = None
        self._ws.watch(key, end or None, start_rev=start_rev)

    def _wake(self) -> None:
        waiting, self._waiting = self._waiting, None
        if waiting is not None:
            waiting.callback(None)

    def _forget_waiter(self, _: Deferred[None]) -> None:
        self._waiting = None

    async def next(self) -> WatchResponse:
        """The next response with events; raises `CompactedError` (or `LostWatcherError`)
        when the watch is canceled."""
        while True:
            if not self._buffer:
                self._buffer.extend(self._ws.take())
            while self._buffer:
                response = self._buffer.popleft()
                if response.compact_revision:
                    raise CompactedError()
                if response.canceled:
                    raise LostWatcherError()
                if response.events:
                    return response
            self._waiting = Deferred(self._forget_waiter)
            await self._waiting

    def close(self) -> None:
        self._ws.close()


class Client:
    """The server as etcd's in-process client sees it, with the caller's credentials
    (``auth``, as the server's ``auth_info`` gives them); responses carry full headers."""

    def __init__(self, server: ConcurrencyServer, auth: Any = None) -> None:
        self.server = server
        self.auth = auth

    @classmethod
    async def for_call(cls, server: ConcurrencyServer, ctx: ServerContext) -> Client:
        """A client with the credentials of the call's token."""
        auth = await _shielded(maybeDeferred(auth_info_of, server, ctx))
        return cls(server, auth)

    async def _call(self, method: Callable[[Any, Any], Any], request: Any) -> Any:
        response = await _shielded(maybeDeferred(method, request, self.auth))
        return fill_header(self.server, response)

    async def txn(self, t: rpc_pb2.TxnRequest) -> rpc_pb2.TxnResponse:
        return await self._call(self.server.kv_frontend.txn, t)

    async def get(self, r: rpc_pb2.RangeRequest) -> rpc_pb2.RangeResponse:
        return await self._call(self.server.kv_frontend.range, r)

    async def delete(self, key: bytes) -> rpc_pb2.DeleteRangeResponse:
        return await self._call(
            self.server.kv_frontend.delete_range, rpc_pb2.DeleteRangeRequest(key=key)
        )

    def delete_later(self, key: bytes) -> None:
        """Delete ``key`` without waiting (clean-up that outlives the request)."""
        Deferred.fromCoroutine(self.delete(key)).addErrback(lambda _: None)

    async def session_lease(self, lease: int) -> int:
        """``lease``, or a new one of :data:`SESSION_TTL` seconds when it is 0 (a session's lease)."""
        if lease:
            return lease
        granted = await self._call(
            self.server.leases.grant, rpc_pb2.LeaseGrantRequest(TTL=SESSION_TTL)
        )
        return granted.ID

    def watch(self, key: bytes, end: bytes = b"", start_rev: int = 0) -> KeyWatch:
        return KeyWatch(self.server.watchable, key, end, start_rev)

    def header(self, revision: int) -> rpc_pb2.ResponseHeader:
        return self.server.header(revision)


async def wait_delete(client: Client, key: bytes, rev: int) -> None:
    """Return once ``key`` is deleted at or after revision ``rev``."""
    watch = client.watch(key, start_rev=rev)
    try:
        while True:
            response = await watch.next()
            if any(ev.type == Event.DELETE for ev in response.events):
                return
    finally:
        watch.close()


async def wait_deletes(
    client: Client, prefix: bytes, max_create_rev: int
) -> rpc_pb2.ResponseHeader:
    """Return once no key under ``prefix`` was created at or before ``max_create_rev``."""
    while True:
        resp = await client.get(last_create_before(prefix, max_create_rev))
        if not resp.kvs:
            return resp.header
        await wait_delete(client, resp.kvs[0].key, resp.header.revision)


def as_client_error(failure: Failure) -> GrpcError:
    """The status etcd's lock and election servers send for ``failure``: UNKNOWN, etcd's text."""
    if failure.check(CancelledError):
        return GrpcError(StatusCode.CANCELLED, "context canceled")
    if failure.check(ConcurrencyError):
        return GrpcError(StatusCode.UNKNOWN, str(failure.value))
    return GrpcError(StatusCode.UNKNOWN, to_grpc_error(failure).message)


def call_handler(
    server: ConcurrencyServer,
    run: Callable[[Client, Any], Coroutine[Any, Any, Any]],
) -> Callable[[Any, ServerContext], Deferred[Any]]:
    """A unary handler running ``run(client, request)`` with a client holding the caller's
    credentials; the call's cancellation cancels it.

    ``hasleader`` and the learner rule are checked first, with their own codes (they
    are etcd's interceptors, in front of every service).
    """

    def handler(request: Any, ctx: ServerContext) -> Deferred[Any]:
        try:
            require_leader(server, ctx)
            check_learner(server, request)
        except Exception as e:  # noqa: BLE001 - reported as the client's status
            return fail(to_grpc_error(e))

        async def start() -> Any:
            return await run(await Client.for_call(server, ctx), request)

        d = Deferred.fromCoroutine(start())
        ctx.when_cancelled().addCallback(lambda _: d.cancel())

        def reraise(failure: Failure) -> None:
            raise as_client_error(failure)

        return d.addErrback(reraise)

    return handler
