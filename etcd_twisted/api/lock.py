"""The ``v3lockpb.Lock`` service (etcd's ``server/etcdserver/api/v3lock``).

A lock on ``name`` is held by the key ``name/<lease in hex>`` with the oldest create
revision under ``name/``, as clientv3's ``concurrency.Mutex`` keeps it:

- Lock puts the caller's key with its lease if it does not exist yet (a txn whose
  compare is create revision 0; it also reads the current owner), and answers at
  once when the key is the oldest. Otherwise it waits until every older key is
  deleted (unlocked, or gone with its lease), then reads its own key again: if the
  lease expired meanwhile the key is gone and the answer is ``mutex: session is
  expired``. A lease 0 gets a new 60-second lease (etcd's session default).
- A Lock call cancelled while waiting deletes its key.
- Unlock deletes the key it is given.
"""

from __future__ import annotations

from etcd_twisted._pb import rpc_pb2, v3lock_pb2
from etcd_twisted.api.concurrency import (
    Client,
    ConcurrencyServer,
    SessionExpiredError,
    call_handler,
    created_at,
    first_create,
    wait_deletes,
)
from etcd_twisted.grpc import Registry

_SERVICE = "/v3lockpb.Lock"


def register(registry: Registry, server: ConcurrencyServer) -> None:
    """Add Lock and Unlock to ``registry``."""

    async def lock(client: Client, req: v3lock_pb2.LockRequest) -> v3lock_pb2.LockResponse:
        return await acquire(client, req.name, req.lease)

    async def unlock(client: Client, req: v3lock_pb2.UnlockRequest) -> v3lock_pb2.UnlockResponse:
        resp = await client.delete(req.key)
        return v3lock_pb2.UnlockResponse(header=resp.header)

    registry.add_unary(f"{_SERVICE}/Lock", v3lock_pb2.LockRequest, call_handler(server, lock))
    registry.add_unary(f"{_SERVICE}/Unlock", v3lock_pb2.UnlockRequest, call_handler(server, unlock))


async def acquire(client: Client, name: bytes, lease: int) -> v3lock_pb2.LockResponse:
    """Hold the lock ``name`` with ``lease`` (0: a new session lease), waiting for older holders."""
    lease = await client.session_lease(lease)
    prefix = name + b"/"
    key = prefix + b"%x" % lease
    owner = rpc_pb2.RequestOp(request_range=first_create(prefix))
    resp = await client.txn(
        rpc_pb2.TxnRequest(
            compare=[created_at(key, 0)],
            success=[
                rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=key, lease=lease)),
                owner,
            ],
            failure=[rpc_pb2.RequestOp(request_range=rpc_pb2.RangeRequest(key=key)), owner],
        )
    )
    my_rev = resp.header.revision
    if not resp.succeeded:
        my_rev = resp.responses[0].response_range.kvs[0].create_revision
    owners = resp.responses[1].response_range.kvs
    if not owners or owners[0].create_revision == my_rev:
        return v3lock_pb2.LockResponse(header=resp.header, key=key)
    try:
        await wait_deletes(client, prefix, my_rev - 1)
        mine = await client.get(rpc_pb2.RangeRequest(key=key))
    except BaseException:
        client.delete_later(key)
        raise
    if not mine.kvs:
        raise SessionExpiredError()
    return v3lock_pb2.LockResponse(header=mine.header, key=key)
