"""A synchronous stand-in for EtcdServer over an in-memory store: KV, txn, leases
(grant, revoke, expire) and the watchable store, with every call answered at once."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, succeed

from etcd_twisted._pb import rpc_pb2
from etcd_twisted.apply import checks
from etcd_twisted.apply.kv import KVApplier
from etcd_twisted.auth.errors import InvalidAuthTokenError
from etcd_twisted.grpc import GrpcError, Metadata, StatusCode
from etcd_twisted.mvcc.kvstore import KVStore
from etcd_twisted.mvcc.watchable_store import WatchableStore
from tests.support.memory_backend import MemoryBackend


class FakeAuth:
    """Tokens are their own credentials; "bad" is refused as etcd refuses a dead token."""

    def auth_info(self, token: str | None, common_name: str | None = None) -> str | None:
        if token == "bad":
            raise InvalidAuthTokenError()
        return token


class FakeLeases:
    """The lease calls the concurrency services make."""

    def __init__(self, grant: Any) -> None:
        self.grant = grant


class FakeServer:
    """KV and leases applied at once; watches delivered once :meth:`settle` runs."""

    cluster_id = 11
    member_id = 22
    leader_id = 22
    is_learner = False
    term = 3

    def __init__(self) -> None:
        self.kv = KVStore(MemoryBackend())
        self.watchable = WatchableStore(self.kv)
        self.lease_keys: dict[int, set[bytes]] = {}
        self.applier = KVApplier(self.kv, lambda lease_id: lease_id in self.lease_keys)
        self.next_lease = 0x100
        self.grants: list[int] = []
        self.auth_frontend = FakeAuth()
        #: The KV and lease calls are the fake's own methods.
        self.kv_frontend = self
        self.leases = FakeLeases(self.lease_grant)
        #: The credentials each call came with.
        self.auths: list[str | None] = []

    def header(self, revision: int = 0) -> rpc_pb2.ResponseHeader:
        return rpc_pb2.ResponseHeader(
            cluster_id=self.cluster_id,
            member_id=self.member_id,
            revision=revision or self.kv.current_rev,
            raft_term=self.term,
        )

    def settle(self) -> None:
        """Let watchers that start in the past catch up, and deliver what is queued."""
        while self.watchable.sync_watchers():
            pass
        self.watchable.flush()

    def _wrote(self, response: Any) -> Any:
        self.settle()
        return response

    # --- the calls the services make

    def range(self, r: rpc_pb2.RangeRequest, auth: str | None = None) -> rpc_pb2.RangeResponse:
        self.auths.append(auth)
        checks.check_range(r)
        return self.applier.range(self.kv, r)

    def txn(self, t: rpc_pb2.TxnRequest, auth: str | None = None) -> rpc_pb2.TxnResponse:
        self.auths.append(auth)
        checks.check_txn(t, 128)
        response = self.applier.txn(t)
        self._attach(
            op.request_put for op in [*t.success, *t.failure] if op.HasField("request_put")
        )
        return self._wrote(response)

    def put(self, key: bytes, value: bytes = b"", lease: int = 0) -> rpc_pb2.PutResponse:
        p = rpc_pb2.PutRequest(key=key, value=value, lease=lease)
        response = self.applier.apply_put(p)
        self._attach([p])
        return self._wrote(response)

    def delete_range(
        self, d: rpc_pb2.DeleteRangeRequest, auth: str | None = None
    ) -> rpc_pb2.DeleteRangeResponse:
        self.auths.append(auth)
        checks.check_delete(d)
        return self._wrote(self.applier.apply_delete_range(d))

    def lease_grant(
        self, r: rpc_pb2.LeaseGrantRequest, auth: str | None = None
    ) -> rpc_pb2.LeaseGrantResponse:
        self.auths.append(auth)
        self.next_lease += 1
        self.lease_keys[self.next_lease] = set()
        self.grants.append(r.TTL)
        return rpc_pb2.LeaseGrantResponse(ID=self.next_lease, TTL=r.TTL)

    def grant(self) -> int:
        return self.lease_grant(rpc_pb2.LeaseGrantRequest(TTL=30)).ID

    def revoke(self, lease: int) -> None:
        """Revoke (or expire) ``lease``: its keys go at one revision."""
        keys = self.lease_keys.pop(lease)
        if not keys:
            return
        txn = self.kv.write()
        for key in sorted(keys):
            txn.delete_range(key, None)
        txn.end()
        self.settle()

    def _attach(self, puts: Any) -> None:
        """Remember which keys the leases hold (after a write that may have put them)."""
        for p in puts:
            found = self.applier.range(self.kv, rpc_pb2.RangeRequest(key=p.key)).kvs
            if found and found[0].lease in self.lease_keys:
                self.lease_keys[found[0].lease].add(p.key)

    def keys(self, prefix: bytes) -> list[bytes]:
        end = prefix[:-1] + bytes([prefix[-1] + 1])
        resp = self.applier.range(self.kv, rpc_pb2.RangeRequest(key=prefix, range_end=end))
        return [kv.key for kv in resp.kvs]


class FakeContext:
    """A call's context: metadata, and a cancellation the test fires."""

    def __init__(self, **metadata: str) -> None:
        self.metadata = Metadata(list(metadata.items()))
        self.cancelled: Deferred[GrpcError] = Deferred()

    def peer_certificate(self) -> None:
        return None  # plaintext

    def when_cancelled(self) -> Deferred[GrpcError]:
        d: Deferred[GrpcError] = Deferred()
        self.cancelled.addBoth(lambda reason: (d.callback(reason), reason)[1])
        return d

    def cancel(self) -> None:
        self.cancelled.callback(GrpcError(StatusCode.CANCELLED, "context canceled"))


class FakeStream:
    """A server stream that records what is sent."""

    def __init__(self) -> None:
        self.sent: list[Any] = []

    def send(self, message: Any) -> Deferred[None]:
        self.sent.append(message)
        return succeed(None)

    def pop(self) -> list[Any]:
        sent, self.sent = self.sent, []
        return sent
