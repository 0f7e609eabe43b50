"""HPACK without the per-call cost for the header blocks a gRPC server sees again and again.

*Encoding.* A server answers with the same few header blocks (``:status 200`` +
``content-type``, then ``grpc-status: 0``). Encoded with only static-table
references and literals *without indexing*, such a block never reads or changes the
dynamic table, so its bytes are a constant: :class:`CachingEncoder` keeps them and
hands every other block to hpack's encoder unchanged.

*Decoding.* A client repeats its request headers (path, authority, content-type,
te, user-agent), and after the first request they are mostly references into the
dynamic table, so the bytes repeat too. A block decodes to the same headers as long
as the dynamic table is the same and the block does not change it; the table carries
a version that every change bumps, and :class:`CachingDecoder` reuses a result only
for the same bytes at the same version.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from hpack import Decoder, Encoder
from hpack.struct import HeaderTuple
from hpack.table import HeaderTable

#: Most distinct request header blocks remembered per connection.
DECODE_CACHE_SIZE = 64


def _integer(value: int, prefix_bits: int, first_byte: int) -> bytes:
    """An HPACK integer with an ``prefix_bits``-bit prefix, OR-ed into ``first_byte``."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes((first_byte | value,))
    out = bytearray((first_byte | limit,))
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _string(value: bytes) -> bytes:
    """An HPACK string literal, not Huffman-coded."""
    return _integer(len(value), 7, 0) + value


def encode_static(headers: Sequence[tuple[bytes, bytes]]) -> bytes:
    """Encode a header block that touches no dynamic table: exact static matches are
    indexed, everything else is a literal without indexing (static name if any)."""
    out = bytearray()
    for name, value in headers:
        index = HeaderTable.STATIC_TABLE_MAPPING.get(name)
        full = None
        if index is not None:
            _, by_value = index
            full = by_value.get(value)
        if full is not None:
            out += _integer(full, 7, 0x80)
        elif index is not None:
            out += _integer(index[0], 4, 0x00) + _string(value)
        else:
            out += b"\x00" + _string(name) + _string(value)
    return bytes(out)


class CachingEncoder(Encoder):
    """hpack's encoder, except that registered blocks come from a table of constants."""

    def __init__(self, constant_blocks: Iterable[Sequence[tuple[bytes, bytes]]] = ()) -> None:
        super().__init__()
        self._constants: dict[tuple[tuple[bytes, bytes], ...], bytes] = {
            tuple(block): encode_static(block) for block in constant_blocks
        }

    def encode(self, headers: object, huffman: bool = True) -> bytes:
        if not self.header_table.resized and isinstance(headers, list):
            constant = self._constants.get(tuple(headers))
            if constant is not None:
                return constant
        return super().encode(headers, huffman)


class _VersionedTable(HeaderTable):
    """A header table that counts its changes."""

    def __init__(self) -> None:
        super().__init__()
        self.version = 0

    def add(self, name: bytes, value: bytes) -> None:
        self.version += 1
        super().add(name, value)

    @HeaderTable.maxsize.setter  # type: ignore[attr-defined]
    def maxsize(self, newmax: int) -> None:
        self.version += 1
        HeaderTable.maxsize.fset(self, newmax)  # type: ignore[attr-defined]


class CachingDecoder(Decoder):
    """hpack's decoder, reusing the result for a repeated block while the table is unchanged."""

    def __init__(self) -> None:
        super().__init__()
        self.header_table = _VersionedTable()
        self._cache: dict[
            tuple[bytes, bool], tuple[int, tuple[HeaderTuple, ...], dict[str, Any]]
        ] = {}

    def decode(self, data: bytes, raw: bool = False) -> list[HeaderTuple]:
        return list(self._decode(bytes(data), raw)[0])

    def decode_memo(self, data: bytes) -> tuple[tuple[HeaderTuple, ...], dict[str, Any]]:
        """Decode raw (bytes) headers, with a memo: a dict shared by every decoding
        of the same block to the same headers, where callers keep what they derive
        from them (a block decoded only once gets a dict of its own)."""
        return self._decode(data, True)

    def _decode(self, data: bytes, raw: bool) -> tuple[tuple[HeaderTuple, ...], dict[str, Any]]:
        key = (data, raw)
        table = self.header_table
        hit = self._cache.get(key)
        if hit is not None and hit[0] == table.version:
            return hit[1], hit[2]
        before = table.version
        headers = tuple(super().decode(data, raw))
        memo: dict[str, Any] = {}
        if table.version == before:
            if len(self._cache) >= DECODE_CACHE_SIZE:
                self._cache.clear()
            self._cache[key] = (before, headers, memo)
        return headers, memo
