"""gRPC status codes, the error handlers raise, and the ``grpc-message`` encoding."""

from __future__ import annotations

from collections.abc import Iterable
from enum import IntEnum

__all__ = ["GrpcError", "StatusCode", "percent_decode", "percent_encode"]


class StatusCode(IntEnum):
    """The 17 gRPC status codes (``grpc-status`` values)."""

    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16


class GrpcError(Exception):
    """A call's failure status; raise it (or fail a Deferred with it) from a handler.

    ``trailing_metadata`` is sent with the status, as ``(key, value)`` pairs; a
    key ending in ``-bin`` takes ``bytes``.
    """

    def __init__(
        self,
        code: StatusCode,
        message: str = "",
        trailing_metadata: Iterable[tuple[str, str | bytes]] = (),
    ) -> None:
        super().__init__(code, message)
        self.code = StatusCode(code)
        self.message = message
        self.trailing_metadata = list(trailing_metadata)

    def __str__(self) -> str:
        return f"{self.code.name}: {self.message}"


def _plain(byte: int) -> bool:
    return 0x20 <= byte <= 0x7E and byte != 0x25


def percent_encode(message: str) -> bytes:
    """Encode a status message for ``grpc-message``: UTF-8, then %XX for bytes
    outside printable ASCII and for ``%`` itself (the gRPC HTTP/2 spec)."""
    raw = message.encode("utf-8")
    if all(_plain(b) for b in raw):
        return raw
    return b"".join(bytes((b,)) if _plain(b) else b"%%%02X" % b for b in raw)


def percent_decode(value: bytes) -> str:
    """Decode a ``grpc-message`` value; a malformed escape is kept as it is."""
    out = bytearray()
    i, n = 0, len(value)
    while i < n:
        b = value[i]
        if b == 0x25 and i + 2 < n and _is_hex(value[i + 1 : i + 3]):
            out.append(int(value[i + 1 : i + 3], 16))
            i += 3
        else:
            out.append(b)
            i += 1
    return out.decode("utf-8", "replace")


def _is_hex(pair: bytes) -> bool:
    return len(pair) == 2 and all(c in b"0123456789abcdefABCDEF" for c in pair)
