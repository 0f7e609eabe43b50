"""Traffic: sequential clients and watchers on threads with blocking grpcio, recording a history.

Each client thread sends one request at a time to one member.  A client id is
one session on one member: after a failure whose outcome is unknown, the thread
takes a new id and a member picked at random.  The mix on a small key space:
put, linearizable and serializable get (one key, the whole prefix, a past
revision), multi-op txn, compare-and-set (get, then a txn comparing the mod
revision or the value), delete (one key or a range), lease grant (client-chosen
ids, TTLs longer than any run, as the model does not expire leases), put with a
lease, lease revoke.  A compactor compacts a little behind the newest revision
every few hundred milliseconds.  Watchers open streams from the next revision,
from a recent past revision, or from revision 1 (compacted once compaction ran),
end them after a few seconds, and resume a broken stream from its last revision
+ 1 as a new session.

Errors: the server's definite refusals (compacted, future revision, lease not
found, lease exists) are responses; a call that no connection carried (the member
is down) is left out; every other failure is an unknown outcome.
Every put value is unique, as the checker's lost-write analysis needs.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc

from etcd_twisted._pb import kv_pb2, rpc_pb2, rpc_pb2_grpc
from robustness.history import (
    COMPACTED,
    FUTURE_REVISION,
    LEASE_EXISTS,
    LEASE_NOT_FOUND,
    Compact,
    Compare,
    Delete,
    KeyValue,
    LeaseGrant,
    LeaseRevoke,
    Put,
    Range,
    Recorder,
    Request,
    Response,
    Txn,
    WatchEvent,
    WatchRequest,
    WatchResponse,
    WatchSession,
)

PREFIX = "k"
PREFIX_END = "l"
LEASE_TTL = 7200
_TARGETS = {"version": 0, "create": 1, "mod": 2, "value": 3, "lease": 4}
_OPS = {"=": 0, ">": 1, "<": 2, "!=": 3}
_CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 500),
    ("grpc.use_local_subchannel_pool", 1),
]


@dataclass
class TrafficSettings:
    """How much traffic, and of what kind."""

    clients: int = 4
    watchers: int = 2
    keys: int = 6
    timeout: float = 2.0
    compaction_interval: float = 0.3
    compaction_lag: int = 20
    watch_session: tuple[float, float] = (2.0, 6.0)
    #: A pause between requests, so the history stays checkable (seconds).
    think: float = 0.0
    #: Ask for prev_kv on watches that start in the past too.  etcd leaves prev_kv
    #: out when the revision before an event is compacted by the time it is sent,
    #: which the watch checker does not allow for yet: off keeps CI free of that.
    prev_kv_from_past: bool = True


# --- conversions between the history's requests and protobuf


def _b(text: str | None) -> bytes:
    return b"" if text is None else text.encode()


def _range_pb(r: Range) -> rpc_pb2.RangeRequest:
    return rpc_pb2.RangeRequest(
        key=_b(r.key),
        range_end=_b(r.range_end),
        revision=r.revision,
        serializable=r.serializable,
        limit=r.limit,
    )


def _put_pb(p: Put) -> rpc_pb2.PutRequest:
    return rpc_pb2.PutRequest(key=_b(p.key), value=_b(p.value), lease=p.lease)


def _delete_pb(d: Delete) -> rpc_pb2.DeleteRangeRequest:
    return rpc_pb2.DeleteRangeRequest(key=_b(d.key), range_end=_b(d.range_end))


def _compare_pb(c: Compare) -> rpc_pb2.Compare:
    pb = rpc_pb2.Compare(key=_b(c.key), target=_TARGETS[c.target], result=_OPS[c.op])
    if c.target == "value":
        pb.value = _b(str(c.operand))
    elif c.target == "version":
        pb.version = int(c.operand)
    elif c.target == "create":
        pb.create_revision = int(c.operand)
    elif c.target == "mod":
        pb.mod_revision = int(c.operand)
    else:
        pb.lease = int(c.operand)
    return pb


def _op_pb(op: Range | Put | Delete) -> rpc_pb2.RequestOp:
    if isinstance(op, Range):
        return rpc_pb2.RequestOp(request_range=_range_pb(op))
    if isinstance(op, Put):
        return rpc_pb2.RequestOp(request_put=_put_pb(op))
    return rpc_pb2.RequestOp(request_delete_range=_delete_pb(op))


def _txn_pb(t: Txn) -> rpc_pb2.TxnRequest:
    return rpc_pb2.TxnRequest(
        compare=[_compare_pb(c) for c in t.compares],
        success=[_op_pb(o) for o in t.success],
        failure=[_op_pb(o) for o in t.failure],
    )


def kv_of(pb: Any) -> KeyValue:
    """A history KeyValue from a protobuf one."""
    return KeyValue(
        pb.key.decode(errors="replace"),
        pb.value.decode(errors="replace"),
        pb.create_revision,
        pb.mod_revision,
        pb.version,
        pb.lease,
    )


def _range_response(pb: Any, revision: int) -> Response:
    return Response(revision, kvs=tuple(kv_of(kv) for kv in pb.kvs), count=pb.count)


def _txn_response(pb: rpc_pb2.TxnResponse) -> Response:
    results = []
    for r in pb.responses:
        which = r.WhichOneof("response")
        if which == "response_range":
            results.append(_range_response(r.response_range, 0))
        elif which == "response_put":
            results.append(Response())
        else:
            results.append(Response(deleted=r.response_delete_range.deleted))
    return Response(pb.header.revision, succeeded=pb.succeeded, results=tuple(results))


def never_sent(error: grpc.RpcError) -> bool:
    """Whether the call failed before any connection carried it (so it had no effect).

    gRPC fails a call this way only when it could not pick a connected transport; a
    call that went out on a connection which then broke fails with another message.
    """
    code = error.code() if hasattr(error, "code") else None
    details = (error.details() if hasattr(error, "details") else "") or ""
    return code == grpc.StatusCode.UNAVAILABLE and details.startswith(
        "failed to connect to all addresses"
    )


def definite_error(error: grpc.RpcError) -> str | None:
    """The history's name for a definite refusal, or None if the outcome is unknown."""
    code = error.code() if hasattr(error, "code") else None
    details = (error.details() if hasattr(error, "details") else "") or ""
    if code == grpc.StatusCode.OUT_OF_RANGE:
        if "compacted" in details:
            return COMPACTED
        if "future revision" in details:
            return FUTURE_REVISION
    if code == grpc.StatusCode.NOT_FOUND and "requested lease not found" in details:
        return LEASE_NOT_FOUND
    if code == grpc.StatusCode.FAILED_PRECONDITION and "lease already exists" in details:
        return LEASE_EXISTS
    return None


