"""The method registry: which handler serves which ``/package.Service/Method``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol

from etcd_twisted.grpc.status import GrpcError, StatusCode

__all__ = ["Method", "MethodKind", "Registry"]


class RequestType(Protocol):
    """A message class: protobuf's generated classes fit."""

    def FromString(self, data: bytes) -> Any: ...  # noqa: N802 (protobuf's name)


class MethodKind(Enum):
    """The four gRPC call shapes."""

    UNARY = "unary"
    SERVER_STREAM = "server_stream"
    CLIENT_STREAM = "client_stream"
    BIDI_STREAM = "bidi_stream"

    @property
    def streams_requests(self) -> bool:
        """True when the handler starts at once and receives messages as they come."""
        return self in (MethodKind.CLIENT_STREAM, MethodKind.BIDI_STREAM)


@dataclass(frozen=True, slots=True)
class Method:
    """One registered method."""

    path: str
    kind: MethodKind
    deserialize: Callable[[bytes], Any]
    handler: Callable[..., Any]
    #: ``kind.streams_requests``, read on every call.
    streams_requests: bool = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "streams_requests", self.kind.streams_requests)


class Registry:
    """Maps method paths to handlers.

    Handler signatures (each may return a value, a Deferred, or be ``async``):

    - unary ``handler(request, ctx) -> response``;
    - server-streaming ``handler(request, ctx, stream)``;
    - client-streaming ``handler(ctx, stream) -> response``;
    - bidi-streaming ``handler(ctx, stream)``.

    A streaming handler that returns a Deferred (or coroutine) ends the call when
    it fires; one that returns ``None`` leaves the call open until it calls
    ``stream.finish()``. Raising or failing with `GrpcError` ends the call with
    that status; any other exception ends it with UNKNOWN.
    """

    def __init__(self) -> None:
        self._methods: dict[str, Method] = {}
        self._services: set[str] = set()

    def add_unary(self, path: str, request_cls: RequestType, handler: Callable[..., Any]) -> None:
        """Register a unary method."""
        self._add(path, MethodKind.UNARY, request_cls, handler)

    def add_server_stream(
        self, path: str, request_cls: RequestType, handler: Callable[..., Any]
    ) -> None:
        """Register a server-streaming method."""
        self._add(path, MethodKind.SERVER_STREAM, request_cls, handler)

    def add_client_stream(
        self, path: str, request_cls: RequestType, handler: Callable[..., Any]
    ) -> None:
        """Register a client-streaming method."""
        self._add(path, MethodKind.CLIENT_STREAM, request_cls, handler)

    def add_bidi_stream(
        self, path: str, request_cls: RequestType, handler: Callable[..., Any]
    ) -> None:
        """Register a bidirectional-streaming method."""
        self._add(path, MethodKind.BIDI_STREAM, request_cls, handler)

    def _add(
        self, path: str, kind: MethodKind, request_cls: RequestType, handler: Callable[..., Any]
    ) -> None:
        service, sep, name = path[1:].rpartition("/")
        if not path.startswith("/") or not sep or not service or not name:
            raise ValueError(f"method path must be /package.Service/Method, not {path!r}")
        if path in self._methods:
            raise ValueError(f"method {path} is already registered")
        self._methods[path] = Method(path, kind, request_cls.FromString, handler)
        self._services.add(service)

    def lookup(self, path: str) -> Method:
        """The method at ``path``; raises UNIMPLEMENTED with grpc-go's messages."""
        method = self._methods.get(path)
        if method is not None:
            return method
        service, sep, name = path.removeprefix("/").rpartition("/")
        if not sep:
            raise GrpcError(StatusCode.UNIMPLEMENTED, f'malformed method name: "{path}"')
        if service not in self._services:
            raise GrpcError(StatusCode.UNIMPLEMENTED, f"unknown service {service}")
        raise GrpcError(StatusCode.UNIMPLEMENTED, f"unknown method {name} for service {service}")
