"""What watch sessions say about the states the linearization passes through.

A session watching a range from its start revision to its last event or progress
notify saw every change to that range in between: for each of those revisions,
the changes the witness makes (as `model.changes`, filtered like the watch, with
prev_kv when asked) must be exactly the events delivered at that revision; and the highest revision seen
was reached.  The checker first holds its witness to these facts, so where lost
writes leave the operations ambiguous the replay it hands to the watch checker
agrees with what watchers saw.  If no witness satisfies them, it checks the
operations alone, and the watch checker names what the watchers got wrong.
"""

from __future__ import annotations

from collections.abc import Callable

from robustness import model
from robustness.history import WatchEvent, WatchRequest, WatchSession
from robustness.model import State

Fact = Callable[[State, State], bool]


def window(session: WatchSession) -> tuple[int, int]:
    """The revisions a session vouches for: start (or created header + 1) to last event or notify."""
    start = session.request.start_revision
    if not start:
        created = [r.revision for r in session.responses if r.created]
        start = created[0] + 1 if created else 0
    end = 0
    for resp in session.responses:
        for e in resp.events:
            end = max(end, e.kv.mod_revision)
        if resp.is_progress_notify:
            end = max(end, resp.revision)
    return start, end


def revision_facts(
    sessions: list[WatchSession], compacted: int
) -> tuple[dict[int, list[Fact]], int]:
    """Per revision, the tests a step into it must pass; and the highest revision seen.

    A prev_kv older than `compacted` (the highest compaction requested) is not
    compared: etcd leaves it out once compacted.
    """
    facts: dict[int, list[Fact]] = {}
    highest = 0
    for session in sessions:
        if any(r.canceled for r in session.responses):
            continue
        start, end = window(session)
        if not start:
            continue
        highest = max(highest, end)
        delivered: dict[int, set[WatchEvent]] = {}
        for resp in session.responses:
            for e in resp.events:
                delivered.setdefault(e.kv.mod_revision, set()).add(e)
        for rev in range(max(start, 2), end + 1):
            events = {_loose(e, compacted) for e in delivered.get(rev, set())}
            facts.setdefault(rev, []).append(_fact(session.request, events, compacted))
    return facts, highest


def _loose(e: WatchEvent, compacted: int) -> WatchEvent:
    if e.prev_kv is not None and e.prev_kv.mod_revision < compacted:
        return e._replace(prev_kv=None)
    return e


def _fact(request: WatchRequest, expected: set[WatchEvent], compacted: int) -> Fact:
    def holds(before: State, after: State) -> bool:
        got = {
            _loose(
                e._replace(prev_kv=before.kvs.get(e.kv.key) if request.prev_kv else None),
                compacted,
            )
            for e in model.changes(before, after)
            if model.in_range(e.kv.key, request.key, request.range_end)
            and not (request.no_put and e.type == "PUT")
            and not (request.no_delete and e.type == "DELETE")
        }
        return got == expected

    return holds
