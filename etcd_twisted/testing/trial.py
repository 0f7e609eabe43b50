"""Members for trial test cases: ``class MyTests(EtcdTestMixin, TestCase)``.

* ``await self.start_etcd()`` — an in-process member on the global reactor, fast mode,
  stopped in the test's cleanup.
* ``await self.shared_etcd()`` — one member (a child process) for the whole trial run,
  emptied before it is returned (milliseconds instead of a start per test).
* ``await self.start_etcd_cluster(size=3)`` — child processes with fault handles
  (:class:`~etcd_twisted.testing.Cluster`), stopped in the cleanup.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from typing import Any

from etcd_twisted.testing.cluster import Cluster
from etcd_twisted.testing.inprocess import InProcessMember, start_member

#: The run's shared member: a child process, since trial closes every socket a test leaves
#: open in its own reactor.
_shared: Cluster | None = None


def _reactor() -> Any:
    """The global reactor, imported on use: importing the kit installs no reactor."""
    from twisted.internet import reactor

    return reactor


def _stop_shared() -> None:
    if _shared is not None:
        for m in _shared.members:
            m.child.stop()
        shutil.rmtree(_shared.base_dir, ignore_errors=True)


class EtcdTestMixin:
    """Starts etcd members for a ``twisted.trial.unittest.TestCase``."""

    async def start_etcd(self, extra: Sequence[str] = (), fast: bool = True) -> InProcessMember:
        """An in-process member for this test."""
        member = await start_member(_reactor(), extra=extra, fast=fast)
        self.addCleanup(member.stop)  # type: ignore[attr-defined]
        return member

    async def shared_etcd(self, root_password: str | None = "root") -> Cluster:
        """The run's shared member (one child process, started on first use), emptied for
        this test: keys, leases, users, roles, auth and alarms."""
        global _shared
        reactor = _reactor()
        if _shared is None or not _shared.members[0].running:
            _shared = Cluster(reactor, tempfile.mkdtemp(prefix="etcd-twisted-shared-"), 1)
            reactor.addSystemEventTrigger("before", "shutdown", _stop_shared)
            await _shared.start()
        else:
            await _shared.reset(root_password)
        return _shared

    async def start_etcd_cluster(self, size: int = 3, **options: Any) -> Cluster:
        """``size`` members as child processes (options as :class:`Cluster`'s)."""
        base = os.path.abspath(self.mktemp())  # type: ignore[attr-defined]
        cluster = Cluster(_reactor(), base, size, **options)
        self.addCleanup(cluster.stop)  # type: ignore[attr-defined]
        return await cluster.start()
