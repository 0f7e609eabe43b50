"""JSON as etcd 3.5's grpc-gateway reads and writes it: Go's ``encoding/json`` under
golang/protobuf's ``jsonpb`` (v1.5), down to which inputs are refused and the exact
error text, since the gateway returns that text to the client.

Reading (``Decoder``, ``unmarshal_message``) follows ``jsonpb.Unmarshaler`` with unknown
fields allowed: a request is the first JSON value of the body (anything after it is
ignored), a top-level ``null`` is the empty message, each field is looked up by its
proto name and then by its lowerCamel JSON name (which wins), ``null`` leaves a field
unset, 64-bit and 32-bit integers may be quoted (the quotes are stripped and the rest
parsed as a JSON number, so ``"1e3"`` and ``1.0`` are refused), enums are names (as
written, without unescaping) or numbers, and ``bytes`` are standard padded base64 (or
an array of byte values). Syntax errors carry Go's scanner messages.

Writing (``marshal``) is Go's ``json.Marshal`` of the values ``MessageToDict`` gives:
``<``, ``>``, ``&``, U+2028 and U+2029 escaped, other non-ASCII text as UTF-8, control
characters other than tab, newline and return as ``\\u00XX``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

_SPACE = b" \t\r\n"
_DIGITS = b"0123456789"
_HEX = b"0123456789abcdefABCDEF"
_B64 = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_B64_VALUES = {c: i for i, c in enumerate(_B64)}


class GoJsonError(ValueError):
    """A JSON input refused, with the text Go gives the error."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class _EndOfInput(Exception):
    """The input ended inside a value; ``context`` is set when a space there would
    itself be an error (Go reports that error for ``json.Unmarshal``)."""

    def __init__(self, context: str | None = None) -> None:
        super().__init__(context)
        self.context = context


def go_quote(data: bytes | str) -> str:
    """Go's ``strconv.Quote``: a double-quoted string with Go escapes."""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch in "\a\b\f\n\r\t\v":
            out.append(
                {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t",
                 "\v": "\\v"}[ch]
            )  # fmt: skip
        elif ch.isprintable():
            out.append(ch)
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


def _quote_char(c: int) -> str:
    """Go's scanner ``quoteChar``: the byte as a rune in single quotes."""
    if c == ord("'"):
        return "'\\''"
    if c == ord('"'):
        return "'\"'"
    return "'" + go_quote(chr(c))[1:-1] + "'"


#: Go's ``encoding/json`` refuses values nested deeper than this.
MAX_NESTING_DEPTH = 10000
#: Containers at least this long have their end remembered, so a value is scanned once
#: however many enclosing messages are unmarshalled (linear time, little memory).
_REMEMBER_END = 512


