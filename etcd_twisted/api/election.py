"""The ``v3electionpb.Election`` service (etcd's ``server/etcdserver/api/v3election``).

As clientv3's ``concurrency.Election``: a candidate's key is ``name/<lease in hex>``,
and the leader is the key under ``name/`` with the oldest create revision.

- Campaign puts the candidate's key with its value if it does not exist (if it does
  with another value, proclaims the new value), then waits until every older key is
  deleted. The answer's header is the first txn's, as etcd's. Cancelled while
  waiting, the candidate resigns.
- Proclaim sets the leader's value if its key still has the leader's create
  revision, else ``election: not leader``; Resign deletes the key on the same
  condition (and succeeds either way).
- Leader reads the oldest key (``election: no leader`` when there is none).
- Observe streams the leader: its key when there is one (else the first key put
  under the prefix), each new value of that key, and the next leader once the key
  is deleted. It ends (OK) if a read or a watch fails.

A lease 0 in Campaign, Proclaim or Resign gets a new 60-second lease, as etcd's
session does.
"""

from __future__ import annotations

from twisted.internet.defer import CancelledError, Deferred, fail
from twisted.python.failure import Failure

from etcd_twisted._pb import kv_pb2, rpc_pb2, v3election_pb2
from etcd_twisted._pb.kv_pb2 import Event
from etcd_twisted.api.concurrency import (
    Client,
    ConcurrencyServer,
    MissingLeaderKeyError,
    NoLeaderError,
    NotLeaderError,
    call_handler,
    created_at,
    first_create,
    prefix_end,
    wait_deletes,
)
from etcd_twisted.api.errors import to_grpc_error
from etcd_twisted.api.unary import check_learner, require_leader
from etcd_twisted.grpc import Registry, ServerContext, ServerStream

_SERVICE = "/v3electionpb.Election"


def register(registry: Registry, server: ConcurrencyServer) -> None:
    """Add Campaign, Proclaim, Leader, Observe and Resign to ``registry``."""

    async def campaign(
        client: Client, req: v3election_pb2.CampaignRequest
    ) -> v3election_pb2.CampaignResponse:
        return await run_campaign(client, req)

    async def proclaim(
        client: Client, req: v3election_pb2.ProclaimRequest
    ) -> v3election_pb2.ProclaimResponse:
        if not req.HasField("leader"):
            raise MissingLeaderKeyError()
        leader = req.leader
        lease = await client.session_lease(leader.lease)
        header = await set_value(client, leader.key, leader.rev, lease, req.value)
        return v3election_pb2.ProclaimResponse(header=header)

    async def resign(
        client: Client, req: v3election_pb2.ResignRequest
    ) -> v3election_pb2.ResignResponse:
        if not req.HasField("leader"):
            raise MissingLeaderKeyError()
        leader = req.leader
        await client.session_lease(leader.lease)
        header = await delete_if_created_at(client, leader.key, leader.rev)
        return v3election_pb2.ResignResponse(header=header)

    async def get_leader(
        client: Client, req: v3election_pb2.LeaderRequest
    ) -> v3election_pb2.LeaderResponse:
        resp = await client.get(first_create(req.name + b"/"))
        if not resp.kvs:
            raise NoLeaderError()
        return v3election_pb2.LeaderResponse(header=resp.header, kv=resp.kvs[0])

    def observe_handler(
        req: v3election_pb2.LeaderRequest, ctx: ServerContext, stream: ServerStream
    ) -> Deferred[None]:
        try:
            require_leader(server, ctx)
            check_learner(server, req)
        except Exception as e:  # noqa: BLE001 - reported as the client's status
            return fail(to_grpc_error(e))

        async def start() -> None:
            await observe(await Client.for_call(server, ctx), req.name, stream)

        d = Deferred.fromCoroutine(start())
        ctx.when_cancelled().addCallback(lambda _: d.cancel())
        return d.addErrback(_ended)

    for method, request_cls, run in (
        ("Campaign", v3election_pb2.CampaignRequest, campaign),
        ("Proclaim", v3election_pb2.ProclaimRequest, proclaim),
        ("Leader", v3election_pb2.LeaderRequest, get_leader),
        ("Resign", v3election_pb2.ResignRequest, resign),
    ):
        registry.add_unary(f"{_SERVICE}/{method}", request_cls, call_handler(server, run))
    registry.add_server_stream(f"{_SERVICE}/Observe", v3election_pb2.LeaderRequest, observe_handler)