class Stubs:
    """The stubs of one channel to one member."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.channel = grpc.insecure_channel(url.removeprefix("http://"), options=_CHANNEL_OPTIONS)
        self.kv = rpc_pb2_grpc.KVStub(self.channel)
        self.lease = rpc_pb2_grpc.LeaseStub(self.channel)
        self.watch = rpc_pb2_grpc.WatchStub(self.channel)
        self.maintenance = rpc_pb2_grpc.MaintenanceStub(self.channel)

    def send(self, request: Request, timeout: float) -> Response:
        """Send a history request; raises ``grpc.RpcError`` on failure."""
        if isinstance(request, Range):
            pb = self.kv.Range(_range_pb(request), timeout=timeout)
            return _range_response(pb, pb.header.revision)
        if isinstance(request, Put):
            pb = self.kv.Put(_put_pb(request), timeout=timeout)
            return Response(pb.header.revision)
        if isinstance(request, Delete):
            pb = self.kv.DeleteRange(_delete_pb(request), timeout=timeout)
            return Response(pb.header.revision, deleted=pb.deleted)
        if isinstance(request, Txn):
            return _txn_response(self.kv.Txn(_txn_pb(request), timeout=timeout))
        if isinstance(request, LeaseGrant):
            pb = self.lease.LeaseGrant(
                rpc_pb2.LeaseGrantRequest(ID=request.lease_id, TTL=request.ttl), timeout=timeout
            )
            if pb.error:
                raise _Refused(pb.error)
            return Response(pb.header.revision, lease_id=pb.ID)
        if isinstance(request, LeaseRevoke):
            pb = self.lease.LeaseRevoke(
                rpc_pb2.LeaseRevokeRequest(ID=request.lease_id), timeout=timeout
            )
            return Response(pb.header.revision)
        if isinstance(request, Compact):
            pb = self.kv.Compact(
                rpc_pb2.CompactionRequest(revision=request.revision), timeout=timeout
            )
            return Response(pb.header.revision)
        raise TypeError(f"not a request: {request!r}")

    def close(self) -> None:
        self.channel.close()


class _Refused(Exception):
    """A response that carries an error string instead of a gRPC status."""


class Traffic:
    """Client, compactor and watcher threads; ``start``, then ``stop`` and ``join``."""

    def __init__(
        self,
        endpoints: Callable[[], list[str]],
        recorder: Recorder,
        settings: TrafficSettings,
        seed: int,
        deadline: float,
    ) -> None:
        self.endpoints = endpoints
        self.recorder = recorder
        self.settings = settings
        self.seed = seed
        self.deadline = deadline
        self.stopping = threading.Event()
        self.threads: list[threading.Thread] = []
        self._ids = itertools.count(1)
        self._lease_ids = itertools.count(1)
        self._lock = threading.Lock()
        self.revision = 1
        self.compacted = 0
        self.errors: Counter[str] = Counter()
        self.keys = [f"{PREFIX}{i}" for i in range(settings.keys)]
        self._streams: set[Any] = set()

    # --- lifecycle

    def start(self) -> None:
        """Start every thread."""
        jobs: list[tuple[str, Callable[[random.Random], None]]] = []
        jobs += [(f"client-{i}", self._client) for i in range(self.settings.clients)]
        jobs += [(f"watcher-{i}", self._watcher) for i in range(self.settings.watchers)]
        if self.settings.compaction_interval:
            jobs.append(("compactor", self._compactor))
        for n, (name, job) in enumerate(jobs):
            rng = random.Random(f"{self.seed}/{n}")
            thread = threading.Thread(target=self._guard, args=(job, rng), name=name, daemon=True)
            self.threads.append(thread)
            thread.start()

    def _guard(self, job: Callable[[random.Random], None], rng: random.Random) -> None:
        try:
            job(rng)
        except Exception as e:  # noqa: BLE001 - counted, the run goes on
            self._count(f"thread crashed: {type(e).__name__}: {e}")

    def stop(self) -> None:
        """Ask every thread to finish (watch streams are cancelled)."""
        self.stopping.set()
        with self._lock:
            streams = list(self._streams)
        for call in streams:
            call.cancel()

    def join(self, timeout: float = 30.0) -> list[str]:
        """Wait for the threads (blocking); the names of any still running."""
        end = time.monotonic() + timeout
        for t in self.threads:
            t.join(max(0.0, end - time.monotonic()))
        return [t.name for t in self.threads if t.is_alive()]

    def _running(self) -> bool:
        return not self.stopping.is_set() and time.monotonic() < self.deadline

    def _count(self, what: str) -> None:
        with self._lock:
            self.errors[what] += 1

    def _saw(self, revision: int) -> None:
        with self._lock:
            self.revision = max(self.revision, revision)

    def _pick(self, rng: random.Random) -> str:
        endpoints = self.endpoints()
        return rng.choice(endpoints)

    # --- clients

    def _send(self, stubs: Stubs, client: int, request: Request) -> Response | None:
        """Send and record one request; None when its outcome is unknown."""
        token = self.recorder.call(client, request)
        try:
            response = stubs.send(request, self.settings.timeout)
        except grpc.RpcError as e:
            if never_sent(e):
                self.recorder.not_sent(token)
                self._count(f"{type(request).__name__}: not sent")
                return None
            error = definite_error(e)
            if error is None:
                self.recorder.unknown(token)
                self._count(f"{type(request).__name__}: {e.code().name}")  # type: ignore[attr-defined]
                return None
            response = Response(error=error)
        except _Refused as e:
            self.recorder.unknown(token)
            self._count(f"{type(request).__name__}: {e}")
            return None
        self.recorder.ok(token, response)
        if response.error is None:
            self._saw(response.revision)
        return response

    def _client(self, rng: random.Random) -> None:
        stubs: Stubs | None = None
        client = 0
        leases: list[int] = []
        n = failures = 0
        while self._running():
            if stubs is None:
                stubs = Stubs(self._pick(rng))
                client = next(self._ids)
            n += 1
            ok = self._one(rng, stubs, client, leases, f"{client}.{n}")
            if not ok:
                stubs.close()
                stubs = None
                failures += 1
                # Back off while members are down: fewer unknown outcomes to check.
                self.stopping.wait(min(2.0, 0.1 * 2 ** min(failures, 5)) * rng.uniform(0.5, 1.0))
                continue
            failures = 0
            if self.settings.think:
                self.stopping.wait(self.settings.think)
        if stubs is not None:
            stubs.close()

    def _one(
        self, rng: random.Random, stubs: Stubs, client: int, leases: list[int], value: str
    ) -> bool:
        """One step of the mix; False when an outcome was unknown."""
        key = rng.choice(self.keys)
        roll = rng.random()
        request: Request
        if roll < 0.18:
            request = Put(key, value)
        elif roll < 0.30:
            request = Range(key)
        elif roll < 0.36:
            request = Range(PREFIX, PREFIX_END, limit=rng.choice((0, 0, 2)))
        elif roll < 0.46:
            whole = rng.random() < 0.4
            request = Range(*((PREFIX, PREFIX_END) if whole else (key,)), serializable=True)
        elif roll < 0.50:
            with self._lock:
                low, high = max(self.compacted, 1), self.revision
            request = Range(PREFIX, PREFIX_END, revision=rng.randint(low, max(low, high)))
        elif roll < 0.60:
            request = self._multi_txn(rng, value)
        elif roll < 0.72:
            return self._cas(rng, stubs, client, key, value)
        elif roll < 0.80:
            other = rng.choice(self.keys)
            lo, hi = sorted((key, other))
            request = Delete(key) if rng.random() < 0.7 or lo == hi else Delete(lo, hi)
        elif roll < 0.90:
            if not leases or rng.random() < 0.2:
                lease_id = 1_000_000 + next(self._lease_ids)
                response = self._send(stubs, client, LeaseGrant(lease_id, LEASE_TTL))
                if response is None:
                    return False
                if response.error is None:
                    leases.append(lease_id)
                return True
            request = Put(key, value, lease=rng.choice(leases))
        else:
            if not leases:
                return True
            lease_id = leases.pop(rng.randrange(len(leases)))
            request = LeaseRevoke(lease_id)
        return self._send(stubs, client, request) is not None

    def _multi_txn(self, rng: random.Random, value: str) -> Txn:
        a, b, c = rng.sample(self.keys, 3)
        compare = rng.choice(
            (
                Compare(a, "version", ">", 0),
                Compare(a, "create", "=", 0),
                Compare(b, "mod", "<", max(1, self.revision - rng.randint(0, 10))),
                Compare(a, "lease", "=", 0),
            )
        )
        success = (Put(a, value), Delete(b), Range(c))
        failure = (Put(b, value + "f"), Range(a), Range(PREFIX, PREFIX_END))
        return Txn((compare,), success, failure)

    def _cas(self, rng: random.Random, stubs: Stubs, client: int, key: str, value: str) -> bool:
        got = self._send(stubs, client, Range(key))
        if got is None:
            return False
        if got.error is not None:
            return True
        if got.kvs and rng.random() < 0.5:
            compare = Compare(key, "value", "=", got.kvs[0].value)
        else:
            compare = Compare(key, "mod", "=", got.kvs[0].mod_revision if got.kvs else 0)
        txn = Txn((compare,), (Put(key, value),), (Range(key),))
        return self._send(stubs, client, txn) is not None

    # --- compactor

    def _compactor(self, rng: random.Random) -> None:
        stubs: Stubs | None = None
        client = 0
        while self._running():
            self.stopping.wait(self.settings.compaction_interval * rng.uniform(0.7, 1.3))
            if not self._running():
                break
            with self._lock:
                target = self.revision - self.settings.compaction_lag
            if target <= self.compacted or target < 2:
                continue
            if stubs is None:
                stubs = Stubs(self._pick(rng))
                client = next(self._ids)
            response = self._send(stubs, client, Compact(target))
            if response is None:
                stubs.close()
                stubs = None
            elif response.error is None or response.error == COMPACTED:
                with self._lock:
                    self.compacted = max(self.compacted, target)
        if stubs is not None:
            stubs.close()

    # --- watchers

    def _watcher(self, rng: random.Random) -> None:
        resume = 0
        while self._running():
            stubs = Stubs(self._pick(rng))
            client = next(self._ids)
            if resume:
                start = resume
            else:
                with self._lock:
                    revision, compacted = self.revision, self.compacted
                start = rng.choice(
                    (0, 0, max(1, revision - rng.randint(0, 30)), 1 if compacted else 0)
                )
            single = rng.random() < 0.3
            request = WatchRequest(
                rng.choice(self.keys) if single else PREFIX,
                None if single else PREFIX_END,
                start_revision=start,
                prev_kv=rng.random() < 0.5 and (start == 0 or self.settings.prev_kv_from_past),
            )
            length = rng.uniform(*self.settings.watch_session)
            started = time.monotonic()
            resume = self._watch(stubs, client, request, length)
            stubs.close()
            if time.monotonic() - started < 1.0:
                self.stopping.wait(0.2)

    def _watch(self, stubs: Stubs, client: int, request: WatchRequest, length: float) -> int:
        """One session; the revision to resume from if the stream broke, else 0."""
        done = threading.Event()
        create = rpc_pb2.WatchRequest(
            create_request=rpc_pb2.WatchCreateRequest(
                key=_b(request.key),
                range_end=_b(request.range_end),
                start_revision=request.start_revision,
                prev_kv=request.prev_kv,
            )
        )

        def requests() -> Iterator[rpc_pb2.WatchRequest]:
            yield create
            done.wait(length + 60)

        call = stubs.watch.Watch(requests())
        with self._lock:
            self._streams.add(call)
        timer = threading.Timer(length, call.cancel)
        timer.daemon = True
        timer.start()
        responses: list[WatchResponse] = []
        last = 0
        broke = False
        try:
            for pb in call:
                resp = _watch_response(pb)
                responses.append(resp)
                for e in resp.events:
                    last = max(last, e.kv.mod_revision)
                if resp.canceled:
                    break
        except grpc.RpcError as e:
            broke = e.code() != grpc.StatusCode.CANCELLED  # type: ignore[attr-defined]
            if broke:
                self._count(f"watch: {e.code().name}")  # type: ignore[attr-defined]
        finally:
            timer.cancel()
            done.set()
            call.cancel()
            with self._lock:
                self._streams.discard(call)
        if responses:
            self.recorder.watch(WatchSession(client, request, tuple(responses)))
        if broke and not self.stopping.is_set():
            if last:
                return last + 1
            created = [r.revision for r in responses if r.created and not r.canceled]
            if created:
                return request.start_revision or created[0] + 1
        return 0


def _watch_response(pb: rpc_pb2.WatchResponse) -> WatchResponse:
    events = tuple(
        WatchEvent(
            "PUT" if e.type == kv_pb2.Event.PUT else "DELETE",
            kv_of(e.kv),
            kv_of(e.prev_kv) if e.HasField("prev_kv") else None,
        )
        for e in pb.events
    )
    return WatchResponse(
        pb.header.revision,
        events,
        created=pb.created,
        canceled=pb.canceled,
        compact_revision=pb.compact_revision,
        fragment=pb.fragment,
    )
