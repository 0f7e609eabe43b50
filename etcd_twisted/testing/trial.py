"""Members for trial test cases: ``class MyTests(EtcdTestMixin, TestCase)``.

* ``await self.start_etcd()`` — an in-process member on the global reactor, fast mode,
  stopped in the test's cleanup.
* ``await self.shared_etcd()`` — one in-process member for the whole trial run, emptied
  before it is returned (a few milliseconds instead of a start per test).
* ``await self.start_etcd_cluster(size=3)`` — child processes with fault handles
  (:class:`~etcd_twisted.testing.Cluster`), stopped in the cleanup.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred

from etcd_twisted.testing.cluster import Cluster
from etcd_twisted.testing.inprocess import InProcessMember, start_member

_shared: InProcessMember | None = None


async def _stop_shared() -> None:
    global _shared
    member, _shared = _shared, None
    if member is not None:
        await member.stop()


class EtcdTestMixin:
    """Starts etcd members for a ``twisted.trial.unittest.TestCase``."""

    async def start_etcd(self, extra: Sequence[str] = (), fast: bool = True) -> InProcessMember:
        """An in-process member for this test."""
        member = await start_member(reactor, extra=extra, fast=fast)
        self.addCleanup(member.stop)  # type: ignore[attr-defined]
        return member

    async def shared_etcd(self, root_password: str | None = "root") -> InProcessMember:
        """The run's shared in-process member, emptied for this test."""
        global _shared
        if _shared is None or not _shared.service.running:
            _shared = await start_member(reactor)
            reactor.addSystemEventTrigger(
                "before", "shutdown", lambda: Deferred.fromCoroutine(_stop_shared())
            )
        else:
            await _shared.reset(root_password)
        return _shared

    async def start_etcd_cluster(self, size: int = 3, **options: Any) -> Cluster:
        """``size`` members as child processes (options as :class:`Cluster`'s)."""
        base = os.path.abspath(self.mktemp())  # type: ignore[attr-defined]
        cluster = Cluster(reactor, base, size, **options)
        self.addCleanup(cluster.stop)  # type: ignore[attr-defined]
        return await cluster.start()
