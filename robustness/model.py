"""A whole-keyspace model of etcd's KV and lease API, with revisions.

The state is (revision, {key: KeyValue}, live leases, compacted revision); a key's
lease lives in its KeyValue.  `respond` is the deterministic server: the response a
correct etcd gives to a request in a state, and the state after it.  The checker
asks three questions of it:

* `step`: could a correct server in this state have answered this response?  The
  header revision must match exactly, and so must every key, value, create/mod
  revision, version and lease.  A read at an explicit revision (`Range.revision`
  > 0) is checked here only for its header and its error (compacted, future
  revision): its content is a fact about an *older* state, checked by `observe`.
* `apply_unknown`: the state if a request whose outcome is unknown took effect
  (None if taking effect changes nothing, so "it took effect" cannot be told
  from "it did not").
* `observe`: is this state, at exactly this revision, one whose content a read
  returned?  Used for serializable reads and reads at a past revision.

Rules that follow etcd 3.5: every write that changes something adds one revision
and a txn's writes share it; a put to a missing lease, or a txn whose chosen branch
puts to one, fails with "lease not found" and changes nothing; revoking a lease
deletes its keys at one revision; reads below the compacted revision fail, reads
above the current one are "future revision", and compacting at or below the
compacted revision fails.  Lease expiry is not modelled: give leases TTLs longer
than the run, or record an expiry as a revoke with an unknown outcome.  Txn ranges
read the latest state (their `revision` is ignored).
"""

from __future__ import annotations

from collections.abc import Mapping

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
    Request,
    Response,
    Txn,
    WatchEvent,
)


class State:
    """An immutable keyspace state; hashable so the checker can memoise on it."""

    __slots__ = ("revision", "kvs", "leases", "compacted", "_hash")

    def __init__(
        self,
        revision: int = 1,
        kvs: Mapping[str, KeyValue] | None = None,
        leases: frozenset[int] = frozenset(),
        compacted: int = 0,
    ) -> None:
        self.revision = revision
        self.kvs: Mapping[str, KeyValue] = kvs if kvs is not None else {}
        self.leases = leases
        self.compacted = compacted
        self._hash: int | None = None

    def _key(self) -> tuple[object, ...]:
        return (self.revision, self.compacted, self.leases, frozenset(self.kvs.items()))

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(self._key())
        return self._hash

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, State):
            return NotImplemented
        return self is other or (hash(self) == hash(other) and self._key() == other._key())

    def __repr__(self) -> str:
        kvs = ", ".join(f"{k}={v.value}@{v.mod_revision}" for k, v in sorted(self.kvs.items()))
        return f"State(rev={self.revision}, compacted={self.compacted}, leases={sorted(self.leases)}, {{{kvs}}})"


def in_range(key: str, start: str, end: str | None) -> bool:
    """etcd's range rule: one key, every key ≥ start for "\\0", else [start, end)."""
    if end is None:
        return key == start
    if end == "\0":
        return key >= start
    return start <= key < end


def read(state: State, request: Range) -> Response:
    """A range over the state's latest content (the request's revision is not consulted)."""
    keys = sorted(k for k in state.kvs if in_range(k, request.key, request.range_end))
    shown = keys[: request.limit] if request.limit else keys
    return Response(state.revision, kvs=tuple(state.kvs[k] for k in shown), count=len(keys))


def respond(state: State, request: Request) -> tuple[Response, State]:
    """The response of a correct server in `state`, and the next state."""
    match request:
        case Range():
            return _range(state, request), state
        case Put() | Delete():
            return _txn(state, Txn(success=(request,)), single=True)
        case Txn():
            return _txn(state, request, single=False)
        case LeaseGrant():
            if request.lease_id in state.leases:
                return Response(error=LEASE_EXISTS), state
            leases = state.leases | {request.lease_id}
            nxt = State(state.revision, state.kvs, leases, state.compacted)
            return Response(state.revision, lease_id=request.lease_id), nxt
        case LeaseRevoke():
            return _revoke(state, request.lease_id)
        case Compact():
            if request.revision <= state.compacted:
                return Response(error=COMPACTED), state
            if request.revision > state.revision:
                return Response(error=FUTURE_REVISION), state
            nxt = State(state.revision, state.kvs, state.leases, request.revision)
            return Response(state.revision), nxt
    raise TypeError(f"not a request: {request!r}")


