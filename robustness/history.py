"""The operation history a traffic generator records, and its JSON-lines form.

One `Operation` per client request: who sent it, when it was called and when it
returned (monotonic seconds), the request, and the response, or `None` when the
outcome is unknown (timed out, connection lost, "leader changed": the request may
or may not have been applied).  A *definite* error (the server refused: compacted,
future revision, lease not found, lease exists) is a `Response` with `error` set.

Watchers record one `WatchSession` per watch stream: the request and every
response in arrival order.  A stream that breaks ends its session; the resumed
watch is a new session.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

COMPACTED = "compacted"
FUTURE_REVISION = "future_revision"
LEASE_NOT_FOUND = "lease_not_found"
LEASE_EXISTS = "lease_exists"


class KeyValue(NamedTuple):
    """etcd's mvccpb.KeyValue (keys and values as text)."""

    key: str
    value: str
    create_revision: int
    mod_revision: int
    version: int
    lease: int = 0


@dataclass(frozen=True, slots=True)
class Range:
    """A get: one key, `[key, range_end)`, or every key ≥ key when range_end is "\\0".

    `revision` > 0 reads history; `serializable` may be answered from a stale member.
    """

    kind: ClassVar[str] = "range"
    key: str
    range_end: str | None = None
    revision: int = 0
    serializable: bool = False
    limit: int = 0


@dataclass(frozen=True, slots=True)
class Put:
    """A put, attached to `lease` when it is not 0."""

    kind: ClassVar[str] = "put"
    key: str
    value: str
    lease: int = 0


@dataclass(frozen=True, slots=True)
class Delete:
    """A delete-range over one key or `[key, range_end)`."""

    kind: ClassVar[str] = "delete"
    key: str
    range_end: str | None = None


@dataclass(frozen=True, slots=True)
class Compare:
    """One txn compare: `target` of `key` `op` `operand`.

    target is "value", "version", "create", "mod" or "lease"; op is "=", "!=", "<" or ">".
    """

    key: str
    target: str
    op: str
    operand: str | int


@dataclass(frozen=True, slots=True)
class Txn:
    """A txn: if every compare holds run `success`, else `failure` (Range/Put/Delete ops)."""

    kind: ClassVar[str] = "txn"
    compares: tuple[Compare, ...] = ()
    success: tuple[Range | Put | Delete, ...] = ()
    failure: tuple[Range | Put | Delete, ...] = ()


@dataclass(frozen=True, slots=True)
class LeaseGrant:
    """A lease grant; `lease_id` 0 lets the server choose (then a lost grant is ignored)."""

    kind: ClassVar[str] = "lease_grant"
    lease_id: int
    ttl: int = 60


@dataclass(frozen=True, slots=True)
class LeaseRevoke:
    """A lease revoke: deletes every attached key at one revision."""

    kind: ClassVar[str] = "lease_revoke"
    lease_id: int


@dataclass(frozen=True, slots=True)
class Compact:
    """A compaction at `revision`."""

    kind: ClassVar[str] = "compact"
    revision: int


Request = Range | Put | Delete | Txn | LeaseGrant | LeaseRevoke | Compact
REQUESTS: dict[str, type] = {
    c.kind: c for c in (Range, Put, Delete, Txn, LeaseGrant, LeaseRevoke, Compact)
}


@dataclass(frozen=True, slots=True)
class Response:
    """A definite response; the fields a request kind does not use stay at their defaults.

    `revision` is the header revision (0 for an error and for txn sub-results);
    `results` holds one sub-response per executed txn op.
    """

    revision: int = 0
    error: str | None = None
    kvs: tuple[KeyValue, ...] = ()
    count: int = 0
    deleted: int = 0
    succeeded: bool = True
    results: tuple[Response, ...] = ()
    lease_id: int = 0


@dataclass(frozen=True, slots=True)
class Operation:
    """One client request; `response` None means the outcome is unknown."""

    client: int
    call: float
    ret: float
    request: Request
    response: Response | None


@dataclass(frozen=True, slots=True)
class WatchRequest:
    """A watch create request (start_revision 0: from the next revision)."""

    key: str
    range_end: str | None = None
    start_revision: int = 0
    prev_kv: bool = False
    no_put: bool = False
    no_delete: bool = False
    progress_notify: bool = False
    fragment: bool = False


class WatchEvent(NamedTuple):
    """A PUT or DELETE event; a DELETE's kv has only key and mod_revision set."""

    type: str
    kv: KeyValue
    prev_kv: KeyValue | None = None