class _Scanner:
    """Go's JSON scanner, iterative (nesting is bounded only by Go's 10000 levels):
    the end of one value, or Go's error."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.n = len(data)
        #: start -> end of the long containers scanned so far
        self.ends: dict[int, int] = {}

    def fail(self, i: int, context: str) -> GoJsonError:
        return GoJsonError(f"invalid character {_quote_char(self.data[i])} {context}")

    def space(self, i: int) -> int:
        while i < self.n and self.data[i] in _SPACE:
            i += 1
        return i

    def value(self, i: int) -> int:
        """The end of the value starting at ``i`` (after spaces)."""
        data, n = self.data, self.n
        open_at: list[int] = []  # start of each enclosing container
        while True:
            i = self.space(i)
            if i == n:
                raise _EndOfInput()
            c = data[i]
            if c == ord("{") or c == ord("["):
                known = self.ends.get(i)
                if known is not None:
                    i = known
                else:
                    if len(open_at) >= MAX_NESTING_DEPTH:
                        raise self.fail(i, "exceeded max depth")
                    open_at.append(i)
                    i = self.space(i + 1)
                    if i == n:
                        raise _EndOfInput()
                    if data[i] == (ord("}") if c == ord("{") else ord("]")):
                        i = self._close(open_at, i + 1)
                    elif c == ord("{"):
                        i = self._key(i)
                        continue
                    else:
                        continue
            elif c == ord('"'):
                i = self.string(i)
            elif c == ord("-") or c in _DIGITS:
                i = self.number(i)
            else:
                for word in (b"true", b"false", b"null"):
                    if c == word[0]:
                        i = self.literal(i, word)
                        break
                else:
                    raise self.fail(i, "looking for beginning of value")
            # after a value: close containers or move to the next member
            while True:
                if not open_at:
                    return i
                i = self.space(i)
                if i == n:
                    raise _EndOfInput()
                in_object = data[open_at[-1]] == ord("{")
                if data[i] == (ord("}") if in_object else ord("]")):
                    i = self._close(open_at, i + 1)
                    continue
                if data[i] != ord(","):
                    raise self.fail(
                        i, "after object key:value pair" if in_object else "after array element"
                    )
                if in_object:
                    i = self.space(i + 1)
                    if i == n:
                        raise _EndOfInput()
                    i = self._key(i)
                else:
                    i += 1
                break

    def _key(self, i: int) -> int:
        """Past an object key and its colon, at ``i`` (a non-space)."""
        if self.data[i] != ord('"'):
            raise self.fail(i, "looking for beginning of object key string")
        i = self.space(self.string(i))
        if i == self.n:
            raise _EndOfInput()
        if self.data[i] != ord(":"):
            raise self.fail(i, "after object key")
        return i + 1

    def _close(self, open_at: list[int], end: int) -> int:
        start = open_at.pop()
        if end - start >= _REMEMBER_END:
            self.ends[start] = end
        return end

    def members(self, start: int) -> list[tuple[int, int, int, int]]:
        """``(key start, key end, value start, value end)`` of the valid object at ``start``."""
        out = []
        i = self.space(start + 1)
        if self.data[i] == ord("}"):
            return out
        while True:
            key_end = self.string(i)
            value_start = self.space(self.space(key_end) + 1)
            value_end = self.value(value_start)
            out.append((i, key_end, value_start, value_end))
            i = self.space(value_end)
            if self.data[i] == ord("}"):
                return out
            i = self.space(i + 1)

    def items(self, start: int) -> list[tuple[int, int]]:
        """``(start, end)`` of each element of the valid array at ``start``."""
        out = []
        i = self.space(start + 1)
        if self.data[i] == ord("]"):
            return out
        while True:
            item_start = self.space(i)
            item_end = self.value(item_start)
            out.append((item_start, item_end))
            i = self.space(item_end)
            if self.data[i] == ord("]"):
                return out
            i += 1

    def string(self, i: int) -> int:
        i += 1
        while True:
            if i == self.n:
                raise _EndOfInput()
            c = self.data[i]
            if c == ord('"'):
                return i + 1
            if c == ord("\\"):
                i += 1
                if i == self.n:
                    raise _EndOfInput("in string escape code")
                c = self.data[i]
                if c == ord("u"):
                    for _ in range(4):
                        i += 1
                        if i == self.n:
                            raise _EndOfInput("in \\u hexadecimal character escape")
                        if self.data[i] not in _HEX:
                            raise self.fail(i, "in \\u hexadecimal character escape")
                elif c not in b'"\\/bfnrt':
                    raise self.fail(i, "in string escape code")
            elif c < 0x20:
                raise self.fail(i, "in string literal")
            i += 1

    def digits(self, i: int) -> int:
        while i < self.n and self.data[i] in _DIGITS:
            i += 1
        return i

    def number(self, i: int) -> int:
        if self.data[i] == ord("-"):
            i += 1
            if i == self.n:
                raise _EndOfInput("in numeric literal")
            if self.data[i] not in _DIGITS:
                raise self.fail(i, "in numeric literal")
        i = i + 1 if self.data[i] == ord("0") else self.digits(i)
        if i < self.n and self.data[i] == ord("."):
            i += 1
            if i == self.n:
                raise _EndOfInput("after decimal point in numeric literal")
            if self.data[i] not in _DIGITS:
                raise self.fail(i, "after decimal point in numeric literal")
            i = self.digits(i)
        if i < self.n and self.data[i] in b"eE":
            i += 1
            if i < self.n and self.data[i] in b"+-":
                i += 1
            if i == self.n:
                raise _EndOfInput("in exponent of numeric literal")
            if self.data[i] not in _DIGITS:
                raise self.fail(i, "in exponent of numeric literal")
            i = self.digits(i)
        return i

    def literal(self, i: int, word: bytes) -> int:
        name = word.decode()
        for k in range(1, len(word)):
            context = f"in literal {name} (expecting {_quote_char(word[k])})"
            if i + k == self.n:
                raise _EndOfInput(context)
            if self.data[i + k] != word[k]:
                raise self.fail(i + k, context)
        return i + len(word)


def check_valid(data: bytes) -> None:
    """Go's ``json.Unmarshal`` syntax check of a whole input."""
    scanner = _Scanner(data)
    try:
        end = scanner.space(scanner.value(0))
    except _EndOfInput as e:
        if e.context is not None:
            raise GoJsonError(f"invalid character ' ' {e.context}") from None
        raise GoJsonError("unexpected end of JSON input") from None
    if end != len(data):
        raise scanner.fail(end, "after top-level value")


