"""``etcdutl snapshot status``: what a snapshot file holds, and its integrity hash.

A snapshot as ``etcdctl snapshot save`` writes it is a bbolt database followed
by the sha256 of the database; a database file copied from a data dir has no
such trailer. As etcd tells them apart: a file whose size is 32 more than a
multiple of 512 carries the hash.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass

import crc32c

from etcd_twisted.backend.bbolt_read import BboltReader
from etcd_twisted.mvcc.revision import bytes_to_rev

__all__ = ["HashMismatchError", "Status", "db_status", "format_status", "has_checksum", "verify"]

SHA_SIZE = hashlib.sha256().digest_size
_READ = 1 << 20


class HashMismatchError(ValueError):
    """The snapshot's trailing sha256 does not match its content (or is missing)."""


@dataclass(frozen=True)
class Status:
    """etcd's ``snapshot.Status``."""

    hash: int
    revision: int
    total_key: int
    total_size: int


def has_checksum(size: int) -> bool:
    """Whether a file of ``size`` bytes ends with a sha256 (etcd's ``hasChecksum``)."""
    return size % 512 == SHA_SIZE


def verify(path: str, skip_hash_check: bool = False) -> None:
    """Check the trailing sha256 against the content, as ``etcdutl snapshot restore`` does."""
    size = os.path.getsize(path)
    if not has_checksum(size):
        if not skip_hash_check:
            raise HashMismatchError("snapshot missing hash but --skip-hash-check=false")
        return
    if skip_hash_check:
        return
    h = hashlib.sha256()
    with open(path, "rb") as f:
        remaining = size - SHA_SIZE
        while remaining:
            block = f.read(min(_READ, remaining))
            if not block:
                raise HashMismatchError(f"{path}: file shrank while being read")
            h.update(block)
            remaining -= len(block)
        want = f.read(SHA_SIZE)
    got = h.digest()
    if got != want:
        raise HashMismatchError(f"expected sha256 {_go_bytes(want)}, got {_go_bytes(got)}")


def _go_bytes(data: bytes) -> str:
    """A byte slice as Go's ``%v`` prints it."""
    return "[" + " ".join(str(b) for b in data) + "]"


def db_status(path: str) -> Status:
    """Hash (CRC32-C over every bucket name, key and value), revision, pairs and size."""
    crc = 0
    revision = 0
    total = 0
    with BboltReader(path) as db:
        for name, pairs in db.buckets():
            crc = crc32c.crc32c(name, crc)
            is_key = name == b"key"
            for key, value in pairs:
                crc = crc32c.crc32c(value, crc32c.crc32c(key, crc))
                if is_key:
                    revision = bytes_to_rev(key).main
                total += 1
        size = db.size
    return Status(crc, revision, total, size)


def human_bytes(n: int) -> str:
    """go-humanize's ``Bytes``: SI units, one decimal under 10."""
    if n < 10:
        return f"{n} B"
    units = ["B", "kB", "MB", "GB", "TB", "PB", "EB"]
    e = 0
    while 1000 ** (e + 1) <= n and e < len(units) - 1:
        e += 1
    rounded = math.floor(n / 1000**e * 10 + 0.5) / 10
    return f"{rounded:.1f} {units[e]}" if rounded < 10 else f"{rounded:.0f} {units[e]}"


def _table(header: list[str], row: list[str]) -> str:
    widths = [max(len(h), len(c)) + 2 for h, c in zip(header, row, strict=True)]
    line = "+" + "+".join("-" * w for w in widths) + "+"

    def centered(text: str, width: int) -> str:
        pad = width - 2 - len(text)
        return " " + " " * (pad // 2) + text + " " * (pad - pad // 2) + " "

    head = "|" + "|".join(centered(h, w) for h, w in zip(header, widths, strict=True)) + "|"
    body = (
        "|" + "|".join(" " + c.rjust(w - 2) + " " for c, w in zip(row, widths, strict=True)) + "|"
    )
    return "\n".join([line, head, line, body, line])


def format_status(status: Status, write_out: str) -> str:
    """The status as ``etcdutl snapshot status -w FORMAT`` prints it."""
    row = [
        f"{status.hash:x}",
        str(status.revision),
        str(status.total_key),
        human_bytes(status.total_size),
    ]
    if write_out == "simple":
        return ", ".join(row)
    if write_out == "table":
        return _table(["HASH", "REVISION", "TOTAL KEYS", "TOTAL SIZE"], row)
    if write_out == "json":
        doc = {
            "hash": status.hash,
            "revision": status.revision,
            "totalKey": status.total_key,
            "totalSize": status.total_size,
        }
        return json.dumps(doc, separators=(",", ":"))
    if write_out == "fields":
        return "\n".join(
            [
                f'"Hash" : {status.hash}',
                f'"Revision" : {status.revision}',
                f'"Keys" : {status.total_key}',
                f'"Size" : {status.total_size}',
            ]
        )
    raise ValueError("unsupported output format")
