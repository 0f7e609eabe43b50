"""A power-loss simulator: a FUSE passthrough that keeps unsynced data in memory, as LazyFS does.

``python -m robustness.lazyfs BACKING MOUNT STATE`` serves ``BACKING`` at
``MOUNT``. Writes (and truncations, and extensions) to a file stay in this
process's memory, page by page, until the file is fsynced/fdatasynced; only
then do they reach ``BACKING``. Creating, renaming and removing names does
touch ``BACKING`` at once, but each such change is recorded in an undo journal
(``STATE/journal``, the replaced or removed file kept in ``STATE/stash``) until
its directory is fsynced. So ``BACKING`` plus the journal always describe the
state a disk would hold after a power loss at that instant.

Power loss: kill the processes using the mount, then SIGKILL this process (all
unsynced data goes with it) and detach the mount. A torn power loss first
writes a random half of the unsynced pages to ``BACKING`` (without any order,
as a disk cache may), then dies the same way: only writers that order their
writes with fsync (LMDB's data pages before its meta page) survive it. Starting it again first
undoes every journalled change whose directory was never fsynced (a file whose
directory entry was never synced disappears), then mounts. ``LazyMount`` does
all of that for tests and the robustness harness.

Chosen over an ``LD_PRELOAD`` shim (LMDB reads through mmap and writes with
pwritev from C, so a shim must cover every libc entry point, and the member's
Python too) and over recording at Python failpoints (which cannot see LMDB's
page writes at all): FUSE sits below every writer, C or Python, and the kernel
forwards every fsync, fdatasync and directory fsync to it. The cost is speed:
every read and write crosses into this Python process.
"""

from __future__ import annotations

import errno
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

from fuse import FUSE, FuseOSError, Operations

__all__ = ["LazyFS", "LazyMount", "fuse_available"]

PAGE = 4096


@dataclass
class _Dirty:
    """The unsynced state of one file (by backing inode)."""

    path: str
    size: int  # the size the file has for its readers
    zero_from: int  # backing bytes at or past this offset read as zeros (a truncation)
    pages: dict[int, bytearray] = field(default_factory=dict)


