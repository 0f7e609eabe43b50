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


class _Scanner:
    """Go's JSON scanner as a recursive descent: the end of one value, or Go's error."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.n = len(data)

    def fail(self, i: int, context: str) -> GoJsonError:
        return GoJsonError(f"invalid character {_quote_char(self.data[i])} {context}")

    def space(self, i: int) -> int:
        while i < self.n and self.data[i] in _SPACE:
            i += 1
        return i

    def value(self, i: int) -> int:
        """The end of the value starting at ``i`` (after spaces)."""
        i = self.space(i)
        if i == self.n:
            raise _EndOfInput()
        c = self.data[i]
        if c == ord("{"):
            return self.object(i + 1)
        if c == ord("["):
            return self.array(i + 1)
        if c == ord('"'):
            return self.string(i)
        if c == ord("-") or c in _DIGITS:
            return self.number(i)
        for word in (b"true", b"false", b"null"):
            if c == word[0]:
                return self.literal(i, word)
        raise self.fail(i, "looking for beginning of value")

    def object(self, i: int) -> int:
        i = self.space(i)
        if i == self.n:
            raise _EndOfInput()
        if self.data[i] == ord("}"):
            return i + 1
        while True:
            if self.data[i] != ord('"'):
                raise self.fail(i, "looking for beginning of object key string")
            i = self.space(self.string(i))
            if i == self.n:
                raise _EndOfInput()
            if self.data[i] != ord(":"):
                raise self.fail(i, "after object key")
            i = self.space(self.value(i + 1))
            if i == self.n:
                raise _EndOfInput()
            if self.data[i] == ord("}"):
                return i + 1
            if self.data[i] != ord(","):
                raise self.fail(i, "after object key:value pair")
            i = self.space(i + 1)
            if i == self.n:
                raise _EndOfInput()

    def array(self, i: int) -> int:
        i = self.space(i)
        if i == self.n:
            raise _EndOfInput()
        if self.data[i] == ord("]"):
            return i + 1
        while True:
            i = self.space(self.value(i))
            if i == self.n:
                raise _EndOfInput()
            if self.data[i] == ord("]"):
                return i + 1
            if self.data[i] != ord(","):
                raise self.fail(i, "after array element")
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


def _split(raw: bytes, opener: bytes) -> list[tuple[bytes, bytes]] | list[bytes]:
    """The members of a (valid) object or array as raw slices."""
    scanner = _Scanner(raw)
    i = scanner.space(1)
    items: list[Any] = []
    close = ord("}") if opener == b"{" else ord("]")
    if raw[i] == close:
        return items
    while True:
        if opener == b"{":
            i = scanner.space(i)
            key_end = scanner.string(i)
            key = raw[i:key_end]
            i = scanner.space(key_end) + 1  # past ':'
            start = scanner.space(i)
            end = scanner.value(start)
            items.append((key, raw[start:end]))
        else:
            start = scanner.space(i)
            end = scanner.value(start)
            items.append(raw[start:end])
        i = scanner.space(end)
        if raw[i] == close:
            return items
        i += 1


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


def _go_int(raw: bytes, go_type: str, low: int, high: int) -> int | None:
    """``json.Unmarshal`` of ``raw`` into a Go integer (None for null)."""
    check_valid(raw)
    raw = raw.strip(_SPACE)
    kind = _kind(raw)
    if raw == b"null":
        return None
    if kind != "number":
        raise _type_error(kind, go_type)
    if _INTEGER.match(raw) is None or go_type.startswith("uint") and raw.startswith(b"-"):
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
            values = [_go_int(item, "uint8", 0, 255) for item in _split(raw, b"[")]
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


def _object(raw: bytes) -> dict[str, bytes]:
    """``json.Unmarshal`` into ``map[string]json.RawMessage`` (a later duplicate wins)."""
    check_valid(raw)
    kind = _kind(raw)
    if kind != "object":
        raise _type_error(kind, "map[string]json.RawMessage")
    return {_string(key): value for key, value in _split(raw, b"{")}  # type: ignore[misc]


def unmarshal_message(message: Message, raw: bytes) -> None:
    """jsonpb's ``unmarshalMessage``: fill ``message`` from the JSON object ``raw``."""
    if raw == b"null":
        return
    members = _object(raw)
    descriptor: Descriptor = message.DESCRIPTOR
    for field in descriptor.fields:
        value_raw = members.get(field.name)
        if field.json_name in members:
            value_raw = members[field.json_name]
        if value_raw is None or value_raw == b"null":
            continue
        if field.is_repeated:
            check_valid(value_raw)
            kind = _kind(value_raw)
            if kind != "array":
                raise _type_error(kind, "[]json.RawMessage")
            target = getattr(message, field.name)
            for item in _split(value_raw, b"["):
                if field.type == FieldDescriptor.TYPE_MESSAGE:
                    unmarshal_message(target.add(), item)  # type: ignore[arg-type]
                else:
                    value = _scalar(field, item)  # type: ignore[arg-type]
                    target.append(_zero(field) if value is None else value)
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            sub = getattr(message, field.name)
            sub.SetInParent()
            unmarshal_message(sub, value_raw)
        else:
            value = _scalar(field, value_raw)
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
