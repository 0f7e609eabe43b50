"""``--resolver-prefix``: the proxy registers its advertised address under the prefix,
with a lease of ``--resolver-ttl`` seconds it keeps alive, in the format of etcd's
``naming/endpoints`` (so ``MemberList`` on any proxy sharing the prefix lists them all)."""

from __future__ import annotations

import json
import socket
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from etcd_twisted._pb import rpc_pb2
from etcd_twisted.grpc import GrpcError
from etcd_twisted.proxy.upstream import Upstream

__all__ = ["Registration"]

log = Logger()


class Registration(Service):
    """Registers the proxy under ``--resolver-prefix`` with a lease of ``--resolver-ttl``
    seconds, kept alive, as etcd's proxy registers itself for ``MemberList``."""

    def __init__(self, upstream: Upstream, prefix: str, addr: str, ttl: int, clock: Any) -> None:
        self.setName("registration")
        self._upstream, self._prefix, self._addr, self._ttl = upstream, prefix, addr, ttl or 60
        self._lease = 0
        self._loop = LoopingCall(lambda: ensureDeferred(self._refresh()))
        self._loop.clock = clock

    def startService(self) -> None:
        super().startService()
        self._loop.start(max(1.0, self._ttl / 3), now=True)

    def stopService(self) -> Any:
        super().stopService()
        if self._loop.running:
            self._loop.stop()

    async def _refresh(self) -> None:
        try:
            if self._lease:
                raw = await self._upstream.unary(
                    "/etcdserverpb.Lease/LeaseTimeToLive",
                    rpc_pb2.LeaseTimeToLiveRequest(ID=self._lease).SerializeToString(),
                )
                if rpc_pb2.LeaseTimeToLiveResponse.FromString(raw).TTL > 0:
                    await self._keep_alive()
                    return
            raw = await self._upstream.unary(
                "/etcdserverpb.Lease/LeaseGrant",
                rpc_pb2.LeaseGrantRequest(TTL=self._ttl).SerializeToString(),
            )
            self._lease = rpc_pb2.LeaseGrantResponse.FromString(raw).ID
            record = {
                "Op": 0,
                "Addr": self._addr,
                "Metadata": json.dumps({"name": socket.gethostname()}),
            }
            put = rpc_pb2.PutRequest(
                key=f"{self._prefix}/{self._addr}".encode(),
                value=json.dumps(record).encode(),
                lease=self._lease,
            )
            await self._upstream.unary("/etcdserverpb.KV/Put", put.SerializeToString(), retry=False)
            log.info("registered {addr} under {prefix}", addr=self._addr, prefix=self._prefix)
        except GrpcError as e:
            log.warn("cannot register the proxy: {error}", error=e)

    async def _keep_alive(self) -> None:
        done: Deferred[None] = Deferred()
        call = await self._upstream.stream(
            "/etcdserverpb.Lease/LeaseKeepAlive",
            (),
            lambda _: (call.end(), None),
            lambda status: done.called or done.callback(None),
        )
        call.send(rpc_pb2.LeaseKeepAliveRequest(ID=self._lease).SerializeToString())
        await done
