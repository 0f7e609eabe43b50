"""Tests for etcd_twisted.wal.data_dir: telling what a data directory holds."""

from __future__ import annotations

import os

from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted.wal import DataDir, DataDirError, DirType, identify_data_dir
from etcd_twisted.wal.data_dir import backend_path, snap_dir, wal_dir


class IdentifyTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.dir = self.mktemp()

    def make(self, *names: str) -> None:
        for name in names:
            os.makedirs(os.path.join(self.dir, name))

    def test_missing_is_empty(self) -> None:
        """A data dir that does not exist is EMPTY."""
        self.assertEqual(identify_data_dir(self.dir), DataDir(DirType.EMPTY))

    def test_empty_mount_point_is_empty(self) -> None:
        """lost+found and hidden files do not make a directory non-empty."""
        self.make("lost+found", ".snapshot")
        self.assertEqual(identify_data_dir(self.dir).type, DirType.EMPTY)

    def test_auto_tls_fixtures_alone_is_empty(self) -> None:
        """The certificates --auto-tls writes before the member exists leave it EMPTY."""
        self.make("fixtures/client", "fixtures/peer")
        self.assertEqual(identify_data_dir(self.dir).type, DirType.EMPTY)

    def test_member(self) -> None:
        """A member directory makes a MEMBER data dir; other names are reported."""
        self.make("member/wal", "notes")
        self.assertEqual(identify_data_dir(self.dir), DataDir(DirType.MEMBER, ("notes",)))

    def test_unknown_layout_is_refused(self) -> None:
        """A non-empty directory without member is refused with the names found."""
        self.make("photos")
        with self.assertRaises(DataDirError) as caught:
            identify_data_dir(self.dir)
        self.assertIn("photos", str(caught.exception))
        self.assertIn("unknown layout", str(caught.exception))

    def test_member_and_proxy_is_refused(self) -> None:
        """Both member and proxy directories are refused."""
        self.make("member", "proxy")
        with self.assertRaisesRegex(DataDirError, "both member and proxy"):
            identify_data_dir(self.dir)

    def test_proxy_is_refused(self) -> None:
        """A v2 proxy data dir is refused."""
        self.make("proxy")
        with self.assertRaisesRegex(DataDirError, "proxy"):
            identify_data_dir(self.dir)

    def test_member_file_is_refused(self) -> None:
        """A plain file named member is refused."""
        os.makedirs(self.dir)
        with open(os.path.join(self.dir, "member"), "w"):
            pass
        with self.assertRaisesRegex(DataDirError, "not a directory"):
            identify_data_dir(self.dir)

    def test_data_dir_file_is_refused(self) -> None:
        """A data dir path that is a file is refused."""
        with open(self.dir, "w"):
            pass
        with self.assertRaisesRegex(DataDirError, "not a directory"):
            identify_data_dir(self.dir)

    def test_paths(self) -> None:
        """The WAL, snapshots and backend live under member/ as in etcd."""
        self.assertEqual(wal_dir("d"), os.path.join("d", "member", "wal"))
        self.assertEqual(snap_dir("d"), os.path.join("d", "member", "snap"))
        self.assertEqual(backend_path("d"), os.path.join("d", "member", "snap", "db"))
