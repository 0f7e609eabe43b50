"""The grpc-proxy's way to the members: one gRPC connection at a time, moving on to the
next endpoint when it cannot connect or the connection is lost.

Reads and other calls that are safe to repeat are retried once on another member
when the connection carrying them fails; a write that may have been applied is not
repeated (its client sees UNAVAILABLE, as etcd's clients would, and retries).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from twisted.internet import endpoints
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorCore, IReactorTime
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.python.failure import Failure

from etcd_twisted.grpc.client import ClientCall, GrpcClientProtocol
from etcd_twisted.grpc.metadata import MetadataValue
from etcd_twisted.grpc.status import GrpcError, StatusCode

__all__ = ["Upstream", "tcp_dialer"]

log = Logger()

#: Opens a gRPC connection to ``host:port``.
Dialer = Callable[[str, int], Deferred[GrpcClientProtocol]]


def tcp_dialer(
    reactor: IReactorCore, timeout: float = 5.0, tls: Callable[[str], Any] | None = None
) -> Dialer:
    """Dials members over TCP: h2c, or TLS made by ``tls(host)`` when given."""

    def dial(host: str, port: int) -> Deferred[GrpcClientProtocol]:
        endpoint: Any = endpoints.HostnameEndpoint(reactor, host, port, timeout=timeout)
        if tls is not None:
            endpoint = endpoints.wrapClientTLS(tls(host), endpoint)
        return endpoints.connectProtocol(endpoint, GrpcClientProtocol(f"{host}:{port}"))

    return dial


class Upstream:
    """Calls to the members through the current connection, with failover."""

    def __init__(
        self,
        members: Sequence[tuple[str, int]],
        dial: Dialer,
        clock: IReactorTime,
        give_up_after: float = 10.0,
    ) -> None:
        if not members:
            raise ValueError("no endpoints")
        self.members = list(members)
        self._dial = dial
        self._clock = clock
        self._give_up_after = give_up_after
        self._index = 0
        self._current: GrpcClientProtocol | None = None
        self._connecting: list[Deferred[GrpcClientProtocol]] | None = None

    @property
    def current_member(self) -> tuple[str, int]:
        return self.members[self._index]

    def connection(self) -> Deferred[GrpcClientProtocol]:
        """The live connection, or a new one (trying each member in turn)."""
        if self._current is not None:
            if self._current.usable:
                return succeed(self._current)
            self._lost(self._current)
        waiter: Deferred[GrpcClientProtocol] = Deferred()
        if self._connecting is not None:
            self._connecting.append(waiter)
            return waiter
        self._connecting = [waiter]
        Deferred.fromCoroutine(self._connect()).addBoth(self._connected)
        return waiter

    async def _connect(self) -> GrpcClientProtocol:
        deadline = self._clock.seconds() + self._give_up_after
        last: Exception | None = None
        while True:
            for _ in range(len(self.members)):
                host, port = self.members[self._index]
                try:
                    return await self._dial(host, port)
                except Exception as e:  # noqa: BLE001 - any failure moves to the next member
                    last = e
                    log.warn(
                        "cannot connect to {host}:{port}: {error}", host=host, port=port, error=e
                    )
                    self._index = (self._index + 1) % len(self.members)
            if self._clock.seconds() >= deadline:
                raise GrpcError(StatusCode.UNAVAILABLE, f"no member is reachable: {last}")
            await deferLater(self._clock, 0.2, lambda: None)

    def _connected(self, result: Any) -> None:
        waiters, self._connecting = self._connecting or [], None
        if isinstance(result, Failure):
            for waiter in waiters:
                waiter.errback(result)
            return
        self._current = result
        result.when_lost.addCallback(lambda _: self._lost(result))
        for waiter in waiters:
            waiter.callback(result)

    def _lost(self, connection: GrpcClientProtocol) -> None:
        if connection is self._current:
            self._current = None
            self._index = (self._index + 1) % len(self.members)
            log.info(
                "connection to a member lost; the next is {member}", member=self.current_member
            )

    async def unary(
        self,
        path: str,
        request: bytes,
        metadata: Iterable[tuple[str, MetadataValue]] = (),
        timeout: float | None = None,
        retry: bool = True,
    ) -> bytes:
        """One unary call; retried once on another member when ``retry`` and the
        connection failed under it."""
        metadata = list(metadata)
        attempts = 2 if retry else 1
        for attempt in range(attempts):
            connection = await self.connection()
            try:
                return await connection.unary(path, request, metadata, timeout)
            except GrpcError as e:
                if e.code != StatusCode.UNAVAILABLE or attempt + 1 == attempts:
                    raise
                if connection.usable:
                    raise
        raise AssertionError("unreachable")

    async def stream(
        self,
        path: str,
        metadata: Iterable[tuple[str, MetadataValue]],
        on_message: Callable[[bytes], Any],
        on_close: Callable[[GrpcError | None], Any],
    ) -> ClientCall:
        """Open a streaming call on the live connection."""
        connection = await self.connection()
        return connection.start_call(path, metadata, on_message, on_close)

    def close(self) -> None:
        """Close the live connection."""
        if self._current is not None:
            self._current.close()
            self._current = None