class Decoder:
    """Go's ``json.Decoder`` over a request body: one JSON value after another."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def next_raw(self) -> bytes | None:
        """The next value's bytes, or None at the end (``io.EOF``)."""
        scanner = _Scanner(self.data)
        start = scanner.space(self.pos)
        if start == len(self.data):
            self.pos = start
            return None
        try:
            end = scanner.value(start)
        except _EndOfInput:
            raise GoJsonError("unexpected EOF") from None
        self.pos = end
        return self.data[start:end]

    def decode(self, cls: type[Message]) -> Message | None:
        """The next request message, or None at the end of the body."""
        raw = self.next_raw()
        if raw is None:
            return None
        message = cls()
        if raw != b"null":
            unmarshal_message(message, raw)
        return message


def _kind(raw: bytes) -> str:
    """The JSON kind Go names in an ``UnmarshalTypeError``."""
    c = raw[:1]
    if c == b"{":
        return "object"
    if c == b"[":
        return "array"
    if c == b'"':
        return "string"
    if c in (b"t", b"f"):
        return "bool"
    return "number"


def _type_error(value: str, go_type: str) -> GoJsonError:
    return GoJsonError(f"json: cannot unmarshal {value} into Go value of type {go_type}")


def _array_items(raw: bytes) -> list[bytes]:
    """The elements of a (valid) array as raw slices."""
    return [raw[start:end] for start, end in _Scanner(raw).items(0)]


def _string(raw: bytes) -> str:
    """A JSON string's text (invalid UTF-8 and lone surrogates become U+FFFD, as in Go)."""
    text = json.loads(raw.decode("utf-8", "replace"))
    return re.sub("[\ud800-\udfff]", "\ufffd", text)


def go_base64(text: bytes) -> bytes:
    """Go's ``base64.StdEncoding.DecodeString``, with its error positions."""
    out = bytearray()
    si, n = 0, len(text)
    while True:
        quantum: list[int] = []
        j = 0
        while j < 4:
            if si == n:
                if j == 0:
                    return bytes(out)
                raise GoJsonError(f"illegal base64 data at input byte {si - j}")
            c = text[si]
            si += 1
            if c in _B64_VALUES:
                quantum.append(_B64_VALUES[c])
                j += 1
                continue
            if c in b"\r\n":
                continue
            if c != ord("=") or j in (0, 1):
                raise GoJsonError(f"illegal base64 data at input byte {si - 1}")
            if j == 2:  # "==" expected; the first is consumed
                while si < n and text[si] in b"\r\n":
                    si += 1
                if si == n:
                    raise GoJsonError(f"illegal base64 data at input byte {n}")
                if text[si] != ord("="):
                    raise GoJsonError(f"illegal base64 data at input byte {si - 1}")
                si += 1
            while si < n and text[si] in b"\r\n":
                si += 1
            if si < n:
                raise GoJsonError(f"illegal base64 data at input byte {si}")
            break
        value = 0
        for k in range(4):
            value = (value << 6) | (quantum[k] if k < len(quantum) else 0)
        out.extend(value.to_bytes(3, "big")[: max(len(quantum) - 1, 0) if j < 4 else 3])
        if j < 4:
            return bytes(out)


