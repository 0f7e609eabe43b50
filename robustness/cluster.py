"""Clusters of our server as processes on 127.0.0.1, each member's peer port behind a proxy.

Member ``mN`` listens for peers on its real port and advertises its proxy's port
(``--initial-advertise-peer-urls`` and ``--initial-cluster``), so every other
member dials the proxy: the harness owns every byte between members.  Clients
talk to the client ports directly.  Each process's output is appended to
``<base>/<name>.log``; a process is stopped with SIGCONT (in case it was paused),
SIGTERM, then SIGKILL after a bounded wait, and killed at once at reactor
shutdown or interpreter exit (Ctrl-C).
"""

from __future__ import annotations

import atexit
import os
import random
import shutil
import signal
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.error import ProcessDone, ProcessTerminated
from twisted.internet.protocol import ProcessProtocol
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread
from twisted.python.failure import Failure

from etcd_twisted._pb import rpc_pb2, rpc_pb2_grpc
from etcd_twisted.testing import free_ports
from etcd_twisted.testing.proxy import PeerProxy, Rule

BIN_DIR = os.path.dirname(sys.executable)
#: Reconnect quickly after a member restarts.
CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 500),
]
#: Every pid the harness started and has not seen exit, for the exit-time kill.
_LIVE: set[int] = set()


def _kill_live() -> None:
    for pid in list(_LIVE):
        for sig in (signal.SIGCONT, signal.SIGKILL):
            try:
                os.kill(pid, sig)
            except OSError:
                pass
    _LIVE.clear()


atexit.register(_kill_live)


def twistd() -> str:
    """The venv's ``twistd``."""
    candidate = os.path.join(BIN_DIR, "twistd")
    return candidate if os.access(candidate, os.X_OK) else shutil.which("twistd") or "twistd"


class _Process(ProcessProtocol):
    """One run of a member process: output to its log, exit code when it ends."""

    def __init__(self, log_path: str) -> None:
        self.log = open(log_path, "ab")  # noqa: SIM115 - closed when the process ends
        self.ended: Deferred[int | None] = Deferred()
        self.exit: int | None = None
        self.running = False
        self.pid = 0

    def connectionMade(self) -> None:
        self.running = True
        self.pid = self.transport.pid
        _LIVE.add(self.pid)

    def outReceived(self, data: bytes) -> None:
        self.log.write(data)

    errReceived = outReceived

    def processEnded(self, reason: Failure) -> None:
        self.running = False
        _LIVE.discard(self.pid)
        self.log.close()
        if reason.check(ProcessDone):
            self.exit = 0
        elif reason.check(ProcessTerminated):
            value = reason.value
            self.exit = value.exitCode if value.exitCode is not None else -value.signal
        self.ended.callback(self.exit)

    def signal(self, signum: int) -> None:
        if self.running:
            try:
                os.kill(self.pid, signum)
            except OSError:
                pass


