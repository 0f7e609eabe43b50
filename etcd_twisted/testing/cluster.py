"""Members and clusters as child processes, driven from Twisted code.

``Cluster(reactor, base_dir, size)`` starts ``size`` members of our server (``twistd
etcd``) or of real etcd (``kind="etcd"``) on loopback ports, each with its data dir and
log file under ``base_dir``. With ``proxies`` (the default for more than one member)
every member's peer port sits behind a :class:`~etcd_twisted.testing.proxy.PeerProxy`
that it advertises, so the harness owns every byte between members: ``partition`` and
``heal`` work by rules on those proxies. ``fast`` adds ``--unsafe-no-fsync`` and short
election timers (ours only; real etcd keeps its defaults), and forks members from a warm
fork server (:mod:`~etcd_twisted.testing.forkserver`) instead of starting interpreters.

Every handle is async: ``await cluster.leader()``, ``await cluster.kill(m)``,
``await cluster.restart(m)``; calls to the members go through their JSON gateway on a
thread, so the reactor stays free. :class:`~etcd_twisted.testing.blocking.BlockingCluster`
offers the same handles to code that is not on Twisted.
"""

from __future__ import annotations

import os
import random
import signal
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThreadPool

from etcd_twisted.testing.children import Child, kill_all
from etcd_twisted.testing.commands import Address, fast_flags, initial_cluster, server_argv
from etcd_twisted.testing.forkserver import ForkedChild
from etcd_twisted.testing.gateway import Gateway, GatewayError
from etcd_twisted.testing.ports import free_ports
from etcd_twisted.testing.proxy import PeerProxy, Rule

T = TypeVar("T")
#: How often readiness and leadership are polled.
POLL_INTERVAL = 0.01
BLACKHOLE = Rule(blackhole=True)


class ClusterError(Exception):
    """A member failed to start, to become ready, or to agree on a leader."""

    def __init__(self, message: str, member: ChildMember | None = None) -> None:
        tail = f"; log tail:\n{member.child.log_tail()}" if member is not None else ""
        super().__init__(message + tail)
        self.member = member


async def wait_healthy(
    reactor: Any, gateway: Gateway, child: Child, timeout: float = 30.0
) -> dict[str, Any]:
    """Poll until the member behind ``gateway`` knows a leader; its status.

    Fails (ClusterError with the log's tail) when ``child`` exits or time runs out."""
    pool = reactor.getThreadPool()
    deadline = reactor.seconds() + timeout
    while reactor.seconds() < deadline:
        if not child.running:
            raise ClusterError(f"exited (code {child.exit}); log tail:\n{child.log_tail()}")
        status = await deferToThreadPool(reactor, pool, gateway.ready_status)
        if status is not None:
            return status
        await deferLater(reactor, POLL_INTERVAL, lambda: None)
    raise ClusterError(f"not healthy after {timeout:.0f}s; log tail:\n{child.log_tail()}")


@dataclass(eq=False)
class ChildMember:
    """One member: its address, process, optional peer proxy and id."""

    address: Address
    child: Child
    proxy: PeerProxy | None = None
    member_id: int = 0
    paused: bool = False
    #: ``--initial-cluster`` and state for a member that joins a running cluster.
    initial_cluster: str = ""
    state: str = "new"
    gateway: Gateway = field(init=False)

    def __post_init__(self) -> None:
        self.gateway = Gateway(self.address.client_url)

    @property
    def name(self) -> str:
        return self.address.name

    @property
    def client_url(self) -> str:
        return self.address.client_url

    @property
    def endpoint(self) -> str:
        """``127.0.0.1:port``: a gRPC target."""
        return self.address.endpoint

    @property
    def running(self) -> bool:
        return self.child.running

    def log_tail(self, size: int = 3000) -> str:
        """The end of the member's log file."""
        return self.child.log_tail(size)

    def __repr__(self) -> str:
        state = "paused" if self.paused else "running" if self.running else "stopped"
        return f"<member {self.name} {self.client_url} {state}>"


