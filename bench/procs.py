"""Server processes for the benchmark: real etcd 3.5.1 and ours, on 127.0.0.1 only.

Every child (servers, h2load, etcdctl, profilers) is a test-kit ``Child``: its own
session (the terminal's SIGINT reaches only us), output appended to a log file, and
stopped by ``stop_all`` (SIGTERM, then SIGKILL after a bounded wait), which ``run.py``
calls from a ``finally`` and an ``atexit`` hook, so Ctrl-C leaves nothing behind.
"""

from __future__ import annotations

import atexit
import os
import signal
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from etcd_twisted.testing import Address, Child, binary, free_ports, have, server_argv
from etcd_twisted.testing.children import stop_all

__all__ = [
    "KINDS", "ROOT", "Child", "Server", "binary", "have", "install_cleanup", "new_servers", "rss_kib",
    "spawn", "start", "stop", "stop_all", "wait_listening",
]  # fmt: skip

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KINDS = ("etcd", "ours")


def spawn(argv: Sequence[str], log_path: str, env: dict[str, str] | None = None) -> Child:
    """Start ``argv`` with stdout and stderr appended to ``log_path``."""
    child = Child(argv, log_path, env)
    child.start()
    return child


def stop(child: Child, grace: float = 10.0) -> int | None:
    """SIGTERM, then SIGKILL if still running after ``grace`` seconds; returns the exit code."""
    return child.stop(grace)


def install_cleanup() -> None:
    """Stop children at exit, and turn SIGTERM into a normal exit so ``finally`` blocks run."""
    atexit.register(stop_all)

    def on_term(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)
    # Ctrl-C must work even when started from a shell that ignores SIGINT for us.
    signal.signal(signal.SIGINT, signal.default_int_handler)


@dataclass
class Server:
    """One member we started: its kind, address, log and process."""

    kind: str
    address: Address
    log_path: str
    proc: Child | None = None
    spawned_at: float = 0.0
    extra: list[str] = field(default_factory=list)
    prefix: list[str] = field(default_factory=list)  # e.g. a profiler wrapping ours

    @property
    def name(self) -> str:
        return self.address.name

    @property
    def data_dir(self) -> str:
        return self.address.data_dir

    @property
    def client_port(self) -> int:
        return self.address.client_port

    @property
    def endpoint(self) -> str:
        return self.address.endpoint

    @property
    def client_url(self) -> str:
        return self.address.client_url

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def argv(self, initial_cluster: str) -> list[str]:
        """The command line; both servers take the same etcd flags."""
        flags = [*self.address.flags(initial_cluster), "--initial-cluster-state", "new"]
        return server_argv(self.kind, [*flags, *self.extra], self.prefix)

    def running(self) -> bool:
        return self.proc is not None and self.proc.running

    def log_tail(self, chars: int = 2000) -> str:
        """The end of the server's log, for error messages."""
        return self.proc.log_tail(chars) if self.proc is not None else ""

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()


def new_servers(
    kind: str, base_dir: str, tag: str, members: int = 1, extra: Sequence[str] = ()
) -> list[Server]:
    """``members`` servers of ``kind`` with fresh ports and empty data dirs under ``base_dir``."""
    out = []
    directory = os.path.join(base_dir, f"{tag}-{kind}")
    os.makedirs(directory, exist_ok=True)
    for i in range(members):
        client_port, peer_port = free_ports(2)
        name = "default" if members == 1 else f"m{i}"
        address = Address(name, client_port, peer_port, os.path.join(directory, f"{name}.etcd"))
        out.append(Server(kind, address, os.path.join(directory, f"{name}.log"), extra=list(extra)))
    return out


def start(servers: Sequence[Server]) -> None:
    """Spawn every member of one cluster (``spawned_at`` is taken just before each spawn)."""
    initial = ",".join(f"{s.name}={s.address.peer_url}" for s in servers)
    for s in servers:
        s.spawned_at = time.monotonic()
        s.proc = spawn(s.argv(initial), s.log_path)


def rss_kib(pid: int) -> int:
    """VmRSS of ``pid`` in KiB, from /proc/PID/status."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def wait_listening(server: Server, deadline: float) -> None:
    """Poll until the client port accepts TCP connections (10 ms steps) or ``deadline``."""
    while time.monotonic() < deadline:
        if not server.running():
            raise RuntimeError(f"{server.kind} exited early:\n{server.log_tail()}")
        try:
            with socket.create_connection(("127.0.0.1", server.client_port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.01)
    raise TimeoutError(f"{server.kind} not listening:\n{server.log_tail()}")
