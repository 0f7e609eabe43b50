"""Server processes for the benchmark: real etcd 3.5.1 and ours, on 127.0.0.1 only.

Every child (servers, h2load, etcdctl, profilers) is registered here and stopped by
``stop_all`` (SIGTERM, then SIGKILL after a bounded wait), which ``run.py`` calls from a
``finally`` and an ``atexit`` hook, so Ctrl-C leaves nothing behind. Servers run in their
own session so that the terminal's SIGINT reaches only us; we stop them.
"""

from __future__ import annotations

import atexit
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from etcd_twisted.testing import free_ports

BIN_DIR = os.path.dirname(os.path.abspath(sys.executable))
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KINDS = ("etcd", "ours")

_LIVE: list[subprocess.Popen[bytes]] = []


def binary(name: str) -> str:
    """The venv's copy of ``name`` (etcd, etcdctl, twistd, py-spy), else the one on PATH."""
    candidate = os.path.join(BIN_DIR, name)
    if os.access(candidate, os.X_OK):
        return candidate
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        path = os.path.join(directory, name)
        if directory and os.access(path, os.X_OK):
            return path
    raise FileNotFoundError(name)


def have(name: str) -> bool:
    """Whether ``binary(name)`` would find the program."""
    try:
        binary(name)
    except FileNotFoundError:
        return False
    return True


def spawn(
    argv: Sequence[str], log_path: str, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start ``argv`` with stdout and stderr appended to ``log_path``; registered for cleanup."""
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
    _LIVE.append(proc)
    return proc


def stop(proc: subprocess.Popen[bytes], grace: float = 10.0) -> int | None:
    """SIGTERM, then SIGKILL if still running after ``grace`` seconds; returns the exit code."""
    if proc.poll() is None:
        try:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        except ProcessLookupError:
            pass
    if proc in _LIVE:
        _LIVE.remove(proc)
    return proc.returncode


def stop_all() -> None:
    """Stop every registered child that still runs."""
    for proc in list(reversed(_LIVE)):
        stop(proc, grace=5.0)


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
    """One member we started: its kind, addresses, data dir, log and process."""

    kind: str
    name: str
    client_port: int
    peer_port: int
    data_dir: str
    log_path: str
    proc: subprocess.Popen[bytes] | None = None
    spawned_at: float = 0.0
    extra: list[str] = field(default_factory=list)
    prefix: list[str] = field(default_factory=list)  # e.g. a profiler wrapping ours

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    @property
    def client_url(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def argv(self, initial_cluster: str) -> list[str]:
        """The command line; both servers take the same etcd flags."""
        flags = [
            "--name", self.name,
            "--data-dir", self.data_dir,
            "--listen-client-urls", self.client_url,
            "--advertise-client-urls", self.client_url,
            "--listen-peer-urls", self.peer_url,
            "--initial-advertise-peer-urls", self.peer_url,
            "--initial-cluster", initial_cluster,
            "--initial-cluster-state", "new",
            *self.extra,
        ]  # fmt: skip
        if self.kind == "etcd":
            return [binary("etcd"), *flags]
        return [*self.prefix, binary("twistd"), "--nodaemon", "--pidfile=", "etcd", *flags]

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, chars: int = 2000) -> str:
        """The end of the server's log, for error messages."""
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()[-chars:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)


def new_servers(
    kind: str, base_dir: str, tag: str, members: int = 1, extra: Sequence[str] = ()
) -> list[Server]:
    """``members`` servers of ``kind`` with fresh ports and empty data dirs under ``base_dir``."""
    out = []
    for i in range(members):
        client_port, peer_port = free_ports(2)
        name = "default" if members == 1 else f"m{i}"
        directory = os.path.join(base_dir, f"{tag}-{kind}")
        os.makedirs(directory, exist_ok=True)
        out.append(
            Server(
                kind,
                name,
                client_port,
                peer_port,
                os.path.join(directory, f"{name}.etcd"),
                os.path.join(directory, f"{name}.log"),
                extra=list(extra),
            )
        )
    return out


def start(servers: Sequence[Server]) -> None:
    """Spawn every member of one cluster (``spawned_at`` is taken just before each spawn)."""
    initial = ",".join(f"{s.name}={s.peer_url}" for s in servers)
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