def step(state: State, request: Request, response: Response) -> State | None:
    """The next state if a correct server in `state` could answer `response`, else None."""
    if isinstance(request, LeaseGrant) and request.lease_id == 0 and response.error is None:
        request = LeaseGrant(response.lease_id, request.ttl)
    if isinstance(request, Range) and request.revision > 0 and response.error is None:
        response = Response(response.revision)
    expected, nxt = respond(state, request)
    return nxt if expected == response else None


def apply_unknown(state: State, request: Request) -> State | None:
    """The next state if a request with an unknown outcome took effect; None if no change."""
    if isinstance(request, LeaseGrant) and request.lease_id == 0:
        return None
    nxt = respond(state, request)[1]
    return None if nxt == state else nxt


def observe(state: State, request: Range, response: Response, at: int) -> bool:
    """Whether `state` is at revision `at` and a range over it returns `response`'s content."""
    if state.revision != at:
        return False
    expected = read(state, request)
    return expected.kvs == response.kvs and expected.count == response.count


def changes(before: State, after: State) -> tuple[WatchEvent, ...]:
    """The watch events of the revision `after` made, in key order (without prev_kv)."""
    events = []
    for key in sorted(before.kvs.keys() | after.kvs.keys()):
        new = after.kvs.get(key)
        if new is None:
            events.append(WatchEvent("DELETE", KeyValue(key, "", 0, after.revision, 0)))
        elif new.mod_revision == after.revision:
            events.append(WatchEvent("PUT", new))
    return tuple(events)


def _range(state: State, request: Range) -> Response:
    if request.revision > 0:
        if request.revision > state.revision:
            return Response(error=FUTURE_REVISION)
        if request.revision < state.compacted:
            return Response(error=COMPACTED)
        return Response(state.revision)
    return read(state, request)


def _holds(kvs: Mapping[str, KeyValue], compare: Compare) -> bool:
    kv = kvs.get(compare.key)
    if compare.target == "value":
        if kv is None:
            return False
        actual: str | int = kv.value
    elif kv is None:
        actual = 0
    else:
        actual = {
            "version": kv.version,
            "create": kv.create_revision,
            "mod": kv.mod_revision,
            "lease": kv.lease,
        }[compare.target]
    operand = compare.operand
    match compare.op:
        case "=":
            return actual == operand
        case "!=":
            return actual != operand
        case "<":
            return actual < operand  # type: ignore[operator]
        case ">":
            return actual > operand  # type: ignore[operator]
    raise ValueError(f"unknown compare op {compare.op!r}")


def _txn(state: State, txn: Txn, single: bool) -> tuple[Response, State]:
    succeeded = all(_holds(state.kvs, c) for c in txn.compares)
    ops = txn.success if succeeded else txn.failure
    if any(isinstance(op, Put) and op.lease and op.lease not in state.leases for op in ops):
        return Response(error=LEASE_NOT_FOUND), state
    kvs = dict(state.kvs)
    rev = state.revision + 1
    changed = False
    results = []
    for op in ops:
        if isinstance(op, Range):
            seen = read(State(rev, kvs), op)
            results.append(Response(kvs=seen.kvs, count=seen.count))
        elif isinstance(op, Put):
            prev = kvs.get(op.key)
            create, version = (prev.create_revision, prev.version + 1) if prev else (rev, 1)
            kvs[op.key] = KeyValue(op.key, op.value, create, rev, version, op.lease)
            changed = True
            results.append(Response())
        else:
            gone = [k for k in kvs if in_range(k, op.key, op.range_end)]
            for k in gone:
                del kvs[k]
            changed = changed or bool(gone)
            results.append(Response(deleted=len(gone)))
    if not changed:
        rev = state.revision
    nxt = State(rev, kvs, state.leases, state.compacted) if changed else state
    if single:
        return Response(rev, deleted=results[0].deleted), nxt
    return Response(rev, succeeded=succeeded, results=tuple(results)), nxt


def _revoke(state: State, lease_id: int) -> tuple[Response, State]:
    if lease_id not in state.leases:
        return Response(error=LEASE_NOT_FOUND), state
    kvs = {k: v for k, v in state.kvs.items() if v.lease != lease_id}
    rev = state.revision + (len(kvs) != len(state.kvs))
    return Response(rev), State(rev, kvs, state.leases - {lease_id}, state.compacted)