_INT_TYPES = {
    FieldDescriptor.TYPE_INT64: ("int64", -(1 << 63), (1 << 63) - 1),
    FieldDescriptor.TYPE_SINT64: ("int64", -(1 << 63), (1 << 63) - 1),
    FieldDescriptor.TYPE_SFIXED64: ("int64", -(1 << 63), (1 << 63) - 1),
    FieldDescriptor.TYPE_INT32: ("int32", -(1 << 31), (1 << 31) - 1),
    FieldDescriptor.TYPE_SINT32: ("int32", -(1 << 31), (1 << 31) - 1),
    FieldDescriptor.TYPE_SFIXED32: ("int32", -(1 << 31), (1 << 31) - 1),
    FieldDescriptor.TYPE_UINT64: ("uint64", 0, (1 << 64) - 1),
    FieldDescriptor.TYPE_FIXED64: ("uint64", 0, (1 << 64) - 1),
    FieldDescriptor.TYPE_UINT32: ("uint32", 0, (1 << 32) - 1),
    FieldDescriptor.TYPE_FIXED32: ("uint32", 0, (1 << 32) - 1),
}
_INTEGER = re.compile(rb"-?[0-9]+\Z")
#: Longer than any 64-bit integer (leading zeros aside, which JSON does not allow).
_MAX_INT_TEXT = 21


def _go_int(raw: bytes, go_type: str, low: int, high: int) -> int | None:
    """``json.Unmarshal`` of ``raw`` into a Go integer (None for null)."""
    check_valid(raw)
    raw = raw.strip(_SPACE)
    kind = _kind(raw)
    if raw == b"null":
        return None
    if kind != "number":
        raise _type_error(kind, go_type)
    if (
        _INTEGER.match(raw) is None
        or go_type.startswith("uint")
        and raw.startswith(b"-")
        or len(raw) > _MAX_INT_TEXT  # out of range, and too long for int() to take
    ):
        raise _type_error(f"number {raw.decode()}", go_type)
    value = int(raw)
    if not low <= value <= high:
        raise _type_error(f"number {raw.decode()}", go_type)
    return value


def _trim_quote(raw: bytes) -> bytes:
    if len(raw) >= 2 and raw[:1] == b'"' and raw[-1:] == b'"':
        return raw[1:-1]
    return raw


def _scalar(field: FieldDescriptor, raw: bytes) -> Any:
    """One value of ``field`` from its raw JSON (None: leave the zero value)."""
    t = field.type
    if t in _INT_TYPES:
        go_type, low, high = _INT_TYPES[t]
        return _go_int(_trim_quote(raw), go_type, low, high)
    if t == FieldDescriptor.TYPE_ENUM:
        if len(raw) >= 2 and raw[:1] == b'"' and raw[-1:] == b'"':
            name = raw[1:-1].decode("utf-8", "replace")
            value = field.enum_type.values_by_name.get(name)
            if value is None:
                raise GoJsonError(
                    f"unknown value {go_quote(raw)} for enum {field.enum_type.full_name}"
                )
            return value.number
        return _go_int(raw, "protoreflect.EnumNumber", -(1 << 31), (1 << 31) - 1)
    check_valid(raw)
    if raw == b"null":
        return None
    kind = _kind(raw)
    if t == FieldDescriptor.TYPE_BOOL:
        if kind != "bool":
            raise _type_error(kind, "bool")
        return raw == b"true"
    if t == FieldDescriptor.TYPE_STRING:
        if kind != "string":
            raise _type_error(kind, "string")
        return _string(raw)
    if t == FieldDescriptor.TYPE_BYTES:
        if kind == "string":
            return go_base64(_string(raw).encode("utf-8"))
        if kind == "array":
            values = [_go_int(item, "uint8", 0, 255) for item in _array_items(raw)]
            return bytes(v or 0 for v in values)
        raise _type_error(kind, "[]uint8")
    if t in (FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_DOUBLE):
        go_type = "float32" if t == FieldDescriptor.TYPE_FLOAT else "float64"
        raw = _trim_quote(raw)
        check_valid(raw)
        raw = raw.strip(_SPACE)
        if _kind(raw) != "number":
            raise _type_error(_kind(raw), go_type)
        return float(raw)
    raise GoJsonError(f"unsupported field type {t} for {field.full_name}")


