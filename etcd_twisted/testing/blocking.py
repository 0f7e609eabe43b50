"""The child-process cluster for code that is not on Twisted (pytest, asyncio, threads).

:class:`BlockingCluster` runs the same :class:`~etcd_twisted.testing.cluster.Cluster`
on Twisted's global reactor in a daemon thread (started on first use, unless a
reactor already runs there) and makes every handle a plain blocking call.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from twisted.internet.defer import Deferred
from twisted.internet.threads import blockingCallFromThread

from etcd_twisted.testing.cluster import ChildMember, Cluster
from etcd_twisted.testing.gateway import Gateway
from etcd_twisted.testing.proxy import Rule

T = TypeVar("T")
_started = threading.Lock()
_thread: threading.Thread | None = None


def reactor_thread() -> Any:
    """Twisted's global reactor, running in a daemon thread (started on the first call)."""
    global _thread
    from twisted.internet import reactor

    with _started:
        if _thread is None:
            if reactor.running:
                raise RuntimeError(
                    "the reactor already runs in this process: use etcd_twisted.testing.Cluster"
                )
            ready = threading.Event()
            reactor.callWhenRunning(ready.set)
            _thread = threading.Thread(
                target=reactor.run,
                kwargs={"installSignalHandlers": False},
                name="etcd-testing-reactor",
                daemon=True,
            )
            _thread.start()
            ready.wait()
    return reactor


class BlockingCluster:
    """A :class:`Cluster` whose handles block: ``start``, ``leader``, ``kill``, ``restart``, …"""

    def __init__(self, base_dir: str, size: int = 1, **options: Any) -> None:
        self.reactor = reactor_thread()
        self.cluster: Cluster = self._call(lambda: Cluster(self.reactor, base_dir, size, **options))

    def _call(self, f: Callable[..., Any], *args: Any) -> Any:
        def run() -> Any:
            result = f(*args)
            if hasattr(result, "__await__"):
                return Deferred.fromCoroutine(result)
            return result

        return blockingCallFromThread(self.reactor, run)

    # --- addresses

    @property
    def members(self) -> list[ChildMember]:
        return self.cluster.members

    @property
    def endpoints(self) -> list[str]:
        """Every member's client URL (``http://127.0.0.1:port``)."""
        return self.cluster.endpoints

    @property
    def gateway(self) -> Gateway:
        """The first member's JSON gateway client."""
        return self.members[0].gateway

    def member(self, which: ChildMember | int | str) -> ChildMember:
        return self.cluster.member(which)

    # --- lifecycle

    def start(self, timeout: float = 60.0) -> BlockingCluster:
        self._call(self.cluster.start, timeout)
        return self

    def stop(self) -> None:
        self._call(self.cluster.stop)

    def __enter__(self) -> BlockingCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- handles

    def leader(self, timeout: float = 10.0) -> ChildMember:
        return self._call(self.cluster.leader, timeout)

    def kill(self, m: ChildMember | int | str) -> None:
        self._call(self.cluster.kill, m)

    def stop_member(self, m: ChildMember | int | str, grace: float = 10.0) -> None:
        self._call(self.cluster.stop_member, m, grace)

    def restart(self, m: ChildMember | int | str, wait: bool = True) -> None:
        self._call(self.cluster.restart, m, wait)

    def wait_ready(self, m: ChildMember | int | str, timeout: float = 30.0) -> None:
        self._call(self.cluster.wait_ready, self.member(m), timeout)

    def pause(self, m: ChildMember | int | str) -> None:
        self._call(self.cluster.pause, m)

    def resume(self, m: ChildMember | int | str) -> None:
        self._call(self.cluster.resume, m)

    def partition(self, *groups: Sequence[ChildMember | int | str]) -> None:
        self._call(self.cluster.partition, *groups)

    def isolate(self, m: ChildMember | int | str) -> None:
        self._call(self.cluster.isolate, m)

    def degrade(self, m: ChildMember | int | str, rule: Rule) -> None:
        self._call(self.cluster.degrade, m, rule)

    def heal(self) -> None:
        self._call(self.cluster.heal)

    def reset(self, root_password: str | None = None) -> None:
        self._call(self.cluster.reset, root_password)

    def expire_leases_now(self) -> int:
        return self._call(self.cluster.expire_leases_now)

    def compact(self, revision: int | None = None) -> int:
        return self._call(self.cluster.compact, revision)

    def fill_quota(self) -> int:
        return self._call(self.cluster.fill_quota)
