"""Run a child process and ``kill -9`` it at a chosen moment, collecting what it printed."""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import time
from collections.abc import Sequence

#: Total kill -9 runs per crash test; raise it for a longer soak.
RUNS = int(os.environ.get("ETCD_TWISTED_KILL9_RUNS", "100"))


class ChildFailed(AssertionError):
    """The child exited or stalled before it could be killed."""


def run_and_kill(
    argv: Sequence[str], lines: int, log_path: str, deadline: float = 15.0
) -> list[str]:
    """Start ``argv``; once it printed ``ready`` and then ``lines`` lines, SIGKILL it.

    ``lines < 0`` kills it at once. Returns every complete line after ``ready``,
    including those still in the pipe when it died. Waits at most ``deadline``.
    """
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=log)
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    buf = b""
    end = time.monotonic() + deadline
    try:
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while lines >= 0 and _printed(buf) <= lines:
                remaining = end - time.monotonic()
                if remaining <= 0:
                    raise ChildFailed(f"{argv} printed {buf[-200:]!r} within {deadline}s")
                if sel.select(remaining):
                    chunk = os.read(fd, 65536)
                    if not chunk:
                        raise ChildFailed(f"{argv} exited early: see {log_path}")
                    buf += chunk
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(deadline)
        buf += proc.stdout.read()
        proc.stdout.close()
    complete = buf[: buf.rfind(b"\n") + 1].decode().splitlines()
    return complete[1:] if complete[:1] == ["ready"] else []


def _printed(buf: bytes) -> int:
    """Complete lines printed, ``ready`` included."""
    return buf.count(b"\n")
