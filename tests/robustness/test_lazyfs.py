"""The power-loss simulator drops exactly what was not synced (real FUSE mounts)."""

from __future__ import annotations

import os

import lmdb
from twisted.trial.unittest import TestCase

from etcd_twisted.wal.files import fsync_dir
from tests.support.power_loss import PowerLossMixin


def _write(path: str, data: bytes, *, sync: bool, append: bool = False) -> None:
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
    fd = os.open(path, flags, 0o600)
    try:
        os.write(fd, data)
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


class LazyMountTests(PowerLossMixin, TestCase):
    timeout = 60

    def test_unsynced_write_is_dropped(self) -> None:
        """Bytes written after the last fsync are gone after a power loss; the fsynced ones stay."""
        path = os.path.join(self.mnt, "f")
        _write(path, b"durable", sync=True)
        fsync_dir(self.mnt)
        _write(path, b"+lost", sync=False, append=True)
        self.assertEqual(_read(path), b"durable+lost")
        self.power_loss()
        self.assertEqual(_read(path), b"durable")

    def test_fdatasync_keeps_write(self) -> None:
        """A write followed by fdatasync survives the power loss."""
        path = os.path.join(self.mnt, "f")
        _write(path, b"a" * 10000, sync=True)
        fsync_dir(self.mnt)
        fd = os.open(path, os.O_WRONLY)
        os.pwrite(fd, b"b" * 5000, 3000)
        os.fdatasync(fd)
        os.pwrite(fd, b"c", 0)
        os.close(fd)
        self.power_loss()
        self.assertEqual(_read(path), b"a" * 3000 + b"b" * 5000 + b"a" * 2000)

    def test_unsynced_truncate_is_undone(self) -> None:
        """A truncation never synced is undone: the file has its synced length and bytes."""
        path = os.path.join(self.mnt, "f")
        _write(path, b"0123456789" * 1000, sync=True)
        fsync_dir(self.mnt)
        os.truncate(path, 5)
        self.assertEqual(_read(path), b"01234")
        self.power_loss()
        self.assertEqual(_read(path), b"0123456789" * 1000)

    def test_file_whose_directory_was_not_synced_disappears(self) -> None:
        """A new file fsynced itself but whose directory entry was never synced is gone."""
        path = os.path.join(self.mnt, "new")
        _write(path, b"data", sync=True)
        self.power_loss()
        self.assertFalse(os.path.exists(path))

    def test_synced_directory_keeps_file(self) -> None:
        """The same file survives once its directory is fsynced too."""
        path = os.path.join(self.mnt, "new")
        _write(path, b"data", sync=True)
        fsync_dir(self.mnt)
        self.power_loss()
        self.assertEqual(_read(path), b"data")

    def test_unsynced_rename_and_unlink_are_undone(self) -> None:
        """A rename over an existing file and an unlink, not followed by a directory fsync, are undone."""
        a, b, c = (os.path.join(self.mnt, n) for n in "abc")
        _write(a, b"A", sync=True)
        _write(b, b"B", sync=True)
        _write(c, b"C", sync=True)
        fsync_dir(self.mnt)
        os.replace(a, b)
        os.unlink(c)
        self.assertEqual(sorted(os.listdir(self.mnt)), ["b"])
        self.power_loss()
        self.assertEqual([_read(a), _read(b), _read(c)], [b"A", b"B", b"C"])

    def test_lmdb_keeps_its_last_synced_commit(self) -> None:
        """LMDB (mmap reads, C writes) through the mount: a NOSYNC commit is lost, a synced one kept."""
        path = os.path.join(self.mnt, "db")
        env = lmdb.open(path, subdir=False, sync=False, metasync=False, map_size=1 << 24)
        fsync_dir(self.mnt)
        with env.begin(write=True) as txn:
            txn.put(b"k1", b"synced")
        env.sync(True)
        with env.begin(write=True) as txn:
            txn.put(b"k2", b"not synced")
        with env.begin() as txn:
            self.assertEqual(txn.get(b"k2"), b"not synced")
        env.close()
        self.power_loss()
        env = lmdb.open(path, subdir=False, map_size=1 << 24)
        try:
            with env.begin() as txn:
                self.assertEqual((txn.get(b"k1"), txn.get(b"k2")), (b"synced", None))
        finally:
            env.close()

    def test_torn_power_loss_keeps_some_unsynced_pages(self) -> None:
        """A torn power loss writes part of the unsynced pages, in no order: neither all nor none."""
        path = os.path.join(self.mnt, "f")
        _write(path, b"o" * 4096 * 64, sync=True)
        fsync_dir(self.mnt)
        fd = os.open(path, os.O_WRONLY)
        os.pwrite(fd, b"n" * 4096 * 64, 0)
        os.close(fd)
        self.power_loss(torn_seed=1)
        pages = [
            p[:1]
            for p in (lambda d: [d[i : i + 4096] for i in range(0, len(d), 4096)])(_read(path))
        ]
        self.assertEqual(len(pages), 64)
        self.assertTrue(0 < pages.count(b"n") < 64, pages)
