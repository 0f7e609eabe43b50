"""Small synchronous grpcio helpers the orchestrator uses between workloads."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence

import grpc

from bench.procs import Server, wait_listening
from etcd_twisted._pb import rpc_pb2, rpc_pb2_grpc

# Fast reconnects: the default backoff (1 s and up) would inflate start-up times.
CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 20),
    ("grpc.min_reconnect_backoff_ms", 20),
    ("grpc.max_reconnect_backoff_ms", 100),
    ("grpc.max_receive_message_length", 64 << 20),
    ("grpc.use_local_subchannel_pool", 1),
]


def channel(endpoint: str) -> grpc.Channel:
    return grpc.insecure_channel(endpoint, options=CHANNEL_OPTIONS)


def first_write(servers: Sequence[Server], timeout: float = 60.0) -> float:
    """Seconds from the first spawn to the first acknowledged put on any member.

    Waits for the TCP port first (so gRPC never backs off), then tries a put every
    20 ms on each member in turn until one succeeds or ``timeout`` passes.
    """
    start = min(s.spawned_at for s in servers)
    deadline = start + timeout
    for s in servers:
        wait_listening(s, deadline)
    channels = [channel(s.endpoint) for s in servers]
    try:
        stubs = [rpc_pb2_grpc.KVStub(c) for c in channels]
        request = rpc_pb2.PutRequest(key=b"bench/first-write", value=b"x")
        last: Exception | None = None
        while time.monotonic() < deadline:
            for s, stub in zip(servers, stubs, strict=True):
                if not s.running():
                    raise RuntimeError(f"{s.kind} {s.name} exited:\n{s.log_tail()}")
                try:
                    stub.Put(request, timeout=1.0)
                    return time.monotonic() - start
                except grpc.RpcError as e:
                    last = e
            time.sleep(0.02)
        raise TimeoutError(f"no acknowledged put within {timeout}s: {last}")
    finally:
        for c in channels:
            c.close()


def revision(endpoint: str) -> int:
    """The store's current revision."""
    with channel(endpoint) as c:
        r = rpc_pb2_grpc.KVStub(c).Range(
            rpc_pb2.RangeRequest(key=b"\0", count_only=True), timeout=10
        )
        return r.header.revision


def put(endpoint: str, key: bytes, value: bytes) -> None:
    with channel(endpoint) as c:
        rpc_pb2_grpc.KVStub(c).Put(rpc_pb2.PutRequest(key=key, value=value), timeout=10)


def leader(servers: Sequence[Server], timeout: float = 20.0) -> Server:
    """The member whose Status says it is the leader."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for s in servers:
            try:
                with channel(s.endpoint) as c:
                    st = rpc_pb2_grpc.MaintenanceStub(c).Status(rpc_pb2.StatusRequest(), timeout=2)
                if st.leader and st.leader == st.header.member_id:
                    return s
            except grpc.RpcError:
                pass
        time.sleep(0.1)
    raise TimeoutError("no member reports itself leader")


def probe_watch(endpoint: str, timeout: float = 5.0) -> str | None:
    """``None`` if a watch can be created; else why not ("not implemented" or the error)."""
    with channel(endpoint) as c:
        stub = rpc_pb2_grpc.WatchStub(c)
        req = rpc_pb2.WatchRequest(create_request=rpc_pb2.WatchCreateRequest(key=b"bench/probe"))
        done = threading.Event()

        def requests() -> Iterator[rpc_pb2.WatchRequest]:
            yield req
            done.wait(timeout)  # keep the stream half-open: etcd ends it on EOF

        call = stub.Watch(requests(), timeout=timeout)
        try:
            for resp in call:
                return None if resp.created else f"unexpected first response {resp}"
            return "stream ended without a created response"
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.UNIMPLEMENTED:
                return "not implemented"
            return f"{e.code().name}: {e.details()}"
        finally:
            done.set()
            call.cancel()
