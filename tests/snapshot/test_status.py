"""Tests for etcd_twisted.snapshot.status: etcdutl's numbers and formats, and the hash check."""

from __future__ import annotations

import os
import subprocess

from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted.snapshot.status import (
    HashMismatchError,
    Status,
    db_status,
    format_status,
    has_checksum,
    human_bytes,
    verify,
)
from tests.backend.test_bbolt_write import bbolt_file
from tests.integration.test_snapshot_interchange import etcdutl_path
from tests.snapshot.helpers import snapshot_of_filled_backend

FORMATS = ("simple", "table", "json", "fields")


class FormatTests(SynchronousTestCase):
    def test_human_bytes(self) -> None:
        """Sizes print as go-humanize's ``Bytes`` prints them."""
        cases = {
            0: "0 B",
            9: "9 B",
            10: "10 B",
            999: "999 B",
            1000: "1.0 kB",
            16384: "16 kB",
            20480: "20 kB",
            3854336: "3.9 MB",
            999_999: "1000 kB",
            2 * 1024**3: "2.1 GB",
        }
        self.assertEqual({n: human_bytes(n) for n in cases}, cases)

    def test_formats(self) -> None:
        """Each ``-w`` format prints what etcdutl 3.5.1 prints for the same status."""
        status = Status(hash=0x1544C525, revision=19999, total_key=20003, total_size=3854336)
        self.assertEqual(format_status(status, "simple"), "1544c525, 19999, 20003, 3.9 MB")
        self.assertEqual(
            format_status(status, "json"),
            '{"hash":356828453,"revision":19999,"totalKey":20003,"totalSize":3854336}',
        )
        self.assertEqual(
            format_status(status, "fields"),
            '"Hash" : 356828453\n"Revision" : 19999\n"Keys" : 20003\n"Size" : 3854336',
        )
        self.assertEqual(
            format_status(status, "table"),
            "+----------+----------+------------+------------+\n"
            "|   HASH   | REVISION | TOTAL KEYS | TOTAL SIZE |\n"
            "+----------+----------+------------+------------+\n"
            "| 1544c525 |    19999 |      20003 |     3.9 MB |\n"
            "+----------+----------+------------+------------+",
        )
        self.assertRaises(ValueError, format_status, status, "protobuf")


class VerifyTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.path = snapshot_of_filled_backend(self.mktemp())

    def test_good_hash(self) -> None:
        """A snapshot as saved passes the check."""
        self.assertTrue(has_checksum(os.path.getsize(self.path)))
        verify(self.path)

    def test_mismatch(self) -> None:
        """A changed byte fails with etcd's message (the digests as Go prints byte slices)."""
        with open(self.path, "r+b") as f:
            f.seek(5000)
            f.write(b"\xff")
        with self.assertRaises(HashMismatchError) as caught:
            verify(self.path)
        self.assertRegex(str(caught.exception), r"^expected sha256 \[(\d+ ){31}\d+\], got \[")
        verify(self.path, skip_hash_check=True)

    def test_missing_hash(self) -> None:
        """A bare database needs --skip-hash-check, as etcd says."""
        with open(self.path, "r+b") as f:
            f.truncate(os.path.getsize(self.path) - 32)
        with self.assertRaises(HashMismatchError) as caught:
            verify(self.path)
        self.assertEqual(str(caught.exception), "snapshot missing hash but --skip-hash-check=false")
        verify(self.path, skip_hash_check=True)


class AgainstEtcdutlTests(SynchronousTestCase):
    """Files from our writer pass real bbolt's consistency check, and our status matches."""

    def check(self, data: dict[bytes, dict[bytes, bytes]]) -> None:
        path = self.mktemp()
        with open(path, "wb") as f:
            for chunk in bbolt_file(data).chunks():
                f.write(chunk)
        for fmt in FORMATS:
            real = subprocess.run(
                [etcdutl_path(), "snapshot", "status", path, "-w", fmt],
                capture_output=True,
                text=True,
                timeout=60,
            )
            self.assertEqual(real.returncode, 0, real.stderr)
            self.assertEqual(format_status(db_status(path), fmt) + "\n", real.stdout)

    def test_etcd_like_buckets(self) -> None:
        """etcd's ten buckets, a few thousand revisions, one big value, empty buckets."""
        keys = {i.to_bytes(8, "big") + b"_" + bytes(8): b"v" * (i % 500) for i in range(1, 4000)}
        keys[(5000).to_bytes(8, "big") + b"_" + bytes(8)] = b"x" * 70_000
        names = [b"alarm", b"auth", b"authRoles", b"authUsers", b"cluster", b"lease"]
        data = {name: {} for name in names}
        data[b"key"] = keys
        data[b"meta"] = {b"consistent_index": bytes(8)}
        data[b"members"] = {b"1": b"{}"}
        data[b"members_removed"] = {}
        self.check(data)

    def test_deep_tree_of_many_keys(self) -> None:
        """Three levels of pages (40k small pairs) pass bbolt's check."""
        self.check({b"key": {i.to_bytes(8, "big") + b"_" + bytes(8): b"" for i in range(40_000)}})
