"""Sans-I/O opening of a peer link: an HTTP/1.1 upgrade request and its answer.

The dialing member sends::

    POST /raft/stream HTTP/1.1            (or /raft/snapshot for one snapshot)
    Host: <peer host>
    Connection: Upgrade
    Upgrade: etcd-twisted-raft/1
    X-Etcd-Cluster-ID: <cluster id, hex>
    X-Server-From: <sender id, hex>
    X-Raft-To: <recipient id, hex>
    X-Server-Version: 3.5.1

and the accepting member answers ``101 Switching Protocols``, after which both sides
speak frames (``codec``), or an HTTP error with a plain-text reason and closes, using
etcd's statuses and words: 412 "cluster ID mismatch", 412 "to field mismatch",
410 "removed member", 404 "error sender not found".
"""

from __future__ import annotations

from dataclasses import dataclass
from http import HTTPStatus

from etcd_twisted import ETCD_VERSION

STREAM_PATH = "/raft/stream"
SNAPSHOT_PATH = "/raft/snapshot"
PATHS = (STREAM_PATH, SNAPSHOT_PATH)
UPGRADE = "etcd-twisted-raft/1"
#: A request or response head longer than this is refused.
MAX_HEAD = 8192


class HandshakeError(Exception):
    """A link cannot open: ``status`` and ``reason`` are what the acceptor answers."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class Hello:
    """Who opens a link, to whom, in which cluster, and for what (``path``)."""

    path: str
    cluster_id: int
    from_id: int
    to_id: int
    version: str = ETCD_VERSION


class HeadReader:
    """Collects bytes until a blank line ends an HTTP head."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, data: bytes) -> tuple[bytes, bytes] | None:
        """Add ``data``; once the head is complete return it and the bytes after it."""
        self._buffer += data
        head, sep, rest = self._buffer.partition(b"\r\n\r\n")
        if not sep:
            if len(self._buffer) > MAX_HEAD:
                raise HandshakeError(431, "request header fields too large")
            return None
        self._buffer = b""
        return head, rest


def _fields(lines: list[bytes]) -> dict[str, str]:
    fields = {}
    for line in lines:
        name, sep, value = line.partition(b":")
        if not sep:
            raise HandshakeError(400, "malformed header line")
        fields[name.strip().decode("latin-1").lower()] = value.strip().decode("latin-1")
    return fields


def _hex(fields: dict[str, str], name: str) -> int:
    try:
        return int(fields[name.lower()], 16)
    except (KeyError, ValueError):
        raise HandshakeError(400, f"missing or malformed {name}") from None


def encode_request(hello: Hello, host: str) -> bytes:
    """The upgrade request that opens a link."""
    return (
        f"POST {hello.path} HTTP/1.1\r\n"
        f"Host: {host}\r\n"
        "Connection: Upgrade\r\n"
        f"Upgrade: {UPGRADE}\r\n"
        f"X-Etcd-Cluster-ID: {hello.cluster_id:x}\r\n"
        f"X-Server-From: {hello.from_id:x}\r\n"
        f"X-Raft-To: {hello.to_id:x}\r\n"
        f"X-Server-Version: {hello.version}\r\n"
        "\r\n"
    ).encode("latin-1")


def parse_request(head: bytes) -> Hello:
    """Read an upgrade request head; raise ``HandshakeError`` if it is not one."""
    request_line, *lines = head.split(b"\r\n")
    parts = request_line.split(b" ")
    if len(parts) != 3 or parts[0] != b"POST" or not parts[2].startswith(b"HTTP/1."):
        raise HandshakeError(400, "malformed request line")
    path = parts[1].decode("latin-1")
    if path not in PATHS:
        raise HandshakeError(404, "404 page not found")
    fields = _fields(lines)
    if fields.get("upgrade") != UPGRADE:
        raise HandshakeError(426, f"upgrade to {UPGRADE} required")
    return Hello(
        path,
        _hex(fields, "X-Etcd-Cluster-ID"),
        _hex(fields, "X-Server-From"),
        _hex(fields, "X-Raft-To"),
        fields.get("x-server-version", ""),
    )


def encode_accept(cluster_id: int) -> bytes:
    """The answer that switches the connection to frames."""
    return (
        "HTTP/1.1 101 Switching Protocols\r\n"
        "Connection: Upgrade\r\n"
        f"Upgrade: {UPGRADE}\r\n"
        f"X-Etcd-Cluster-ID: {cluster_id:x}\r\n"
        f"X-Server-Version: {ETCD_VERSION}\r\n"
        "\r\n"
    ).encode("latin-1")


def encode_refusal(status: int, reason: str, cluster_id: int) -> bytes:
    """An HTTP error answer with a plain-text ``reason``; the acceptor closes after it."""
    body = (reason + "\n").encode()
    phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
    return (
        f"HTTP/1.1 {status} {phrase}\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        f"X-Etcd-Cluster-ID: {cluster_id:x}\r\n"
        f"X-Server-Version: {ETCD_VERSION}\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n"
        "\r\n"
    ).encode("latin-1") + body


@dataclass(frozen=True)
class Answer:
    """The acceptor's answer: its status, its cluster id, and a body's declared length."""

    status: int
    cluster_id: int | None
    content_length: int


def parse_answer(head: bytes) -> Answer:
    """Read an answer head; raise ``HandshakeError`` if it is not HTTP."""
    status_line, *lines = head.split(b"\r\n")
    parts = status_line.split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        raise HandshakeError(502, "peer answered with something other than HTTP")
    fields = _fields(lines)
    cluster = fields.get("x-etcd-cluster-id")
    try:
        cluster_id = int(cluster, 16) if cluster else None
        length = int(fields.get("content-length", "0"))
    except ValueError:
        raise HandshakeError(502, "peer answered with malformed headers") from None
    return Answer(int(parts[1]), cluster_id, length)
