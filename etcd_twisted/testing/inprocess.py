"""A member inside the test's own process, on the test's reactor: ``build_service`` underneath.

    member = await start_member(reactor)          # temporary data dir, fast mode
    ...  talk to member.client_url / member.endpoint with any client ...
    await member.reset()                           # between tests of one member
    await member.stop()                            # graceful; the data dir is removed

Fast mode (the default) adds ``--unsafe-no-fsync`` and 10 ms heartbeats / 50 ms
elections; a lone member campaigns at once, so its first put is acknowledged a few
milliseconds after start.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThreadPool

from etcd_twisted.config import parse
from etcd_twisted.testing.commands import FAST_FLAGS, Address
from etcd_twisted.testing.gateway import Gateway
from etcd_twisted.testing.ports import free_ports

if TYPE_CHECKING:
    from etcd_twisted.embed import EtcdService

T = TypeVar("T")


@dataclass(eq=False)
class InProcessMember:
    """A running in-process member and the handles a test needs."""

    reactor: Any
    address: Address
    service: EtcdService
    owns_data_dir: bool
    gateway: Gateway = field(init=False)

    def __post_init__(self) -> None:
        self.gateway = Gateway(self.address.client_url)

    @property
    def client_url(self) -> str:
        return self.address.client_url

    @property
    def endpoint(self) -> str:
        """``127.0.0.1:port``: a gRPC target."""
        return self.address.endpoint

    @property
    def endpoints(self) -> list[str]:
        return [self.client_url]

    @property
    def data_dir(self) -> str:
        return self.address.data_dir

    def in_thread(self, f: Callable[..., T], *args: Any) -> Any:
        """Run a blocking gateway call on the reactor's thread pool (the member keeps serving)."""
        return deferToThreadPool(self.reactor, self.reactor.getThreadPool(), f, *args)

    async def reset(self, root_password: str | None = None) -> None:
        """Empty the member between tests: keys, leases, users, roles, auth, alarms."""
        await self.in_thread(self.gateway.reset, root_password)

    async def expire_leases_now(self) -> int:
        """End every lease now, as expiry would; returns how many there were."""
        return await self.in_thread(self.gateway.revoke_all_leases)

    async def compact(self, revision: int | None = None) -> int:
        """Compact the history at ``revision`` (default: the current one)."""
        return await self.in_thread(self.gateway.compact, revision)

    async def fill_quota(self) -> int:
        """Write until the quota is exceeded and the NOSPACE alarm is raised."""
        return await self.in_thread(self.gateway.fill_quota)

    async def stop(self) -> None:
        """Stop gracefully, and remove the data dir if the member made it."""
        if self.service.running:
            await self.service.stopService()
        if self.owns_data_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)


async def start_member(
    reactor: Any,
    data_dir: str | None = None,
    *,
    fast: bool = True,
    extra: Sequence[str] = (),
    name: str = "default",
    timeout: float = 10.0,
) -> InProcessMember:
    """Build and start a single member on ``reactor``; returns once it has elected itself.

    ``data_dir`` defaults to a new temporary directory, removed by ``stop``; ``extra``
    holds more etcd flags (``--quota-backend-bytes``, ``--auth-token`` …)."""
    from etcd_twisted.embed import build_service  # the server's imports install a reactor

    owns = data_dir is None
    if data_dir is None:
        data_dir = tempfile.mkdtemp(prefix="etcd-twisted-")
    client_port, peer_port = free_ports(2)
    address = Address(name, client_port, peer_port, data_dir)
    argv = [*address.flags(), *(FAST_FLAGS if fast else ()), *extra]
    service = build_service(parse(argv, {}), reactor)
    service.startService()
    await service.client_ports()
    deadline = reactor.seconds() + timeout
    # Ready as etcd's ReadyNotify: leader, and the cluster version committed.
    while not (service.server.is_leader and service.server.cluster_version()):
        if reactor.seconds() > deadline:
            await service.stopService()
            raise TimeoutError(f"the in-process member elected no leader within {timeout}s")
        await deferLater(reactor, 0.001, lambda: None)
    return InProcessMember(reactor, address, service, owns)