def _ended(failure: Failure) -> None:
    """Observe is over: a cancelled call needs no status; other failures end it OK, as etcd's."""


async def set_value(
    client: Client, key: bytes, rev: int, lease: int, value: bytes
) -> rpc_pb2.ResponseHeader:
    """Put ``value`` at the leader key ``key`` if it was created at ``rev``; else not leader."""
    resp = await client.txn(
        rpc_pb2.TxnRequest(
            compare=[created_at(key, rev)],
            success=[
                rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=key, value=value, lease=lease))
            ],
        )
    )
    if not resp.succeeded:
        raise NotLeaderError()
    return resp.header


async def delete_if_created_at(client: Client, key: bytes, rev: int) -> rpc_pb2.ResponseHeader:
    """Delete ``key`` if it was created at ``rev`` (a resignation)."""
    resp = await client.txn(
        rpc_pb2.TxnRequest(
            compare=[created_at(key, rev)],
            success=[rpc_pb2.RequestOp(request_delete_range=rpc_pb2.DeleteRangeRequest(key=key))],
        )
    )
    return resp.header


def _resign_later(client: Client, key: bytes, rev: int) -> None:
    Deferred.fromCoroutine(delete_if_created_at(client, key, rev)).addErrback(lambda _: None)


async def run_campaign(
    client: Client, req: v3election_pb2.CampaignRequest
) -> v3election_pb2.CampaignResponse:
    """Stand for election ``req.name`` and return once elected."""
    lease = await client.session_lease(req.lease)
    prefix = req.name + b"/"
    key = prefix + b"%x" % lease
    resp = await client.txn(
        rpc_pb2.TxnRequest(
            compare=[created_at(key, 0)],
            success=[
                rpc_pb2.RequestOp(
                    request_put=rpc_pb2.PutRequest(key=key, value=req.value, lease=lease)
                )
            ],
            failure=[rpc_pb2.RequestOp(request_range=rpc_pb2.RangeRequest(key=key))],
        )
    )
    rev = resp.header.revision
    if not resp.succeeded:
        kv = resp.responses[0].response_range.kvs[0]
        rev = kv.create_revision
        if kv.value != req.value:
            try:
                await set_value(client, key, rev, lease, req.value)
            except BaseException:
                _resign_later(client, key, rev)
                raise
    try:
        await wait_deletes(client, prefix, rev - 1)
    except CancelledError:
        _resign_later(client, key, rev)
        raise
    leader = v3election_pb2.LeaderKey(name=req.name, key=key, rev=rev, lease=lease)
    return v3election_pb2.CampaignResponse(header=resp.header, leader=leader)


async def observe(client: Client, name: bytes, stream: ServerStream) -> None:
    """Send the leader of ``name`` and each change of it until the call ends."""
    prefix = name + b"/"
    while True:
        resp = await client.get(first_create(prefix))
        if resp.kvs:
            header, kv = resp.header, resp.kvs[0]
        else:
            header, kv = await _first_put(client, prefix, resp.header.revision)
        await stream.send(v3election_pb2.LeaderResponse(header=header, kv=kv))
        watch = client.watch(kv.key, start_rev=header.revision + 1)
        try:
            deleted = False
            while not deleted:
                response = await watch.next()
                for ev in response.events:
                    if ev.type == Event.DELETE:
                        deleted = True
                        break
                    await stream.send(
                        v3election_pb2.LeaderResponse(
                            header=client.header(response.revision), kv=ev.kv
                        )
                    )
        finally:
            watch.close()


async def _first_put(
    client: Client, prefix: bytes, rev: int
) -> tuple[rpc_pb2.ResponseHeader, kv_pb2.KeyValue]:
    """The first key put under ``prefix`` from ``rev``, with its revision as the header's."""
    watch = client.watch(prefix, prefix_end(prefix), start_rev=rev)
    try:
        while True:
            response = await watch.next()
            for ev in response.events:
                if ev.type == Event.PUT:
                    header = client.header(response.revision)
                    header.revision = ev.kv.mod_revision
                    return header, ev.kv
    finally:
        watch.close()
