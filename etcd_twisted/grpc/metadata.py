"""gRPC metadata (custom headers) and the ``grpc-timeout`` header."""

from __future__ import annotations

import binascii
from base64 import b64encode
from collections.abc import Iterable, Iterator

__all__ = ["Metadata", "encode_metadata", "parse_timeout"]

MetadataValue = str | bytes

# Request headers that are transport, not metadata (grpc-go's isReservedHeader,
# less its whitelist of :authority and user-agent).
_RESERVED = frozenset(
    {
        b"content-type",
        b"grpc-message-type",
        b"grpc-encoding",
        b"grpc-message",
        b"grpc-status",
        b"grpc-timeout",
        b"grpc-status-details-bin",
        b"te",
    }
)

_TIMEOUT_UNITS = {
    ord("H"): 3600.0,
    ord("M"): 60.0,
    ord("S"): 1.0,
    ord("m"): 1e-3,
    ord("u"): 1e-6,
    ord("n"): 1e-9,
}


class Metadata:
    """A call's metadata: lowercase keys, each with one or more values, in
    arrival order; values of ``-bin`` keys are ``bytes``, others ``str``."""

    __slots__ = ("_pairs",)

    def __init__(self, pairs: Iterable[tuple[str, MetadataValue]] = ()) -> None:
        self._pairs = [(k.lower(), v) for k, v in pairs]

    @classmethod
    def from_headers(cls, headers: Iterable[tuple[bytes, bytes]]) -> Metadata:
        """Build from raw HTTP/2 request headers, skipping reserved ones and
        base64-decoding ``-bin`` values (padded or not, comma-separated).

        Raises `ValueError` for a malformed ``-bin`` value.
        """
        pairs: list[tuple[str, MetadataValue]] = []
        for name, value in headers:
            if name in _RESERVED or (name[:1] == b":" and name != b":authority"):
                continue
            key = name.decode("ascii").lower()
            if key.endswith("-bin"):
                for part in value.split(b","):
                    pairs.append((key, _b64decode(part.strip())))
            else:
                pairs.append((key, value.decode("latin-1")))
        md = cls()
        md._pairs = pairs
        return md

    def get(self, key: str, default: MetadataValue | None = None) -> MetadataValue | None:
        """The first value of ``key``, or ``default``."""
        key = key.lower()
        for k, v in self._pairs:
            if k == key:
                return v
        return default

    def get_all(self, key: str) -> list[MetadataValue]:
        """Every value of ``key``, in order."""
        key = key.lower()
        return [v for k, v in self._pairs if k == key]

    def items(self) -> list[tuple[str, MetadataValue]]:
        """All ``(key, value)`` pairs, in order."""
        return list(self._pairs)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and any(k == key.lower() for k, _ in self._pairs)

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys(k for k, _ in self._pairs))

    def __len__(self) -> int:
        return len(self._pairs)

    def __repr__(self) -> str:
        return f"Metadata({self._pairs!r})"


def _b64decode(value: bytes) -> bytes:
    try:
        return binascii.a2b_base64(value + b"=" * (-len(value) % 4), strict_mode=True)
    except binascii.Error as e:
        raise ValueError(f"malformed binary metadata {value!r}: {e}") from None


def encode_metadata(pairs: Iterable[tuple[str, MetadataValue]]) -> list[tuple[bytes, bytes]]:
    """Encode metadata as HTTP/2 headers: lowercase keys, ``-bin`` values as
    unpadded base64 (as grpc-go sends them)."""
    headers = []
    for key, value in pairs:
        key = key.lower()
        if key.endswith("-bin"):
            raw = value if isinstance(value, bytes) else value.encode()
            encoded = b64encode(raw).rstrip(b"=")
        else:
            encoded = value.encode("latin-1") if isinstance(value, str) else value
        headers.append((key.encode("ascii"), encoded))
    return headers


def parse_timeout(value: bytes) -> float:
    """Seconds in a ``grpc-timeout`` value: 1 to 8 digits and a unit
    (``H M S m u n``). Raises `ValueError` when malformed."""
    unit = _TIMEOUT_UNITS.get(value[-1]) if value else None
    digits = value[:-1]
    if unit is None or not 1 <= len(digits) <= 8 or not digits.isdigit():
        raise ValueError(f"transport: timeout unit is not recognized: {value!r}")
    return int(digits) * unit
