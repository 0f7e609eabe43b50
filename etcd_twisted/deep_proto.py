"""Protobuf decoding past upb's nesting limit, for etcd's nested Txns.

upb (protobuf's C decoder) refuses messages nested more than 100 levels deep, and
counts ``TxnRequest`` and ``RequestOp`` as one level each: a Txn nested 51 times is
already too deep for it, while etcd (Go, no such limit) takes Txns as deep as
``--max-txn-ops`` allows (128 levels with the default 128). :func:`parse` decodes with
upb when it can; when upb gives up on depth, that level's wire bytes are split here,
its plain fields decoded with upb and each sub-message queued for the same treatment,
so only the levels past upb's limit cost Python work. ``max_depth`` bounds the levels.
"""

from __future__ import annotations

from typing import TypeVar

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import DecodeError, Message

__all__ = ["DEFAULT_MAX_DEPTH", "TooDeepError", "parse", "merge", "split_fields"]

#: Message levels accepted: far above any Txn etcd's ``--max-txn-ops`` check lets through
#: with its default (each Txn level is two messages).
DEFAULT_MAX_DEPTH = 10_000

_UPB_DEPTH_ERROR = "MaxDepth"
M = TypeVar("M", bound=Message)


class TooDeepError(DecodeError):
    """A message nested deeper than the ``max_depth`` asked for."""


def parse(cls: type[M], data: bytes, max_depth: int = DEFAULT_MAX_DEPTH) -> M:
    """``cls.FromString(data)``, for messages nested up to ``max_depth`` levels."""
    message = cls()
    merge(message, data, max_depth)
    return message


def merge(message: Message, data: bytes, max_depth: int = DEFAULT_MAX_DEPTH) -> None:
    """Decode ``data`` into the empty ``message``. Raises ``DecodeError``.

    Iterative (no Python recursion), so the depth is bounded by ``max_depth`` alone.
    """
    work = [(message, data, 1)]
    while work:
        target, body, depth = work.pop()
        try:
            target.MergeFromString(body)
            continue
        except DecodeError as e:
            if _UPB_DEPTH_ERROR not in str(e):
                raise
        target.Clear()
        if depth >= max_depth:
            raise TooDeepError(
                f"Error parsing message with type '{target.DESCRIPTOR.full_name}': "
                f"nested more than {max_depth} levels"
            )
        work.extend((sub, sub_body, depth + 1) for sub, sub_body in _split_level(target, body))


def _split_level(message: Message, data: bytes) -> list[tuple[Message, bytes]]:
    """Decode one level's plain fields with upb and attach its sub-messages; return
    each attached sub-message with the bytes still to decode into it.

    Fields are applied in wire order (plain runs flushed before each sub-message is
    attached), so oneof members and repeated fields end as upb would leave them; a
    singular sub-message seen twice gets its concatenated encodings (protobuf's merge).
    """
    fields = message.DESCRIPTOR.fields_by_number
    plain = bytearray()
    repeated: list[tuple[Message, bytes]] = []
    singular: dict[str, tuple[Message, bytes]] = {}
    for number, start, body_start, end in split_fields(data):
        field = fields.get(number)
        if (
            field is None
            or field.type != FieldDescriptor.TYPE_MESSAGE
            or body_start == start  # not length-delimited: let upb report it
        ):
            plain += data[start:end]
            continue
        if plain:
            message.MergeFromString(bytes(plain))
            plain.clear()
        body = data[body_start:end]
        if field.is_repeated:
            repeated.append((getattr(message, field.name).add(), body))
            continue
        sub = getattr(message, field.name)
        sub.SetInParent()
        earlier = singular.get(field.name)
        singular[field.name] = (sub, (earlier[1] if earlier else b"") + body)
    if plain:
        message.MergeFromString(bytes(plain))
    # a later oneof member may have replaced a sub-message: decode only those still set
    return repeated + [(sub, body) for name, (sub, body) in singular.items()
                       if message.HasField(name)]  # fmt: skip


def read_varint(data: bytes, pos: int) -> tuple[int, int]:
    """The varint at ``pos`` and the position after it. Raises ``DecodeError``."""
    value = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise DecodeError("Error parsing message: truncated varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def split_fields(data: bytes):  # noqa: ANN201 (a generator of 4-tuples)
    """Yield ``(field number, start, body start, end)`` of each field in ``data``;
    ``body start`` is the start of a length-delimited field's payload, else ``start``."""
    pos, n = 0, len(data)
    while pos < n:
        start = pos
        tag, pos = read_varint(data, pos)
        number, wire_type = tag >> 3, tag & 7
        if number == 0:
            raise DecodeError("Error parsing message: field number 0")
        body_start = start
        if wire_type == 0:
            _, pos = read_varint(data, pos)
        elif wire_type == 1:
            pos += 8
        elif wire_type == 5:
            pos += 4
        elif wire_type == 2:
            length, pos = read_varint(data, pos)
            body_start = pos
            pos += length
        else:
            raise DecodeError(f"Error parsing message: wire type {wire_type}")
        if pos > n:
            raise DecodeError("Error parsing message: truncated field")
        yield number, start, body_start, pos