@dataclass(eq=False)
class Member:
    """One member: its ports, data dir, proxy and current process."""

    name: str
    client_port: int
    peer_port: int
    proxy_port: int
    data_dir: str
    log_path: str
    proxy: PeerProxy
    member_id: int = 0
    process: _Process | None = None
    paused: bool = False
    starts: int = 0
    #: Set for a member added to a running cluster (``--initial-cluster-state existing``).
    initial_cluster: str = ""
    state: str = "new"
    channel: grpc.Channel | None = field(default=None, repr=False)

    @property
    def client_url(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"

    @property
    def advertised_peer_url(self) -> str:
        return f"http://127.0.0.1:{self.proxy_port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.running

    def stub(self, kind: Callable[[grpc.Channel], Any]) -> Any:
        """A stub on this member's admin channel."""
        if self.channel is None:
            self.channel = grpc.insecure_channel(
                f"127.0.0.1:{self.client_port}", options=CHANNEL_OPTIONS
            )
        return kind(self.channel)

    def log_tail(self, size: int = 3000) -> str:
        """The end of the member's log."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(max(0, os.path.getsize(self.log_path) - size))
                return f.read().decode(errors="replace")
        except OSError:
            return ""


class Cluster:
    """A cluster of ``size`` members of our server; call ``start`` then ``stop``."""

    def __init__(
        self,
        reactor: Any,
        base_dir: str,
        size: int,
        rng: random.Random,
        extra: Sequence[str] = (),
        token: str = "robustness",
    ) -> None:
        self.reactor = reactor
        self.base_dir = base_dir
        self.rng = rng
        self.extra = list(extra)
        self.token = token
        self.members: list[Member] = []
        self.removed: list[Member] = []
        self._next_name = 1
        self._trigger: Any = None
        os.makedirs(base_dir, exist_ok=True)
        for _ in range(size):
            self.members.append(self._new_member())

    def _new_member(self) -> Member:
        name = f"m{self._next_name}"
        self._next_name += 1
        client, peer = free_ports(2)
        proxy = PeerProxy(self.reactor, peer, random.Random(self.rng.random()))
        proxy_port = proxy.listen(0)
        return Member(
            name,
            client,
            peer,
            proxy_port,
            os.path.join(self.base_dir, f"{name}.etcd"),
            os.path.join(self.base_dir, f"{name}.log"),
            proxy,
        )

    # --- processes

    def argv(self, m: Member, initial_cluster: str, state: str) -> list[str]:
        """The command line of member ``m``."""
        return [
            twistd(), "--nodaemon", "--pidfile=", "etcd",
            "--name", m.name,
            "--data-dir", m.data_dir,
            "--listen-client-urls", m.client_url,
            "--advertise-client-urls", m.client_url,
            "--listen-peer-urls", f"http://127.0.0.1:{m.peer_port}",
            "--initial-advertise-peer-urls", m.advertised_peer_url,
            "--initial-cluster", initial_cluster,
            "--initial-cluster-state", state,
            "--initial-cluster-token", self.token,
            *self.extra,
        ]  # fmt: skip

    @property
    def initial_cluster(self) -> str:
        return ",".join(f"{m.name}={m.advertised_peer_url}" for m in self.members)

    def spawn(self, m: Member, env: dict[str, str] | None = None) -> None:
        """Start member ``m``'s process (on its existing data dir, if any)."""
        if m.running:
            raise RuntimeError(f"{m.name} is already running")
        if self._trigger is None:
            self._trigger = self.reactor.addSystemEventTrigger("before", "shutdown", _kill_live)
        environ = dict(os.environ)
        environ.pop("ETCD_TWISTED_FAILPOINTS", None)
        environ.update(env or {})
        initial = m.initial_cluster or self.initial_cluster
        process = _Process(m.log_path)
        m.process, m.paused = process, False
        m.starts += 1
        with open(m.log_path, "ab") as f:
            f.write(f"\n=== start {m.starts} env={env or {}}\n".encode())
        argv = self.argv(m, initial, m.state)
        self.reactor.spawnProcess(process, argv[0], argv, env=environ)

    async def start(self, timeout: float = 60.0) -> None:
        """Start every member and wait until each answers with a leader."""
        for m in self.members:
            self.spawn(m)
        await gatherResults(
            [Deferred.fromCoroutine(self.wait_ready(m, timeout)) for m in self.members],
            consumeErrors=True,
        )
        await self.learn_ids()

    async def kill(self, m: Member) -> None:
        """SIGKILL member ``m`` and wait until it has exited."""
        if m.process is not None and m.process.running:
            m.process.signal(signal.SIGKILL)
            await m.process.ended
        m.paused = False

    def pause(self, m: Member) -> None:
        """SIGSTOP."""
        if m.process is not None and m.process.running:
            m.process.signal(signal.SIGSTOP)
            m.paused = True

    def resume(self, m: Member) -> None:
        """SIGCONT."""
        if m.process is not None:
            m.process.signal(signal.SIGCONT)
        m.paused = False

    async def stop_member(self, m: Member, grace: float = 10.0) -> None:
        """SIGCONT, SIGTERM, then SIGKILL after ``grace`` seconds."""
        process = m.process
        if process is None or not process.running:
            return
        process.signal(signal.SIGCONT)
        process.signal(signal.SIGTERM)
        timer = self.reactor.callLater(grace, process.signal, signal.SIGKILL)
        await process.ended
        if timer.active():
            timer.cancel()

    async def stop(self) -> None:
        """Stop every process and proxy, close admin channels."""
        everyone = self.members + self.removed
        await gatherResults(
            [Deferred.fromCoroutine(self.stop_member(m)) for m in everyone], consumeErrors=True
        )
        for m in everyone:
            await m.proxy.stop()
            if m.channel is not None:
                m.channel.close()
                m.channel = None
        if self._trigger is not None:
            self.reactor.removeSystemEventTrigger(self._trigger)
            self._trigger = None

    # --- asking members

    async def call(self, m: Member, kind: Any, method: str, request: Any, timeout: float = 2.0):
        """A blocking gRPC call to member ``m`` on a thread; raises on failure."""
        stub = m.stub(kind)
        return await deferToThread(getattr(stub, method), request, timeout=timeout)

    async def status(self, m: Member, timeout: float = 2.0) -> rpc_pb2.StatusResponse | None:
        """``Maintenance.Status`` of ``m``, or None if it does not answer."""
        if not m.running or m.paused:
            return None
        try:
            return await self.call(
                m, rpc_pb2_grpc.MaintenanceStub, "Status", rpc_pb2.StatusRequest(), timeout
            )
        except grpc.RpcError:
            return None

    async def wait_ready(self, m: Member, timeout: float = 30.0) -> None:
        """Wait until ``m`` answers Status and knows a leader; fail if it exits or time runs out."""
        deadline = self.reactor.seconds() + timeout
        while self.reactor.seconds() < deadline:
            if not m.running:
                raise ClusterError(f"{m.name} exited (code {m.process and m.process.exit})", m)
            status = await self.status(m)
            if status is not None and status.leader:
                m.member_id = status.header.member_id
                return
            await deferLater(self.reactor, 0.1, lambda: None)
        raise ClusterError(f"{m.name} not ready after {timeout:.0f}s", m)

    async def learn_ids(self) -> None:
        """Fill in member ids from any member's member list."""
        for m in self.members:
            if not m.running:
                continue
            try:
                resp = await self.call(
                    m, rpc_pb2_grpc.ClusterStub, "MemberList", rpc_pb2.MemberListRequest()
                )
            except grpc.RpcError:
                continue
            by_url = {url: member.ID for member in resp.members for url in member.peerURLs}
            for other in self.members:
                other.member_id = by_url.get(other.advertised_peer_url, other.member_id)
            return

    async def leader(self, timeout: float = 10.0) -> Member | None:
        """The member a majority of members names as leader (None if none within ``timeout``)."""
        deadline = self.reactor.seconds() + timeout
        while True:
            statuses = [await self.status(m) for m in self.members]
            votes = Counter(s.leader for s in statuses if s is not None and s.leader)
            for lid, n in votes.items():
                if n > len(self.members) // 2:
                    for m in self.members:
                        if m.member_id == lid:
                            return m
            if self.reactor.seconds() > deadline:
                return None
            await deferLater(self.reactor, 0.2, lambda: None)

    # --- network faults (through the proxies)

    def isolate(self, m: Member) -> None:
        """Cut ``m`` off from every other member, both ways."""
        m.proxy.set_rule(Rule(blackhole=True))
        for other in self.members:
            if other is not m:
                other.proxy.set_rule(Rule(blackhole=True), source=m.member_id)

    def degrade(self, m: Member, rule: Rule) -> None:
        """Apply ``rule`` to every byte to and from ``m``'s peer port."""
        m.proxy.set_rule(rule)

    def heal(self) -> None:
        """Every proxy lets everything through again."""
        for m in self.members:
            m.proxy.clear()

    # --- membership

    async def replace(self, old: Member, timeout: float = 30.0) -> Member:
        """Remove ``old`` from the cluster and add a fresh member in its place."""
        via = next(m for m in self.members if m is not old and m.running and not m.paused)
        await self.call(
            via,
            rpc_pb2_grpc.ClusterStub,
            "MemberRemove",
            rpc_pb2.MemberRemoveRequest(ID=old.member_id),
            timeout=10,
        )
        await self.kill(old)
        self.members.remove(old)
        self.removed.append(old)
        new = self._new_member()
        added = await self.call(
            via,
            rpc_pb2_grpc.ClusterStub,
            "MemberAdd",
            rpc_pb2.MemberAddRequest(peerURLs=[new.advertised_peer_url]),
            timeout=10,
        )
        new.member_id = added.member.ID
        names = {m.advertised_peer_url: m.name for m in self.members}
        names[new.advertised_peer_url] = new.name
        new.initial_cluster = ",".join(
            f"{names.get(url, f'x{member.ID:x}')}={url}"
            for member in added.members
            for url in member.peerURLs
        )
        new.state = "existing"
        self.members.append(new)
        self.spawn(new)
        await self.wait_ready(new, timeout)
        return new


class ClusterError(Exception):
    """A member failed to start or to become ready."""

    def __init__(self, message: str, member: Member) -> None:
        super().__init__(f"{message}; log tail:\n{member.log_tail()}")
        self.member = member
