"""Watch guarantees, checked per session and against the replay of the linearization.

Per session, without the replay: *ordered* (revisions never go back), *unique*
(no (revision, key) twice), *atomic* (a revision is not split across responses
unless the previous one was a fragment), *bookmarkable* (no event at or below a
progress notify's revision arrives after it), *filter* (no PUT under NOPUT, no
DELETE under NODELETE) and *prev_kv* (absent unless asked for).

Against the replay: the events delivered must be exactly the replay's matching
events from the start revision (or the created header + 1) to the last event or
progress notify: a missing first event is *resumable*, a later gap *reliable*, a
gap covered by a progress notify *bookmarkable*, a wrong event *event* or
*prev_kv* (a prev_kv may be missing when its revision may have been compacted; a DELETE at
the start revision may be missing when a compaction reached that revision, as in etcd).  Events of one revision are compared in key order.  A session
canceled for compaction must have started at or below a requested compaction.
"""

from __future__ import annotations

from dataclasses import dataclass

from robustness.history import WatchEvent, WatchSession
from robustness.replay import Replay
from robustness.watch_evidence import window


@dataclass(frozen=True)
class Anomaly:
    """A broken guarantee: its kind and what was seen."""

    kind: str
    detail: str


def check_watches(sessions: list[WatchSession], replay: Replay | None) -> list[Anomaly]:
    """Every anomaly found in the sessions (replay None: only per-session checks)."""
    anomalies: list[Anomaly] = []
    for n, session in enumerate(sessions):
        found = _local(n, session)
        if not found and replay is not None:
            found = _against(n, session, replay)
        anomalies.extend(found)
    return anomalies


def _rev(e: WatchEvent) -> int:
    return e.kv.mod_revision


def _local(n: int, session: WatchSession) -> list[Anomaly]:
    req = session.request
    where = f"watch {n} (client {session.client}, key {req.key!r})"
    out: list[Anomaly] = []
    seen: set[tuple[int, str]] = set()
    last, notified, fragment = 0, 0, False
    for resp in session.responses:
        for j, e in enumerate(resp.events):
            rev = _rev(e)
            if rev < last:
                out.append(Anomaly("ordered", f"{where}: revision {rev} after {last}"))
            if (rev, e.kv.key) in seen:
                out.append(Anomaly("unique", f"{where}: {e.kv.key!r}@{rev} delivered twice"))
            elif j == 0 and rev == last and not fragment:
                out.append(Anomaly("atomic", f"{where}: revision {rev} split across responses"))
            if rev <= notified:
                out.append(
                    Anomaly(
                        "bookmarkable", f"{where}: {e.kv.key!r}@{rev} after progress {notified}"
                    )
                )
            if (req.no_put and e.type == "PUT") or (req.no_delete and e.type == "DELETE"):
                out.append(Anomaly("filter", f"{where}: filtered {e.type} {e.kv.key!r}@{rev}"))
            if e.prev_kv is not None and not req.prev_kv:
                out.append(
                    Anomaly("prev_kv", f"{where}: prev_kv not asked for, {e.kv.key!r}@{rev}")
                )
            seen.add((rev, e.kv.key))
            last = max(last, rev)
        if resp.events:
            fragment = resp.fragment
        if resp.is_progress_notify:
            notified = max(notified, resp.revision)
    return out


def _against(n: int, session: WatchSession, replay: Replay) -> list[Anomaly]:
    req = session.request
    where = f"watch {n} (client {session.client}, key {req.key!r})"
    start, end = window(session)
    for resp in session.responses:
        if resp.canceled and resp.compact_revision:
            if not any(c >= resp.compact_revision for c in replay.compactions) or (
                start > resp.compact_revision
            ):
                return [
                    Anomaly("canceled", f"{where}: canceled at compaction {resp.compact_revision}")
                ]
    if not start or not end:
        return []
    expected = replay.matching(req, start, end)
    compacted = max(replay.compactions, default=0)

    def same(x: WatchEvent, e: WatchEvent) -> bool:
        # etcd leaves prev_kv out when the previous version is compacted away.
        return x == e or (
            e.prev_kv is None
            and x.prev_kv is not None
            and x.prev_kv.mod_revision < compacted
            and x._replace(prev_kv=None) == e
        )

    # etcd's compaction at revision R removes a tombstone made at R, so a watch that
    # starts at R may or may not see that DELETE, depending on which came first.
    optional = {
        i
        for i, x in enumerate(expected)
        if x.type == "DELETE" and _rev(x) == start and any(c >= start for c in replay.compactions)
    }

    ptr = 0
    for resp in session.responses:
        for e in sorted(resp.events, key=lambda e: (_rev(e), e.kv.key)):
            while ptr in optional and not same(expected[ptr], e):
                ptr += 1
            if ptr < len(expected) and same(expected[ptr], e):
                ptr += 1
                continue
            if any(same(x, e) for x in expected[ptr:]):
                missing = expected[ptr]
                kind = "resumable" if ptr == 0 and req.start_revision else "reliable"
                return [Anomaly(kind, f"{where}: {_show(missing)} never delivered")]
            same = [x for x in expected if (_rev(x), x.kv.key) == (_rev(e), e.kv.key)]
            kind = (
                "prev_kv"
                if same and same[0]._replace(prev_kv=None) == e._replace(prev_kv=None)
                else "event"
            )
            return [
                Anomaly(
                    kind,
                    f"{where}: got {_show(e)}, history has {_show(same[0]) if same else 'none'}",
                )
            ]
        while resp.is_progress_notify and ptr in optional:
            ptr += 1
        if resp.is_progress_notify and ptr < len(expected) and _rev(expected[ptr]) <= resp.revision:
            return [
                Anomaly(
                    "bookmarkable",
                    f"{where}: progress at {resp.revision} before {_show(expected[ptr])}",
                )
            ]
    while ptr in optional:
        ptr += 1
    if ptr < len(expected):
        return [Anomaly("reliable", f"{where}: {_show(expected[ptr])} never delivered")]
    return []


def _show(e: WatchEvent) -> str:
    prev = f", prev {e.prev_kv.value!r}@{e.prev_kv.mod_revision}" if e.prev_kv else ""
    return f"{e.type} {e.kv.key!r}={e.kv.value!r}@{_rev(e)}{prev}"
