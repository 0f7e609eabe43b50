"""A multi-process grpcio load driver.

``run(fn, kwargs_list)`` starts one spawned process per ``kwargs`` (each with its own
channel and asyncio loop), lets each prepare (connect, create watchers, grant leases),
meets them at a barrier so the measured phase starts together, and returns each
process's result dict. Each result carries ``cpu``/``wall`` so the report can say when a
driver process, not the server, was the bottleneck (``cpu / wall`` near 1).

Times are ``time.monotonic()``, which is one clock for every process on Linux.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import queue
import signal
import time
import traceback
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from etcd_twisted._pb import rpc_pb2, rpc_pb2_grpc

CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 20),
    ("grpc.max_reconnect_backoff_ms", 100),
    ("grpc.max_receive_message_length", 64 << 20),
]
VALUE = b"v" * 256
Result = dict[str, Any]


class Barrier:
    """The cross-process start line, awaited without blocking the event loop."""

    def __init__(self, barrier: Any, timeout: float) -> None:
        self._barrier = barrier
        self._timeout = timeout

    async def wait(self) -> float:
        """Wait for every process; returns the common start time (``monotonic``)."""
        await asyncio.to_thread(self._barrier.wait, self._timeout)
        return time.monotonic()


def _aio_channel(endpoint: str) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(endpoint, options=CHANNEL_OPTIONS)


async def unary_load(
    start: Barrier,
    endpoint: str,
    op: str,
    concurrency: int,
    duration: float,
    warmup: float,
    index: int = 0,
) -> Result:
    """``concurrency`` closed-loop clients on one channel sending ``op`` back to back.

    ``op``: ``put`` (a distinct key per client), ``range_lin`` / ``range_ser`` (one fixed
    key), ``txn`` (compare version > 0, then put + range of the client's own key, else put).
    Counts calls that complete in ``[start + warmup, start + warmup + duration)``.
    """
    async with _aio_channel(endpoint) as ch:
        kv = rpc_pb2_grpc.KVStub(ch)

        def request(task: int) -> tuple[Callable[..., Awaitable[Any]], Any]:
            key = f"bench/{op}/{index}/{task}".encode()
            if op == "put":
                return kv.Put, rpc_pb2.PutRequest(key=key, value=VALUE)
            if op in ("range_lin", "range_ser"):
                req = rpc_pb2.RangeRequest(key=b"bench/range", serializable=op == "range_ser")
                return kv.Range, req
            if op == "txn":
                cmp = rpc_pb2.Compare(
                    key=key,
                    target=rpc_pb2.Compare.VERSION,
                    result=rpc_pb2.Compare.GREATER,
                    version=0,
                )
                put = rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=key, value=VALUE))
                rng = rpc_pb2.RequestOp(request_range=rpc_pb2.RangeRequest(key=key))
                return kv.Txn, rpc_pb2.TxnRequest(compare=[cmp], success=[put, rng], failure=[put])
            raise ValueError(op)

        calls = [request(t) for t in range(concurrency)]
        if op.startswith("range"):
            await kv.Put(rpc_pb2.PutRequest(key=b"bench/range", value=VALUE), timeout=10)
        for method, req in calls[:1]:
            await method(req, timeout=10)
        t0 = await start.wait()
        begin, end = t0 + warmup, t0 + warmup + duration
        counts = {"ops": 0, "errors": 0}
        first_error: list[str] = []
        cpu0 = time.process_time()

        async def client(method: Callable[..., Awaitable[Any]], req: Any) -> None:
            while (now := time.monotonic()) < end:
                try:
                    await method(req, timeout=10)
                    ok = True
                except grpc.aio.AioRpcError as e:
                    ok = False
                    if not first_error:
                        first_error.append(f"{e.code().name}: {e.details()}")
                done = time.monotonic()
                if now >= begin and done < end:
                    counts["ops" if ok else "errors"] += 1

        await asyncio.gather(*(client(m, r) for m, r in calls))
        cpu = time.process_time() - cpu0
        return {
            **counts,
            "seconds": duration,
            "cpu": cpu,
            "wall": time.monotonic() - t0,
            "first_error": first_error[0] if first_error else None,
        }


async def sequential_latency(
    start: Barrier, endpoint: str, op: str, duration: float, max_ops: int, warmup_ops: int = 20
) -> Result:
    """One client, one call at a time (``put`` of a 256-byte value or ``get`` of one key).

    Stops after ``duration`` seconds or ``max_ops`` calls; returns latencies in ms.
    Uses the blocking stub: it is the cheapest client path in grpcio.
    """
    with grpc.insecure_channel(endpoint, options=CHANNEL_OPTIONS) as ch:
        kv = rpc_pb2_grpc.KVStub(ch)
        key = b"bench/latency"
        kv.Put(rpc_pb2.PutRequest(key=key, value=VALUE), timeout=10)
        if op == "put":
            method, req = kv.Put, rpc_pb2.PutRequest(key=key, value=VALUE)
        elif op == "get":
            method, req = kv.Range, rpc_pb2.RangeRequest(key=key)
        else:
            raise ValueError(op)
        for _ in range(warmup_ops):
            method(req, timeout=10)
        t0 = await start.wait()
        end = t0 + duration
        cpu0 = time.process_time()
        samples: list[float] = []
        clock = time.perf_counter
        while len(samples) < max_ops and time.monotonic() < end:
            a = clock()
            method(req, timeout=10)
            samples.append((clock() - a) * 1000.0)
        samples.sort()
        n = len(samples)
        return {
            "ops": n,
            "p50_ms": samples[n // 2],
            "p99_ms": samples[min(n - 1, int(n * 0.99))],
            "max_ms": samples[-1],
            "mean_ms": sum(samples) / n,
            "cpu": time.process_time() - cpu0,
            "wall": time.monotonic() - t0,
        }


async def watch_receive(
    start: Barrier,
    endpoint: str,
    key: str,
    streams: int,
    per_stream: int,
    idle: float,
    deadline: float,
) -> Result:
    """``streams`` Watch streams with ``per_stream`` watchers each on ``key``; count events.

    Stops once no event arrived for ``idle`` seconds after the writer started (or
    ``deadline`` seconds after the start line); returns events and the last event's time.
    """
    async with _aio_channel(endpoint) as ch:
        stub = rpc_pb2_grpc.WatchStub(ch)
        calls = []
        create = rpc_pb2.WatchRequest(create_request=rpc_pb2.WatchCreateRequest(key=key.encode()))
        for _ in range(streams):
            call = stub.Watch()
            for _ in range(per_stream):
                await call.write(create)
            created = 0
            while created < per_stream:
                resp = await asyncio.wait_for(call.read(), 30)
                if resp is grpc.aio.EOF or resp.canceled:
                    raise RuntimeError(f"watch not created: {resp}")
                created += resp.created
            calls.append(call)
        t0 = await start.wait()
        cpu0 = time.process_time()
        state = {"events": 0, "last": t0, "responses": 0}

        async def reader(call: Any) -> None:
            while True:
                resp = await call.read()
                if resp is grpc.aio.EOF:
                    return
                state["events"] += len(resp.events)
                state["responses"] += 1
                state["last"] = time.monotonic()

        tasks = [asyncio.ensure_future(reader(c)) for c in calls]
        hard_end = t0 + deadline
        while time.monotonic() < hard_end:
            await asyncio.sleep(0.05)
            if any(t.done() for t in tasks):
                break
            if state["events"] and time.monotonic() - state["last"] > idle:
                break
        for c in calls:
            c.cancel()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return {
            "events": state["events"],
            "responses": state["responses"],
            "last_event": state["last"],
            "watchers": streams * per_stream,
            "cpu": time.process_time() - cpu0,
            "wall": time.monotonic() - t0,
        }


async def watch_write(
    start: Barrier, endpoint: str, key: str, concurrency: int, duration: float, max_puts: int
) -> Result:
    """Put to ``key`` from ``concurrency`` clients for ``duration`` s or ``max_puts`` puts."""
    async with _aio_channel(endpoint) as ch:
        kv = rpc_pb2_grpc.KVStub(ch)
        req = rpc_pb2.PutRequest(key=key.encode(), value=VALUE)
        await kv.Range(rpc_pb2.RangeRequest(key=b"bench/none"), timeout=10)
        t0 = await start.wait()
        cpu0 = time.process_time()
        await asyncio.sleep(0.2)  # let the watchers' readers start
        began = time.monotonic()
        end = began + duration
        state = {"issued": 0, "acked": 0}

        async def client() -> None:
            while time.monotonic() < end and state["issued"] < max_puts:
                state["issued"] += 1
                await kv.Put(req, timeout=30)
                state["acked"] += 1

        await asyncio.gather(*(client() for _ in range(concurrency)))
        return {
            "puts": state["acked"],
            "began": began,
            "finished": time.monotonic(),
            "wall": time.monotonic() - t0,
            "cpu": time.process_time() - cpu0,
        }


async def keepalive(
    start: Barrier, endpoint: str, leases: int, window: int, duration: float, warmup: float
) -> Result:
    """Grant ``leases`` leases, then keep them alive round-robin on one stream.

    Up to ``window`` requests are in flight (responses come in order); counts responses
    received in the measured window, and how many had TTL <= 0 (lease unknown).
    """
    async with _aio_channel(endpoint) as ch:
        stub = rpc_pb2_grpc.LeaseStub(ch)
        ids: list[int] = []
        sem = asyncio.Semaphore(32)

        async def grant() -> None:
            async with sem:
                r = await stub.LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=600), timeout=30)
                ids.append(r.ID)

        await asyncio.gather(*(grant() for _ in range(leases)))
        call = stub.LeaseKeepAlive()
        await call.write(rpc_pb2.LeaseKeepAliveRequest(ID=ids[0]))
        await call.read()
        t0 = await start.wait()
        begin, end = t0 + warmup, t0 + warmup + duration
        cpu0 = time.process_time()
        inflight = asyncio.Semaphore(window)
        counts = {"ops": 0, "expired": 0}
        requests = [rpc_pb2.LeaseKeepAliveRequest(ID=i) for i in ids]

        async def writer() -> None:
            i = 0
            while time.monotonic() < end:
                await inflight.acquire()
                await call.write(requests[i % len(requests)])
                i += 1

        async def reader() -> None:
            while True:
                resp = await call.read()
                if resp is grpc.aio.EOF:
                    return
                inflight.release()
                now = time.monotonic()
                if begin <= now < end:
                    counts["ops"] += 1
                    counts["expired"] += resp.TTL <= 0
                if now >= end:
                    return

        w = asyncio.ensure_future(writer())
        r = asyncio.ensure_future(reader())
        await asyncio.wait([r], timeout=warmup + duration + 30)
        w.cancel()
        call.cancel()
        await asyncio.gather(w, r, return_exceptions=True)
        # The leases are left to expire: each round's servers are thrown away after it.
        return {
            **counts,
            "seconds": duration,
            "leases": leases,
            "cpu": time.process_time() - cpu0,
            "wall": time.monotonic() - t0,
        }


async def load_keys(
    start: Barrier, endpoint: str, first: int, count: int, batch: int, concurrency: int
) -> Result:
    """Write keys ``bench/rss/{first..first+count}`` (256-byte values), ``batch`` puts per txn."""
    async with _aio_channel(endpoint) as ch:
        kv = rpc_pb2_grpc.KVStub(ch)
        await kv.Range(rpc_pb2.RangeRequest(key=b"bench/none"), timeout=10)
        t0 = await start.wait()
        starts = iter(range(first, first + count, batch))

        async def client() -> None:
            for s in starts:
                ops = [
                    rpc_pb2.RequestOp(
                        request_put=rpc_pb2.PutRequest(
                            key=f"bench/rss/{i:08d}".encode(), value=VALUE
                        )
                    )
                    for i in range(s, min(s + batch, first + count))
                ]
                await kv.Txn(rpc_pb2.TxnRequest(success=ops), timeout=60)

        await asyncio.gather(*(client() for _ in range(concurrency)))
        return {"keys": count, "wall": time.monotonic() - t0, "cpu": time.process_time()}


FUNCTIONS: dict[str, Callable[..., Awaitable[Result]]] = {
    f.__name__: f
    for f in (unary_load, sequential_latency, watch_receive, watch_write, keepalive, load_keys)
}


def _child(name: str, kwargs: dict[str, Any], barrier: Any, results: Any, timeout: float) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's: it terminates us
    try:
        out = asyncio.run(FUNCTIONS[name](Barrier(barrier, timeout), **kwargs))
        results.put((os.getpid(), None, out))
    except BaseException as e:  # noqa: BLE001 - reported to the parent
        barrier.abort()
        results.put(
            (os.getpid(), f"{type(e).__name__}: {e}\n{traceback.format_exc()[-1500:]}", None)
        )


def run(jobs: list[tuple[str, dict[str, Any]]], timeout: float) -> list[Result]:
    """Run each ``(function name, kwargs)`` in its own spawned process; their results in order.

    Raises ``RuntimeError`` if any process fails or ``timeout`` seconds pass; every
    process is terminated before returning either way.
    """
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(len(jobs))
    results = ctx.Queue()
    procs = [
        ctx.Process(target=_child, args=(name, kw, barrier, results, timeout), daemon=True)
        for name, kw in jobs
    ]
    by_pid: dict[int, Result] = {}
    errors: list[str] = []
    try:
        for p in procs:
            p.start()
        deadline = time.monotonic() + timeout
        while len(by_pid) + len(errors) < len(procs):
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError(f"driver timed out after {timeout}s")
            try:
                pid, err, out = results.get(timeout=min(left, 1.0))
            except queue.Empty:
                if any(p.exitcode not in (None, 0) for p in procs):
                    raise RuntimeError("a driver process died") from None
                continue
            if err is not None:
                errors.append(err)
            else:
                by_pid[pid] = out
        if errors:
            raise RuntimeError(errors[0])
        return [by_pid[p.pid] for p in procs]  # type: ignore[index]
    finally:
        for p in procs:
            p.join(timeout=5)
            if p.is_alive():
                p.terminate()
                p.join(timeout=5)
        results.close()