class Cluster:
    """``size`` members started together; ``await start()``, then the handles, then ``stop()``."""

    def __init__(
        self,
        reactor: Any,
        base_dir: str,
        size: int = 1,
        *,
        kind: str = "ours",
        fast: bool = True,
        proxies: bool | None = None,
        extra: Sequence[str] = (),
        token: str | None = None,
        env: dict[str, str] | None = None,
        prefix: Sequence[str] = (),
        rng: random.Random | None = None,
        fork: bool | None = None,
    ) -> None:
        self.reactor = reactor
        self.base_dir = os.path.abspath(base_dir)
        self.kind = kind
        self.proxies = size > 1 if proxies is None else proxies
        self.extra = [*(fast_flags(size) if fast and kind == "ours" else ()), *extra]
        self.token = token
        self.env = dict(env or {})
        self.prefix = list(prefix)
        #: Fork members from the warm fork server (default: our server in fast mode).
        self.fork = (kind == "ours" and fast and not prefix) if fork is None else fork
        self.rng = rng or random.Random()
        self.members: list[ChildMember] = []
        #: Members taken out by ``replace``.
        self.removed: list[ChildMember] = []
        self._next_name = 1
        self._trigger: Any = None
        os.makedirs(self.base_dir, exist_ok=True)
        for _ in range(size):
            self.members.append(self.new_member())

    def new_member(self) -> ChildMember:
        """A member with fresh ports (and a listening proxy) that is not started yet."""
        name = f"m{self._next_name}" if self.proxies or self._next_name > 1 else "default"
        self._next_name += 1
        client, peer = free_ports(2)
        address = Address(name, client, peer, os.path.join(self.base_dir, f"{name}.etcd"))
        proxy = None
        if self.proxies:
            proxy = PeerProxy(self.reactor, peer, random.Random(self.rng.random()))
            address.advertised_peer_port = proxy.listen(0)
        log = os.path.join(self.base_dir, f"{name}.log")
        child = ForkedChild([], log, self.env) if self.fork else Child([], log, self.env)
        return ChildMember(address, child, proxy)

    # --- addresses

    @property
    def endpoints(self) -> list[str]:
        """Every member's client URL."""
        return [m.client_url for m in self.members]

    @property
    def initial_cluster(self) -> str:
        return initial_cluster([m.address for m in self.members])

    def member(self, which: ChildMember | int | str) -> ChildMember:
        """A member by handle, index or name."""
        if isinstance(which, ChildMember):
            return which
        if isinstance(which, int):
            return self.members[which]
        return next(m for m in self.members if m.name == which)

    def argv(self, m: ChildMember) -> list[str]:
        """Member ``m``'s command line."""
        flags = m.address.flags(m.initial_cluster or self.initial_cluster, m.state, self.token)
        return server_argv(self.kind, [*flags, *self.extra], self.prefix)

    # --- processes

    def spawn(self, m: ChildMember, env: dict[str, str] | None = None) -> None:
        """Start member ``m``'s process (on its data dir, if it has one); ``env`` for this run."""
        if self._trigger is None:
            self._trigger = self.reactor.addSystemEventTrigger("before", "shutdown", kill_all)
        m.child.argv = self.argv(m)
        m.child.env = {**self.env, **(env or {})}
        m.paused = False
        m.child.start()

    async def start(self, timeout: float = 60.0) -> Cluster:
        """Start every member and wait until each is healthy and the ids are known."""
        for m in self.members:
            self.spawn(m)
        await self._all([self.wait_ready(m, timeout) for m in self.members])
        return self

    async def _all(self, coroutines: Sequence[Any]) -> list[Any]:
        return await gatherResults(
            [Deferred.fromCoroutine(c) for c in coroutines], consumeErrors=True
        )

    async def wait_ready(self, m: ChildMember, timeout: float = 30.0) -> None:
        """Wait until ``m`` is healthy (knows a leader) and learn its id; fail if it exits."""
        try:
            status = await wait_healthy(self.reactor, m.gateway, m.child, timeout)
        except ClusterError as e:
            error = ClusterError(f"{m.name} {e}")
            error.member = m
            raise error from None
        m.member_id = int(status["header"]["member_id"])

    def in_thread(self, f: Callable[..., T], *args: Any) -> Deferred[T]:
        """Run a blocking call (a gateway request) on the reactor's thread pool."""
        return deferToThreadPool(self.reactor, self.reactor.getThreadPool(), f, *args)

    async def kill(self, m: ChildMember | int | str) -> None:
        """SIGKILL member ``m`` and wait until it has exited."""
        m = self.member(m)
        await m.child.killed(self.reactor)
        m.paused = False

    async def stop_member(self, m: ChildMember | int | str, grace: float = 10.0) -> None:
        """Stop ``m`` gracefully (SIGTERM; SIGKILL after ``grace`` seconds)."""
        m = self.member(m)
        await m.child.stopped(self.reactor, grace)
        m.paused = False

    async def restart(
        self, m: ChildMember | int | str, wait: bool = True, env: dict[str, str] | None = None
    ) -> None:
        """Stop ``m`` if it runs (SIGKILL), start it again on its data dir, wait until ready."""
        m = self.member(m)
        if m.running:
            await self.kill(m)
        self.spawn(m, env)
        if wait:
            await self.wait_ready(m)

    def pause(self, m: ChildMember | int | str) -> None:
        """SIGSTOP: the member stops answering anyone (a hung process, a long GC pause)."""
        m = self.member(m)
        m.child.signal(signal.SIGSTOP)
        m.paused = m.running

    def resume(self, m: ChildMember | int | str) -> None:
        """SIGCONT."""
        m = self.member(m)
        m.child.signal(signal.SIGCONT)
        m.paused = False

    async def stop(self) -> None:
        """Stop every process and proxy."""
        everyone = self.members + self.removed
        await self._all([m.child.stopped(self.reactor) for m in everyone])
        for m in everyone:
            if m.proxy is not None:
                await m.proxy.stop()
        if self._trigger is not None:
            self.reactor.removeSystemEventTrigger(self._trigger)
            self._trigger = None

    # --- asking members

    def answering(self) -> list[ChildMember]:
        """Members whose process runs and is not paused."""
        return [m for m in self.members if m.running and not m.paused]

    async def gateway_status(self, m: ChildMember) -> dict[str, Any] | None:
        """``m``'s Maintenance.Status, or None when it does not answer."""
        if not m.running or m.paused:
            return None
        try:
            return await self.in_thread(m.gateway.status)
        except (OSError, GatewayError):
            return None

    async def leader(self, timeout: float = 10.0) -> ChildMember:
        """The member a majority names as leader; ClusterError after ``timeout`` seconds."""
        deadline = self.reactor.seconds() + timeout
        while True:
            statuses = await self._all([self.gateway_status(m) for m in self.members])
            votes = Counter(int(s.get("leader", 0)) for s in statuses if s)
            for m, s in zip(self.members, statuses, strict=True):
                # The leader must answer too: survivors name a killed leader for a while.
                if s and votes[m.member_id] > len(self.members) // 2:
                    return m
            if self.reactor.seconds() > deadline:
                raise ClusterError(f"no leader agreed by a majority after {timeout}s: {votes}")
            await deferLater(self.reactor, POLL_INTERVAL, lambda: None)

    async def any_gateway(self) -> Gateway:
        """The gateway of a member that answers (the leader when there is one)."""
        if len(self.members) == 1:
            return self.members[0].gateway
        try:
            return (await self.leader(timeout=5.0)).gateway
        except ClusterError:
            answering = self.answering()
            if not answering:
                raise
            return answering[0].gateway

    # --- network faults (through the proxies)

    def _proxy(self, m: ChildMember) -> PeerProxy:
        if m.proxy is None:
            raise ClusterError("network faults need a cluster started with proxies=True")
        return m.proxy

    def partition(self, *groups: Sequence[ChildMember | int | str]) -> None:
        """Cut the network between groups (members not named form one more group): no byte
        passes between members of different groups, both ways, until ``heal``."""
        named = [[self.member(x) for x in group] for group in groups]
        seen = {m for group in named for m in group}
        rest = [m for m in self.members if m not in seen]
        if rest:
            named.append(rest)
        for i, group in enumerate(named):
            for other in named[i + 1 :]:
                for a in group:
                    for b in other:
                        self._proxy(a).set_rule(BLACKHOLE, source=b.member_id)
                        self._proxy(b).set_rule(BLACKHOLE, source=a.member_id)

    def isolate(self, m: ChildMember | int | str) -> None:
        """Cut ``m`` off from every other member, both ways."""
        m = self.member(m)
        self._proxy(m).set_rule(BLACKHOLE)
        for other in self.members:
            if other is not m:
                self._proxy(other).set_rule(BLACKHOLE, source=m.member_id)

    def degrade(self, m: ChildMember | int | str, rule: Rule) -> None:
        """Apply ``rule`` (delay, jitter, drop) to every byte to and from ``m``'s peer port."""
        self._proxy(self.member(m)).set_rule(rule)

    def heal(self) -> None:
        """Every proxy lets everything through again."""
        for m in self.members:
            if m.proxy is not None:
                m.proxy.clear()

    # --- data

    async def reset(self, root_password: str | None = None) -> None:
        """Empty the cluster between tests: keys, leases, users, roles, auth, alarms."""
        await self.in_thread((await self.any_gateway()).reset, root_password)

    async def expire_leases_now(self) -> int:
        """End every lease now, as expiry would (the leader revokes it and its keys go);
        returns how many there were."""
        return await self.in_thread((await self.any_gateway()).revoke_all_leases)

    async def compact(self, revision: int | None = None) -> int:
        """Compact the history at ``revision`` (default: the current one)."""
        return await self.in_thread((await self.any_gateway()).compact, revision)

    async def fill_quota(self) -> int:
        """Write until the backend quota is exceeded and the NOSPACE alarm is raised."""
        return await self.in_thread((await self.any_gateway()).fill_quota)
