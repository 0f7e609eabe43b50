"""Clusters of our server for the robustness runs: the test kit's ``Cluster`` with its peer
proxies, real timers (no fast mode), and gRPC calls to the members.

Member ``mN`` listens for peers on its real port and advertises its proxy's port, so the
harness owns every byte between members (see :mod:`etcd_twisted.testing.cluster`).
Clients talk to the client ports directly. Crash points are armed per start with
``spawn(m, env={failpoints.ENV: ...})``; a start without them clears the variable.
With ``power_loss``, each member's data dir lives on its own LazyFS mount
(:mod:`robustness.lazyfs`) and ``power_loss(m)`` drops what ``m`` had not synced.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Sequence
from typing import Any

import grpc
from twisted.internet.threads import deferToThread

from etcd_twisted import failpoints
from etcd_twisted._pb import rpc_pb2, rpc_pb2_grpc
from etcd_twisted.testing import ChildMember, ClusterError
from etcd_twisted.testing import Cluster as KitCluster
from robustness.lazyfs import LazyMount

__all__ = ["Cluster", "ClusterError", "Member"]

Member = ChildMember
#: Reconnect quickly after a member restarts.
CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 500),
]


class Cluster(KitCluster):
    """A cluster of ``size`` members of our server behind peer proxies; ``start`` then ``stop``."""

    def __init__(
        self,
        reactor: Any,
        base_dir: str,
        size: int,
        rng: random.Random,
        extra: Sequence[str] = (),
        token: str = "robustness",
        power_loss: bool = False,
    ) -> None:
        self.power_loss_mounts = power_loss
        #: Each member's LazyFS mount (with ``power_loss``).
        self.mounts: dict[ChildMember, LazyMount] = {}
        super().__init__(
            reactor, base_dir, size, fast=False, proxies=True, extra=extra, token=token, rng=rng
        )
        self._channels: dict[ChildMember, grpc.Channel] = {}

    def new_member(self) -> ChildMember:
        """A member not started yet; with ``power_loss`` its data dir is on a new LazyFS mount."""
        m = super().new_member()
        if self.power_loss_mounts:
            mount = LazyMount(os.path.join(self.base_dir, f"{m.name}.lazy"))
            mount.start()
            self.mounts[m] = mount
            m.address.data_dir = os.path.join(mount.mount, f"{m.name}.etcd")
        return m

    def spawn(self, m: ChildMember, env: dict[str, str] | None = None) -> None:
        """Start ``m`` with crash points armed only by ``env``."""
        super().spawn(m, {failpoints.ENV: "", **(env or {})})

    async def power_loss(self, m: ChildMember, torn_seed: int | None) -> None:
        """SIGKILL ``m`` and drop what it had not synced (``torn_seed``: a random half of the
        unsynced pages reach the disk first); ``spawn`` restarts it."""
        await self.kill(m)
        await deferToThread(self.mounts[m].power_loss, torn_seed)

    async def stop(self) -> None:
        """Stop every process and proxy, close the admin channels, detach the mounts."""
        await super().stop()
        for channel in self._channels.values():
            channel.close()
        self._channels.clear()
        for mount in self.mounts.values():
            mount.stop()

    async def leader(self, timeout: float = 10.0) -> ChildMember | None:  # type: ignore[override]
        """The member a majority names as leader, or None within ``timeout``."""
        try:
            return await super().leader(timeout)
        except ClusterError:
            return None

    # --- gRPC

    def stub(self, m: ChildMember, kind: Callable[[grpc.Channel], Any]) -> Any:
        """A stub on ``m``'s admin channel."""
        if m not in self._channels:
            self._channels[m] = grpc.insecure_channel(m.endpoint, options=CHANNEL_OPTIONS)
        return kind(self._channels[m])

    async def call(
        self, m: ChildMember, kind: Any, method: str, request: Any, timeout: float = 2.0
    ) -> Any:
        """A blocking gRPC call to member ``m`` on a thread; raises on failure."""
        stub = self.stub(m, kind)
        return await deferToThread(getattr(stub, method), request, timeout=timeout)

    async def status(self, m: ChildMember, timeout: float = 2.0) -> rpc_pb2.StatusResponse | None:
        """``Maintenance.Status`` of ``m``, or None if it does not answer."""
        if not m.running or m.paused:
            return None
        try:
            return await self.call(
                m, rpc_pb2_grpc.MaintenanceStub, "Status", rpc_pb2.StatusRequest(), timeout
            )
        except grpc.RpcError:
            return None

    # --- membership

    async def replace(self, old: ChildMember, timeout: float = 30.0) -> ChildMember:
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
        new = self.new_member()
        added = await self.call(
            via,
            rpc_pb2_grpc.ClusterStub,
            "MemberAdd",
            rpc_pb2.MemberAddRequest(peerURLs=[new.address.advertised_peer_url]),
            timeout=10,
        )
        new.member_id = added.member.ID
        names = {m.address.advertised_peer_url: m.name for m in self.members}
        names[new.address.advertised_peer_url] = new.name
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
