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


def revision_facts(sessions: list[WatchSession]) -> tuple[dict[int, list[Fact]], int]:
    """Per revision, the tests a step into it must pass; and the highest revision seen."""
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
            facts.setdefault(rev, []).append(_fact(session.request, delivered.get(rev, set())))
    return facts, highest


def _fact(request: WatchRequest, expected: set[WatchEvent]) -> Fact:
    def holds(before: State, after: State) -> bool:
        got = {
            e._replace(prev_kv=before.kvs.get(e.kv.key) if request.prev_kv else None)
            for e in model.changes(before, after)
            if model.in_range(e.kv.key, request.key, request.range_end)
            and not (request.no_put and e.type == "PUT")
            and not (request.no_delete and e.type == "DELETE")
        }
        return got == expected

    return holds