def unmarshal_message(message: Message, raw: bytes) -> None:
    """jsonpb's ``unmarshalMessage``: fill ``message`` from the JSON object ``raw``.

    Sub-messages are filled depth first as jsonpb recurses, but from a stack of
    generators rather than Python recursion, over one scan of ``raw``.
    """
    if raw == b"null":
        return
    check_valid(raw)
    scanner = _Scanner(raw)
    scanner.value(0)  # remembers where the long containers end
    stack = [_fill(scanner, message, 0, len(raw))]
    while stack:
        try:
            sub, start, end = next(stack[-1])
        except StopIteration:
            stack.pop()
            continue
        stack.append(_fill(scanner, sub, start, end))


def _fill(
    scanner: _Scanner, message: Message, start: int, end: int
) -> Iterator[tuple[Message, int, int]]:
    """Fill ``message``'s fields from the object at ``data[start:end]``, yielding each
    sub-message with its span for the caller to fill before going on."""
    data = scanner.data
    start = scanner.space(start)
    if data[start] != ord("{"):
        raise _type_error(_kind(data[start : start + 1]), "map[string]json.RawMessage")
    # a later duplicate wins
    members = {_string(data[ks:ke]): (vs, ve) for ks, ke, vs, ve in scanner.members(start)}
    descriptor: Descriptor = message.DESCRIPTOR
    for field in descriptor.fields:
        span = members.get(field.name)
        if field.json_name in members:
            span = members[field.json_name]
        if span is None or data[span[0] : span[1]] == b"null":
            continue
        vs, ve = span
        if field.is_repeated:
            if data[vs] != ord("["):
                raise _type_error(_kind(data[vs : vs + 1]), "[]json.RawMessage")
            target = getattr(message, field.name)
            for item_start, item_end in scanner.items(vs):
                if field.type == FieldDescriptor.TYPE_MESSAGE:
                    if data[item_start:item_end] != b"null":
                        yield target.add(), item_start, item_end
                    else:
                        target.add()
                else:
                    value = _scalar(field, data[item_start:item_end])
                    target.append(_zero(field) if value is None else value)
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            sub = getattr(message, field.name)
            sub.SetInParent()
            yield sub, vs, ve
        else:
            value = _scalar(field, data[vs:ve])
            if value is not None:
                setattr(message, field.name, value)


def _zero(field: FieldDescriptor) -> Any:
    if field.type == FieldDescriptor.TYPE_BYTES:
        return b""
    if field.type == FieldDescriptor.TYPE_STRING:
        return ""
    if field.type == FieldDescriptor.TYPE_BOOL:
        return False
    return 0


def parse(body: bytes, cls: type[Message]) -> Message:
    """A unary request as grpc-gateway decodes it: the body's first JSON value (an
    empty body is the empty request). Raises ``GoJsonError``."""
    message = Decoder(body).decode(cls)
    return cls() if message is None else message


# -- writing ---------------------------------------------------------------------------

_GO_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028",
               "\u2029": "\\u2029", '"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r",
               "\t": "\\t"}  # fmt: skip
_GO_NEEDS_ESCAPE = re.compile('[<>&\u2028\u2029"\\\\\x00-\x1f]')


def _go_string(text: str) -> str:
    def escape(match: re.Match[str]) -> str:
        ch = match.group()
        return _GO_ESCAPES.get(ch) or f"\\u{ord(ch):04x}"

    return '"' + _GO_NEEDS_ESCAPE.sub(escape, text) + '"'


def marshal(value: Any) -> str:
    """``value`` (dicts, lists, strings, numbers, booleans, None) as Go's
    ``json.Marshal`` writes it, compactly and in the order given."""
    if isinstance(value, str):
        return _go_string(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{_go_string(k)}:{marshal(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(marshal(v) for v in value) + "]"
    return json.dumps(value)