class LazyFS(Operations):
    """The FUSE operations: passthrough to ``backing`` with write-back held until fsync."""

    def __init__(self, backing: str, state: str) -> None:
        self.root = os.path.realpath(backing)
        self.stash = os.path.join(state, "stash")
        self.journal_path = os.path.join(state, "journal")
        os.makedirs(self.stash, exist_ok=True)
        self._lock = threading.RLock()
        self._dirty: dict[int, _Dirty] = {}
        self._journal: list[dict] = []
        self._stash_seq = 0
        self.recover()

    # -- the undo journal -----------------------------------------------------

    def recover(self) -> None:
        """Undo every name change whose directory was never fsynced (run before mounting)."""
        entries = []
        if os.path.exists(self.journal_path):
            with open(self.journal_path) as f:
                entries = [json.loads(line) for line in f if line.strip()]
        for e in reversed(entries):
            self._undo(e)
        shutil.rmtree(self.stash)
        os.makedirs(self.stash)
        self._write_journal([])

    def _undo(self, e: dict) -> None:
        full = self._full(e["path"])
        try:
            if e["op"] in ("create", "mkdir"):
                if os.path.isdir(full) and not os.path.islink(full):
                    shutil.rmtree(full)
                else:
                    os.unlink(full)
            elif e["op"] == "remove":
                os.rename(os.path.join(self.stash, e["stash"]), full)
            elif e["op"] == "rename":
                os.rename(self._full(e["new"]), full)
                if e["stash"] is not None:
                    os.rename(os.path.join(self.stash, e["stash"]), self._full(e["new"]))
        except FileNotFoundError:
            pass

    def _write_journal(self, entries: list[dict]) -> None:
        tmp = self.journal_path + ".tmp"
        with open(tmp, "w") as f:
            f.writelines(json.dumps(e) + "\n" for e in entries)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.journal_path)
        self._journal = entries

    def _record(self, entry: dict) -> None:
        with open(self.journal_path, "a") as f:
            f.write(json.dumps(entry) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self._journal.append(entry)

    def _to_stash(self, full: str) -> str:
        self._stash_seq += 1
        name = str(self._stash_seq)
        os.rename(full, os.path.join(self.stash, name))
        return name

    def tear(self, seed: int) -> int:
        """Write a random half of every file's unsynced pages to the backing file, unsynced
        and in no order (a torn power loss); returns how many were written."""
        rng = random.Random(seed)
        written = 0
        with self._lock:
            for node in self._dirty.values():
                try:
                    fd = os.open(self._full(node.path), os.O_WRONLY)
                except FileNotFoundError:
                    continue
                try:
                    for index, page in sorted(node.pages.items()):
                        start = index * PAGE
                        if start < node.size and rng.random() < 0.5:
                            os.pwrite(fd, page[: node.size - start], start)
                            written += 1
                finally:
                    os.close(fd)
        return written

    def serve_control(self, fifo: str) -> None:
        """Answer ``tear SEED`` lines on the FIFO ``fifo`` (a thread of the daemon): tear, then
        create ``fifo + ".done"`` holding the count of pages written."""
        while True:
            with open(fifo) as f:
                for line in f:
                    cmd, _, arg = line.strip().partition(" ")
                    if cmd == "tear":
                        n = self.tear(int(arg))
                        with open(fifo + ".done", "w") as done:
                            done.write(str(n))

    # -- helpers --------------------------------------------------------------

    def _full(self, path: str) -> str:
        return os.path.join(self.root, path.lstrip("/"))

    def _node(self, path: str, fd: int | None = None) -> tuple[int, _Dirty]:
        st = os.fstat(fd) if fd is not None else os.lstat(self._full(path))
        node = self._dirty.get(st.st_ino)
        if node is None:
            node = self._dirty[st.st_ino] = _Dirty(path, st.st_size, st.st_size)
        return st.st_ino, node

    def _page(self, node: _Dirty, fd: int, index: int) -> bytearray:
        page = node.pages.get(index)
        if page is None:
            page = bytearray(self._backing_read(node, fd, index * PAGE, PAGE).ljust(PAGE, b"\0"))
            node.pages[index] = page
        return page

    def _backing_read(self, node: _Dirty, fd: int, offset: int, size: int) -> bytes:
        end = min(offset + size, node.zero_from)
        data = os.pread(fd, end - offset, offset) if end > offset else b""
        return data.ljust(min(offset + size, node.size) - offset, b"\0")

    def _flush(self, ino: int, fh: int) -> None:
        node = self._dirty.pop(ino, None)
        if node is None:
            return
        # Through the handle, not a path: the file may have been renamed (or its directory).
        fd = os.open(f"/proc/self/fd/{fh}", os.O_WRONLY)
        try:
            if node.zero_from < os.fstat(fd).st_size:
                os.ftruncate(fd, node.zero_from)
            for index, page in sorted(node.pages.items()):
                start = index * PAGE
                if start < node.size:
                    os.pwrite(fd, page[: node.size - start], start)
            os.ftruncate(fd, node.size)
            os.fsync(fd)
        finally:
            os.close(fd)

    # -- files ----------------------------------------------------------------

    def getattr(self, path: str, fh: int | None = None) -> dict:
        with self._lock:
            try:
                st = os.lstat(self._full(path))
            except OSError as e:
                raise FuseOSError(e.errno) from None
            attrs = {
                k: getattr(st, k)
                for k in (
                    "st_mode",
                    "st_nlink",
                    "st_uid",
                    "st_gid",
                    "st_size",
                    "st_atime",
                    "st_mtime",
                    "st_ctime",
                    "st_ino",
                )
            }
            node = self._dirty.get(st.st_ino)
            if node is not None:
                attrs["st_size"] = node.size
            return attrs

    def open(self, path: str, flags: int) -> int:
        flags &= ~(os.O_TRUNC | os.O_APPEND | os.O_CREAT | os.O_EXCL)
        if flags & os.O_ACCMODE == os.O_WRONLY:
            flags = (flags & ~os.O_ACCMODE) | os.O_RDWR
        try:
            return os.open(self._full(path), flags)
        except OSError as e:
            raise FuseOSError(e.errno) from None

    def create(self, path: str, mode: int, fi: object = None) -> int:
        with self._lock:
            full = self._full(path)
            existed = os.path.lexists(full)
            fd = os.open(full, os.O_CREAT | os.O_RDWR, mode)
            if not existed:
                self._record({"op": "create", "path": path, "dir": os.path.dirname(path)})
            return fd

    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        with self._lock:
            ino = os.fstat(fh).st_ino
            node = self._dirty.get(ino)
            if node is None:
                return os.pread(fh, size, offset)
            if offset >= node.size:
                return b""
            buf = bytearray(self._backing_read(node, fh, offset, size))
            end = offset + len(buf)
            for index in range(offset // PAGE, (end - 1) // PAGE + 1):
                page = node.pages.get(index)
                if page is None:
                    continue
                lo, hi = max(offset, index * PAGE), min(end, (index + 1) * PAGE)
                buf[lo - offset : hi - offset] = page[lo - index * PAGE : hi - index * PAGE]
            return bytes(buf)

    def write(self, path: str, data: bytes, offset: int, fh: int) -> int:
        with self._lock:
            _, node = self._node(path, fh)
            end = offset + len(data)
            if offset >= node.size and not any(data):  # zeros past the end: just a longer file
                node.size = end
                return len(data)
            pos = offset
            while pos < end:
                index = pos // PAGE
                page = self._page(node, fh, index)
                lo = pos - index * PAGE
                n = min(PAGE - lo, end - pos)
                page[lo : lo + n] = data[pos - offset : pos - offset + n]
                pos += n
            node.size = max(node.size, end)
            return len(data)

    def truncate(self, path: str, length: int, fh: int | None = None) -> None:
        with self._lock:
            _, node = self._node(path, fh)
            if length < node.size:
                node.zero_from = min(node.zero_from, length)
                for index in list(node.pages):
                    if index * PAGE >= length:
                        del node.pages[index]
                    elif (index + 1) * PAGE > length:
                        node.pages[index][length - index * PAGE :] = bytes(
                            (index + 1) * PAGE - length
                        )
            node.size = length

    def fsync(self, path: str, datasync: int, fh: int) -> None:
        with self._lock:
            self._flush(os.fstat(fh).st_ino, fh)

    def flush(self, path: str, fh: int) -> None:
        return None

    def release(self, path: str, fh: int) -> None:
        os.close(fh)

    # -- names ----------------------------------------------------------------

    def unlink(self, path: str) -> None:
        with self._lock:
            full = self._full(path)
            stash = self._to_stash(full)
            self._record(
                {"op": "remove", "path": path, "stash": stash, "dir": os.path.dirname(path)}
            )

    def rmdir(self, path: str) -> None:
        with self._lock:
            full = self._full(path)
            if os.listdir(full):
                raise FuseOSError(errno.ENOTEMPTY)
            self.unlink(path)

    def mkdir(self, path: str, mode: int) -> None:
        with self._lock:
            os.mkdir(self._full(path), mode)
            self._record({"op": "mkdir", "path": path, "dir": os.path.dirname(path)})

    def rename(self, old: str, new: str) -> None:
        with self._lock:
            full_new = self._full(new)
            stash = self._to_stash(full_new) if os.path.lexists(full_new) else None
            os.rename(self._full(old), full_new)
            for node in self._dirty.values():
                if node.path == old or node.path.startswith(old + "/"):
                    node.path = new + node.path[len(old) :]
            self._record(
                {
                    "op": "rename",
                    "path": old,
                    "new": new,
                    "stash": stash,
                    "dir": os.path.dirname(new),
                }
            )

    def fsyncdir(self, path: str, datasync: int, fh: int) -> None:
        with self._lock:
            keep = [e for e in self._journal if e["dir"] != path]
            for e in self._journal:
                if e["dir"] == path and e.get("stash"):
                    stashed = os.path.join(self.stash, e["stash"])
                    if os.path.isdir(stashed):
                        shutil.rmtree(stashed)
                    elif os.path.lexists(stashed):
                        os.unlink(stashed)
            self._write_journal(keep)
            fd = os.open(self._full(path), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def readdir(self, path: str, fh: int) -> list[str]:
        return [".", "..", *os.listdir(self._full(path))]

    def access(self, path: str, amode: int) -> None:
        if not os.access(self._full(path), amode):
            raise FuseOSError(errno.EACCES)

    def chmod(self, path: str, mode: int) -> None:
        os.chmod(self._full(path), mode)

    def chown(self, path: str, uid: int, gid: int) -> None:
        os.chown(self._full(path), uid, gid)

    def utimens(self, path: str, times: tuple[float, float] | None = None) -> None:
        os.utime(self._full(path), times)

    def statfs(self, path: str) -> dict:
        st = os.statvfs(self._full(path))
        return {
            k: getattr(st, k)
            for k in (
                "f_bavail",
                "f_bfree",
                "f_blocks",
                "f_bsize",
                "f_favail",
                "f_ffree",
                "f_files",
                "f_flag",
                "f_frsize",
                "f_namemax",
            )
        }


def fuse_available() -> str | None:
    """None when FUSE can be mounted here, else why not (for a test's skip)."""
    if not os.path.exists("/dev/fuse"):
        return "no /dev/fuse"
    if _unmount_command() is None:
        return "neither fusermount3, fusermount nor umount found"
    return None


def _mounted(path: str) -> bool:
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == path for line in f)


def _unmount_command() -> list[str] | None:
    for tool in ("fusermount3", "fusermount"):
        if shutil.which(tool):
            return [tool, "-u", "-z"]
    if os.geteuid() == 0 and shutil.which("umount"):
        return ["umount", "-l"]
    return None


class LazyMount:
    """A ``LazyFS`` daemon for one directory, with ``power_loss`` to drop what was not synced.

    ``root`` holds ``backing/`` (the durable disk), ``state/`` (the undo
    journal) and ``mnt/`` (where the member's files live: ``mount``).
    """

    def __init__(self, root: str) -> None:
        self.backing = os.path.join(root, "backing")
        self.state = os.path.join(root, "state")
        self.mount = os.path.join(root, "mnt")
        for d in (self.backing, self.state, self.mount):
            os.makedirs(d, exist_ok=True)
        self._control = os.path.join(self.state, "control")
        if not os.path.exists(self._control):
            os.mkfifo(self._control)
        self._proc: subprocess.Popen[bytes] | None = None
        #: Simulated power losses so far.
        self.power_losses = 0

    def start(self, timeout: float = 10.0) -> None:
        """Recover the journal and mount; returns once the mount is live."""
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "robustness.lazyfs", self.backing, self.mount, self.state],
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + timeout
        while not os.path.ismount(self.mount):
            if self._proc.poll() is not None:
                err = self._proc.stderr.read().decode(errors="replace") if self._proc.stderr else ""
                raise RuntimeError(f"lazyfs exited with {self._proc.returncode}: {err}")
            if time.monotonic() > deadline:
                self._kill()
                raise RuntimeError("lazyfs did not mount in time")
            time.sleep(0.02)

    def power_loss(self, torn_seed: int | None = None, timeout: float = 10.0) -> None:
        """Drop everything not synced: SIGKILL the daemon, detach, remount after recovery.

        With ``torn_seed``, a random half of the unsynced pages reach the disk first
        (``LazyFS.tear``). Kill the processes using the mount first (a power loss stops
        them too).
        """
        if torn_seed is not None:
            done = self._control + ".done"
            if os.path.exists(done):
                os.unlink(done)
            with open(self._control, "w") as f:
                f.write(f"tear {torn_seed}\n")
            deadline = time.monotonic() + timeout
            while not os.path.exists(done):
                if time.monotonic() > deadline:
                    raise RuntimeError("lazyfs did not tear in time")
                time.sleep(0.01)
        self._kill()
        self.power_losses += 1
        self.start()

    def stop(self) -> None:
        """Detach the mount (a power loss without the restart)."""
        self._kill()

    def _kill(self) -> None:
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.send_signal(signal.SIGKILL)
            self._proc.wait()
            if self._proc.stderr is not None:
                self._proc.stderr.close()
            self._proc = None
        if _mounted(self.mount):  # a dead daemon's mount fails stat, so ask the kernel's table
            cmd = _unmount_command()
            if cmd is not None:
                subprocess.run([*cmd, self.mount], check=False, capture_output=True)


def main(argv: list[str]) -> None:
    backing, mount, state = argv
    fs = LazyFS(backing, state)
    threading.Thread(
        target=fs.serve_control, args=(os.path.join(state, "control"),), daemon=True
    ).start()
    FUSE(fs, mount, foreground=True, nothreads=False, default_permissions=True)


if __name__ == "__main__":
    main(sys.argv[1:])
