"""Small file-system helpers shared by the WAL, snapshot and backend code."""

from __future__ import annotations

import errno
import fcntl
import os

FILE_MODE = 0o600
DIR_MODE = 0o700


def fsync_dir(path: str) -> None:
    """Make a rename, create or unlink inside ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def makedirs_durable(path: str, mode: int = DIR_MODE) -> None:
    """``os.makedirs(path, exist_ok=True)``, with each new directory's entry fsynced in its parent."""
    path = os.path.abspath(path)
    if os.path.isdir(path):
        return
    parent = os.path.dirname(path)
    makedirs_durable(parent, mode)
    try:
        os.mkdir(path, mode)
    except FileExistsError:
        return
    fsync_dir(parent)


def preallocate(fd: int, size: int) -> None:
    """Reserve ``size`` bytes of zeros for the file (a sparse extension if unsupported)."""
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as e:
        if e.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
            raise
        if os.fstat(fd).st_size < size:
            os.ftruncate(fd, size)


def try_lock(fd: int) -> bool:
    """Take an exclusive advisory lock on the open file without waiting."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def write_all(fd: int, data: bytes | bytearray, offset: int) -> None:
    """``pwrite`` all of ``data`` at ``offset``."""
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, offset)
        view, offset = view[n:], offset + n


def write_file_atomic(path: str, data: bytes, *, sync: bool = True) -> None:
    """Write ``path`` so that it is either absent or whole: temp file, fsync, rename.

    ``sync=False`` (``--unsafe-no-fsync``) keeps the rename but skips both fsyncs."""
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    try:
        write_all(fd, data, 0)
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    if sync:
        fsync_dir(os.path.dirname(path) or ".")