@dataclass(frozen=True, slots=True)
class WatchResponse:
    """One watch response as received."""

    revision: int
    events: tuple[WatchEvent, ...] = ()
    created: bool = False
    canceled: bool = False
    compact_revision: int = 0
    fragment: bool = False

    @property
    def is_progress_notify(self) -> bool:
        """etcd's rule: no events, not created or canceled, and a header revision."""
        return (
            not self.events
            and not self.created
            and not self.canceled
            and self.compact_revision == 0
            and self.revision != 0
        )


@dataclass(frozen=True, slots=True)
class WatchSession:
    """One watch stream from creation until it was canceled, broke, or the run ended."""

    client: int
    request: WatchRequest
    responses: tuple[WatchResponse, ...] = ()


@dataclass
class History:
    """Everything recorded in one run."""

    operations: list[Operation] = field(default_factory=list)
    watches: list[WatchSession] = field(default_factory=list)

    def save(self, path: str | Path) -> None:
        """Write one JSON object per line: operations, then watch sessions."""
        with open(path, "w") as f:
            for op in self.operations:
                f.write(json.dumps({"op": _encode(op)}) + "\n")
            for w in self.watches:
                f.write(json.dumps({"watch": _encode(w)}) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> History:
        """Read a file written by `save`."""
        history = cls()
        with open(path) as f:
            for line in f:
                if not line.strip():
                    continue
                record = json.loads(line)
                if "op" in record:
                    history.operations.append(_decode_operation(record["op"]))
                else:
                    history.watches.append(_decode_watch(record["watch"]))
        return history


class Recorder:
    """Records operations as a traffic generator issues them.

    `token = rec.call(client, request)` before sending; then exactly one of
    `rec.ok(token, response)`, `rec.unknown(token)` or `rec.not_sent(token)`.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.history = History()

    def call(self, client: int, request: Request) -> tuple[int, Request, float]:
        """Note the call time of `request` and return a token for its outcome."""
        return (client, request, self.clock())

    def ok(self, token: tuple[int, Request, float], response: Response) -> None:
        """Record a definite response (including a definite error)."""
        self._add(token, response)

    def unknown(self, token: tuple[int, Request, float]) -> None:
        """Record a failure whose effect is unknown (timeout, unavailable, lost connection)."""
        self._add(token, None)

    def not_sent(self, token: tuple[int, Request, float]) -> None:
        """Forget a request that never left the client (no connection): it had no effect."""

    def watch(self, session: WatchSession) -> None:
        """Record a finished watch session."""
        self.history.watches.append(session)

    def _add(self, token: tuple[int, Request, float], response: Response | None) -> None:
        client, request, called = token
        self.history.operations.append(Operation(client, called, self.clock(), request, response))


def _encode(obj: Any) -> Any:
    if isinstance(obj, KeyValue | WatchEvent):
        return [_encode(v) for v in obj]
    if hasattr(obj, "__dataclass_fields__"):
        out = {f.name: _encode(getattr(obj, f.name)) for f in fields(obj)}
        if isinstance(obj, tuple(REQUESTS.values())):
            out["kind"] = obj.kind
        return out
    if isinstance(obj, tuple | list):
        return [_encode(v) for v in obj]
    return obj


def _decode_request(d: dict[str, Any]) -> Request:
    d = dict(d)
    cls = REQUESTS[d.pop("kind")]
    if cls is Txn:
        return Txn(
            tuple(Compare(**c) for c in d["compares"]),
            tuple(_decode_request(o) for o in d["success"]),
            tuple(_decode_request(o) for o in d["failure"]),
        )
    return cls(**d)


def _decode_response(d: dict[str, Any]) -> Response:
    return Response(
        **{
            **d,
            "kvs": tuple(KeyValue(*kv) for kv in d["kvs"]),
            "results": tuple(_decode_response(r) for r in d["results"]),
        }
    )


def _decode_operation(d: dict[str, Any]) -> Operation:
    response = None if d["response"] is None else _decode_response(d["response"])
    return Operation(d["client"], d["call"], d["ret"], _decode_request(d["request"]), response)


def _decode_event(e: list[Any]) -> WatchEvent:
    return WatchEvent(e[0], KeyValue(*e[1]), None if e[2] is None else KeyValue(*e[2]))


def _decode_watch(d: dict[str, Any]) -> WatchSession:
    responses = tuple(
        WatchResponse(**{**r, "events": tuple(_decode_event(e) for e in r["events"])})
        for r in d["responses"]
    )
    return WatchSession(d["client"], WatchRequest(**d["request"]), responses)
