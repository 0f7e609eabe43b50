"""Tests for etcd_twisted.backend.bbolt_read: meta page choice, trailers and damaged files.

Reading real etcd 3.5.1 snapshots is covered by tests.integration.test_snapshot_interchange.
"""

from __future__ import annotations

import hashlib

from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted.backend.bbolt_format import PAGE_HEADER
from etcd_twisted.backend.bbolt_read import BboltFormatError, BboltReader
from tests.backend.test_bbolt_write import PAGE, file_bytes

DATA = {b"key": {b"%04d" % i: b"value %d" % i for i in range(500)}, b"meta": {b"term": b"\x02"}}


class BboltReadTests(SynchronousTestCase):
    def path_of(self, raw: bytes) -> str:
        path = self.mktemp()
        with open(path, "wb") as f:
            f.write(raw)
        return path

    def read(self, raw: bytes) -> tuple[int, dict[bytes, dict[bytes, bytes]]]:
        with BboltReader(self.path_of(raw)) as r:
            return r.txid, {name: dict(pairs) for name, pairs in r.buckets()}

    def test_newest_meta_wins(self) -> None:
        """The valid meta page with the higher txid (page 0 here) is used."""
        self.assertEqual(self.read(file_bytes(DATA)), (1, DATA))

    def test_damaged_meta_falls_back_to_the_other(self) -> None:
        """A meta page failing its checksum is skipped for the other one."""
        raw = bytearray(file_bytes(DATA))
        raw[PAGE_HEADER.size + 40] ^= 0xFF  # meta 0's txid
        self.assertEqual(self.read(bytes(raw)), (0, DATA))

    def test_no_valid_meta(self) -> None:
        """With both meta pages damaged the file is refused."""
        raw = bytearray(file_bytes(DATA))
        raw[PAGE_HEADER.size] ^= 0xFF
        raw[PAGE + PAGE_HEADER.size] ^= 0xFF
        with self.assertRaises(BboltFormatError):
            self.read(bytes(raw))

    def test_sha256_trailer_is_ignored(self) -> None:
        """The sha256 ``etcdctl snapshot save`` appends is not part of the database."""
        raw = file_bytes(DATA)
        with BboltReader(self.path_of(raw + hashlib.sha256(raw).digest())) as r:
            self.assertEqual(r.size, len(raw))
            self.assertEqual({n: dict(p) for n, p in r.buckets()}, DATA)

    def test_truncated_file(self) -> None:
        """A file shorter than its meta page count says is refused."""
        with self.assertRaises(BboltFormatError):
            self.read(file_bytes(DATA)[:-PAGE])

    def test_empty_file(self) -> None:
        """An empty file is not a database."""
        with self.assertRaises(BboltFormatError):
            self.read(b"")

    def test_bad_page_type(self) -> None:
        """A tree pointing at a page that is neither branch nor leaf is refused."""
        raw = bytearray(file_bytes(DATA))
        for pgid in range(3, len(raw) // PAGE):
            flags_at = pgid * PAGE + 8
            if raw[flags_at] == 0x02 and pgid != len(raw) // PAGE - 1:  # a bucket's leaf
                raw[flags_at] = 0x20
                break
        with self.assertRaises(BboltFormatError):
            self.read(bytes(raw))
