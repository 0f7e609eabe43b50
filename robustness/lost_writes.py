"""What the rest of a history reveals about writes whose outcome is unknown.

Every put value a traffic generator writes should be unique.  Then:

* a lost write whose put value some response or watch event shows *did* take
  effect, at exactly the revision that response shows as its mod_revision; the
  checker places it there and nowhere else;
* a lost put whose value nobody ever saw (and no compare mentions) can only have
  an effect through the revision, version and mod_revision it consumed, so its
  value is replaced by a placeholder no response can match.  Lost writes that
  become equal this way are interchangeable, and the checker places them in call
  order only, instead of trying each.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable, Iterator

from robustness.history import (
    History,
    KeyValue,
    Operation,
    Put,
    Request,
    Response,
    Txn,
)

UNSEEN = "\x00<value never observed>"


class LostWrites:
    """Facts gathered from the definite responses and watch events of a history."""

    def __init__(self, history: History | list[Operation]) -> None:
        ops = history.operations if isinstance(history, History) else history
        watches = history.watches if isinstance(history, History) else []
        self.seen: dict[tuple[str, str], int] = {}
        for kv in _observed(ops, watches):
            self.seen.setdefault((kv.key, kv.value), kv.mod_revision)
        self.writes = Counter((p.key, p.value) for op in ops for p in _puts(op.request))
        self.compared = {
            (c.key, c.operand)
            for op in ops
            if isinstance(op.request, Txn)
            for c in op.request.compares
            if c.target == "value"
        }

    def pinned(self, request: Request) -> int | None:
        """The revision a lost write must have taken effect at, if it was observed."""
        for put in _puts(request):
            key = (put.key, put.value)
            if key in self.seen and self.writes[key] == 1:
                return self.seen[key]
        return None

    def canonical(self, request: Request) -> Request:
        """The request with never-observed put values replaced by a placeholder."""
        if isinstance(request, Put):
            return self._put(request)
        if isinstance(request, Txn):
            return dataclasses.replace(
                request,
                success=tuple(self._put(o) if isinstance(o, Put) else o for o in request.success),
                failure=tuple(self._put(o) if isinstance(o, Put) else o for o in request.failure),
            )
        return request

    def _put(self, put: Put) -> Put:
        key = (put.key, put.value)
        if key in self.seen or key in self.compared:
            return put
        return dataclasses.replace(put, value=UNSEEN)


def _puts(request: Request) -> Iterator[Put]:
    if isinstance(request, Put):
        yield request
    elif isinstance(request, Txn):
        for op in request.success + request.failure:
            if isinstance(op, Put):
                yield op


def _responses(response: Response) -> Iterator[Response]:
    yield response
    for r in response.results:
        yield from _responses(r)


def _observed(ops: list[Operation], watches: Iterable) -> Iterator[KeyValue]:
    for op in ops:
        if op.response is not None:
            for r in _responses(op.response):
                yield from r.kvs
    for session in watches:
        for resp in session.responses:
            for event in resp.events:
                if event.type == "PUT":
                    yield event.kv
                if event.prev_kv is not None:
                    yield event.prev_kv
