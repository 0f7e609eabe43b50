"""Sans-I/O gRPC message framing: a 1-byte compressed flag, a 4-byte big-endian
length, then the message.

The decoder takes bytes split anywhere and returns whole messages; it enforces
the receive size limit as soon as a message's prefix arrives, before its body,
and again on a gzip-compressed message's size after decompression (as grpc-go,
which etcd builds with its gzip codec, reads it).
"""

from __future__ import annotations

import struct
import zlib

from etcd_twisted.grpc.status import GrpcError, StatusCode

__all__ = ["MessageDecoder", "encode_message"]

_PREFIX = struct.Struct(">BI")
_PREFIX_SIZE = _PREFIX.size


def encode_message(payload: bytes, compressed: bool = False) -> bytes:
    """Frame one message (``payload`` already compressed if ``compressed``)."""
    return _PREFIX.pack(int(compressed), len(payload)) + payload


class MessageDecoder:
    """Turns a stream of bytes into gRPC messages.

    ``encoding`` is the request's ``grpc-encoding``: with ``gzip`` compressed
    messages are decompressed; with any other, a compressed message fails the
    call as grpc-go does.
    """

    __slots__ = ("_buf", "_need", "_max", "_encoding")

    def __init__(self, max_receive_bytes: int, encoding: str | None = None) -> None:
        self._buf = bytearray()
        self._need = _PREFIX_SIZE
        self._max = max_receive_bytes
        self._encoding = encoding

    @property
    def has_partial(self) -> bool:
        """True when part of a message is buffered."""
        return bool(self._buf)

    def feed(self, data: bytes) -> list[bytes]:
        """Add bytes; return the messages they complete, oldest first.

        Raises `GrpcError` (RESOURCE_EXHAUSTED, INTERNAL or UNIMPLEMENTED) for a
        message the call cannot accept; the decoder is then of no further use.
        """
        buf = self._buf
        if buf:
            buf += data
            if len(buf) < self._need:
                return []
            view: bytes | bytearray = buf
        else:
            view = data
        out: list[bytes] = []
        pos, n = 0, len(view)
        while n - pos >= _PREFIX_SIZE:
            flag, length = _PREFIX.unpack_from(view, pos)
            if length > self._max:
                raise GrpcError(
                    StatusCode.RESOURCE_EXHAUSTED,
                    f"grpc: received message larger than max ({length} vs. {self._max})",
                )
            if flag and (flag != 1 or self._encoding != "gzip"):
                raise self._flag_error(flag)
            end = pos + _PREFIX_SIZE + length
            if end > n:
                self._need = end - pos
                break
            message = bytes(view[pos + _PREFIX_SIZE : end])
            out.append(gunzip(message, self._max) if flag else message)
            pos = end
        else:
            self._need = _PREFIX_SIZE
        if view is buf:
            del buf[:pos]
        elif pos < n:
            buf += data[pos:]
        return out

    def _flag_error(self, flag: int) -> GrpcError:
        if flag != 1:
            return GrpcError(
                StatusCode.INTERNAL, f"grpc: received unexpected payload format {flag}"
            )
        if self._encoding in (None, "identity"):
            return GrpcError(
                StatusCode.INTERNAL, "grpc: compressed flag set with identity or empty encoding"
            )
        return GrpcError(
            StatusCode.UNIMPLEMENTED,
            f'grpc: Decompressor is not installed for grpc-encoding "{self._encoding}"',
        )


def gunzip(data: bytes, limit: int) -> bytes:
    """A gzip-compressed message, no larger than ``limit`` bytes once decompressed;
    errors worded as grpc-go's (with Go's gzip reader)."""
    if len(data) < 10:
        raise _corrupt("unexpected EOF" if data else "EOF")
    if data[:3] != b"\x1f\x8b\x08":
        raise _corrupt("gzip: invalid header")
    # grpc-go then believes the size in the gzip trailer, and reads limit + 1 at most.
    size = int.from_bytes(data[-4:], "little")
    if size > limit:
        raise _too_large(size, limit)
    inflater = zlib.decompressobj(wbits=31)
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error as e:
        if "incorrect data check" in str(e) or "incorrect length check" in str(e):
            raise _corrupt("gzip: invalid checksum") from None
        raise _corrupt(f"flate: corrupt input ({e})") from None
    if len(out) > limit:
        raise _too_large(len(out), limit)
    if not inflater.eof:
        raise _corrupt("unexpected EOF")
    return out


def _too_large(size: int, limit: int) -> GrpcError:
    return GrpcError(
        StatusCode.RESOURCE_EXHAUSTED,
        f"grpc: received message after decompression larger than max ({size} vs. {limit})",
    )


def _corrupt(reason: str) -> GrpcError:
    return GrpcError(
        StatusCode.INTERNAL, f"grpc: failed to decompress the received message {reason}"
    )
