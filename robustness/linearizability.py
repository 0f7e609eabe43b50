"""Is a history linearizable under the model?  Wing & Gong's search, memoised.

The history becomes a list of search operations, each a window [call, return] and
a check `State -> next State | None`:

* a definite response: `model.step` must accept it;
* an unknown outcome (None response) of a write: *optional*, with return time +∞,
  so it may take effect at any point after its call, or never (it is simply left
  out of the linearization).  This is porcupine's and etcd's non-deterministic
  model, with the "not applied" branch expressed as "never placed"; unknown reads
  are dropped;
* a serializable read, answered by some member from its own applied state, says
  "the state at revision R had this content, and R existed before I returned":
  an observation with window [-∞, return] that must be placed where the state is
  exactly at R (and, for a read at an explicit revision r, at r, plus R ≥ r).
  R must also be at least the revision the same client had observed before the
  call (a client id is one session on one member: give a reconnected client a new
  id);
* a linearizable read at an explicit revision r is checked as usual for its
  header and error, and its content as an observation at r.

* a lost write whose value a response or watch event shows is *pinned*: it must
  take effect at exactly the revision it was seen at (see `lost_writes`).

The search keeps the calls and returns in one time-ordered linked list and tries,
depth first, every operation whose call comes before the first pending return;
a (linearized set, state) pair seen before is not explored again.  The global
revision ties every key together, so per-key partitioning (porcupine's P-
compositionality) would be unsound and is not done.  Instead:

* revisions never go back, so a state past the revision some pending operation
  needs is a dead end at once;
* lost writes are tried only after every required operation failed, and equal
  lost writes (same request once unseen values are blanked) in call order only;
* a lost write that leaves the revision alone (lease grant or revoke,
  compaction) may only be placed right before an operation impossible without
  it.  This misses only histories where one operation needs two such lost
  writes at once (a txn putting to two leases whose grants both timed out);
* with watch sessions, the witness must also match what every watcher saw (see
  `watch_evidence`); if no witness does, the operations are checked alone and the
  watch checker reports the watchers.
"""

from __future__ import annotations

import bisect
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from sortedcontainers import SortedList

from robustness import model
from robustness.history import (
    COMPACTED,
    FUTURE_REVISION,
    Compact,
    History,
    LeaseGrant,
    Operation,
    Put,
    Range,
    Request,
    Response,
)
from robustness.lost_writes import LostWrites
from robustness.model import State
from robustness.watch_evidence import Fact, revision_facts

Check = Callable[[State], State | None]
INF = float("inf")
#: With N evidence levels, the share of the time budget spent by the end of each.
LEVEL_BUDGET = {1: (1.0,), 3: (0.4, 0.7, 1.0)}


@dataclass
class Result:
    """The verdict, and the evidence for it.

    `linearization` is, when ok, a witness order of history indices (observations
    omitted; unknown-outcome writes appear only if they took effect); when illegal,
    the longest prefix the search could linearize.  `evidence` says what the
    witness was held to: "watches", "watch-pinned writes" or "operations".  `unplaced` lists the operations
    that had to come next but could not.
    """

    verdict: Literal["ok", "illegal", "unknown"]
    linearization: list[int] = field(default_factory=list)
    unplaced: list[int] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    state: State | None = None
    evidence: str = "operations"
    steps: int = 0
    elapsed: float = 0.0

    @property
    def ok(self) -> bool:
        """Whether the history was found linearizable."""
        return self.verdict == "ok"


@dataclass
class _Ops:
    """The search operations, as parallel lists."""

    check: list[Check] = field(default_factory=list)
    call: list[float] = field(default_factory=list)
    ret: list[float] = field(default_factory=list)
    optional: list[bool] = field(default_factory=list)
    observation: list[bool] = field(default_factory=list)
    source: list[int] = field(default_factory=list)
    bound: list[float] = field(default_factory=list)
    twin: list[int] = field(default_factory=list)
    facts: dict[int, list[Fact]] = field(default_factory=dict)

    def add(
        self,
        check: Check,
        call: float,
        ret: float,
        source: int,
        *,
        bound: float = INF,
        optional: bool = False,
        obs: bool = False,
        twin: int = -1,
    ) -> None:
        self.twin.append(twin)
        self.bound.append(bound)
        self.check.append(check)
        self.call.append(call)
        self.ret.append(ret)
        self.optional.append(optional)
        self.observation.append(obs)
        self.source.append(source)


def check(
    history: History | list[Operation],
    timeout: float | None = None,
    max_steps: int | None = None,
) -> Result:
    """Check the history's operations; "unknown" if the budget runs out first."""
    ops = history.operations if isinstance(history, History) else history
    started = time.monotonic()
    problems: list[str] = []
    compacted = max((o.request.revision for o in ops if isinstance(o.request, Compact)), default=0)
    watches = history.watches if isinstance(history, History) else []
    # Strongest evidence first: every watch fact; then only the lost writes watches
    # pinned; then the operations alone (a faulty watcher must not sink the check).
    # A level that runs out of its share of the budget also falls through to the next,
    # so a history the watch facts make too costly still gets a verdict.
    levels = ["watches", "watch-pinned writes", "operations"] if watches else ["operations"]
    for n, evidence in enumerate(levels, 1):
        problems.clear()
        search = _build(ops, LostWrites(history if evidence != "operations" else ops), problems)
        if evidence == "watches":
            search.facts, highest = revision_facts(watches, compacted)
            search.add(_reached(highest), -INF, INF, -1, obs=True)
        share = None if timeout is None else timeout * LEVEL_BUDGET[len(levels)][n - 1]
        result = _search(search, started, share, max_steps)
        result.evidence = evidence
        if result.verdict == "ok":
            break
    result.problems = problems
    if problems and result.verdict == "ok":
        result.verdict = "illegal"
    result.elapsed = time.monotonic() - started
    return result


def _build(ops: list[Operation], lost: LostWrites, problems: list[str]) -> _Ops:
    search = _Ops()
    floor = _session_floors(ops)
    last_twin: dict[Request, int] = {}
    for i in sorted(range(len(ops)), key=lambda i: ops[i].call):
        op = ops[i]
        req, resp = op.request, op.response
        if resp is None:
            if isinstance(req, Range) or (isinstance(req, LeaseGrant) and req.lease_id == 0):
                continue
            at = lost.pinned(req)
            if at is not None:
                search.add(_pinned(req, at), op.call, INF, i, bound=at - 1)
                continue
            canon = lost.canonical(req)
            search.add(
                _unknown(canon), op.call, INF, i, optional=True, twin=last_twin.get(canon, -1)
            )
            last_twin[canon] = len(search.check) - 1
        elif isinstance(req, Range) and req.serializable:
            _serializable(search, ops, i, floor[i], problems)
        else:
            search.add(_definite(req, resp), op.call, op.ret, i, bound=_bound(req, resp))
            if isinstance(req, Range) and req.revision > 0 and resp.error is None:
                at = req.revision
                search.add(_observe(req, resp, at), -INF, op.ret, i, bound=at, obs=True)
    return search


def _serializable(search: _Ops, ops: list[Operation], i: int, floor: int, problems: list[str]):
    op = ops[i]
    req, resp = op.request, op.response
    assert isinstance(req, Range) and resp is not None
    where = f"op {i} (client {op.client}, serializable get {req.key!r})"
    if resp.error == FUTURE_REVISION and req.revision > floor:
        return
    if resp.error == COMPACTED and any(
        isinstance(o.request, Compact) and o.request.revision > req.revision and o.call < op.ret
        for o in ops
    ):
        return
    if resp.error is not None:
        problems.append(f"{where}: error {resp.error!r} that no member could have returned")
    elif resp.revision < floor:
        problems.append(
            f"{where}: revision {resp.revision} is older than revision {floor} "
            f"the client had already observed"
        )
    elif resp.revision < req.revision:
        problems.append(f"{where}: header revision {resp.revision} < requested {req.revision}")
    else:
        at = req.revision or resp.revision
        search.add(_observe(req, resp, at), -INF, op.ret, i, bound=at, obs=True)
        if at != resp.revision:
            search.add(_reached(resp.revision), -INF, op.ret, i, obs=True)


def _session_floors(ops: list[Operation]) -> dict[int, int]:
    """For each serializable read, the highest revision its client observed before the call."""
    returned: dict[int, list[tuple[float, int]]] = defaultdict(list)
    for op in ops:
        if op.response is not None and op.response.error is None:
            returned[op.client].append((op.ret, op.response.revision))
    prefix_max: dict[int, tuple[list[float], list[int]]] = {}
    for client, seen in returned.items():
        seen.sort()
        highest, best = [], 0
        for _, rev in seen:
            best = max(best, rev)
            highest.append(best)
        prefix_max[client] = ([t for t, _ in seen], highest)
    floors = {}
    for i, op in enumerate(ops):
        if isinstance(op.request, Range) and op.request.serializable:
            times, highest = prefix_max.get(op.client, ([], []))
            n = bisect.bisect_left(times, op.call)
            floors[i] = highest[n - 1] if n else 0
    return floors


def _bound(req: Request, resp: Response) -> float:
    """The highest revision the state may have just before this op (∞ for an error)."""
    if resp.error is not None:
        return INF
    return resp.revision - 1 if isinstance(req, Put) else resp.revision


def _definite(req, resp: Response) -> Check:
    return lambda s: model.step(s, req, resp)


def _unknown(req) -> Check:
    return lambda s: model.apply_unknown(s, req)


def _pinned(req: Request, at: int) -> Check:
    def check(s: State) -> State | None:
        new = model.apply_unknown(s, req) if s.revision == at - 1 else None
        return new if new is not None and new.revision == at else None

    return check


def _observe(req: Range, resp: Response, at: int) -> Check:
    return lambda s: s if model.observe(s, req, resp, at) else None


def _reached(revision: int) -> Check:
    return lambda s: s if s.revision >= revision else None


def _search(ops: _Ops, started: float, timeout: float | None, max_steps: int | None) -> Result:
    n = len(ops.check)
    # Node 2i is op i's call, 2i+1 its return; node 2n is the list head.
    order = sorted(
        range(2 * n), key=lambda v: (ops.ret[v >> 1] if v & 1 else ops.call[v >> 1], v & 1)
    )
    head = 2 * n
    nxt = [-1] * (2 * n + 1)
    prv = [-1] * (2 * n + 1)
    last = head
    for v in order:
        nxt[last], prv[v] = v, last
        last = v

    def lift(c: int) -> None:
        for v in (c, c + 1):
            nxt[prv[v]] = nxt[v]
            if nxt[v] != -1:
                prv[nxt[v]] = prv[v]

    def unlift(c: int) -> None:
        for v in (c + 1, c):
            nxt[prv[v]] = v
            if nxt[v] != -1:
                prv[nxt[v]] = v

    deadline = None if timeout is None else started + timeout
    checks, optional, bound, twin, facts = ops.check, ops.optional, ops.bound, ops.twin, ops.facts
    # Revisions never go back: a state past the bound of any pending op is a dead end.
    bounds = SortedList(b for b in bound if b != INF)
    remaining = n - sum(optional)
    state = State()
    linearized = 0
    seen: set[tuple[int, State, State | None]] = set()
    stack: list[tuple[int, State, bool, State | None]] = []
    best: list[int] = []
    steps = 0
    # Each scan of the candidates runs twice: first the required operations, then
    # (only if none fits) the unknown-outcome ones, so a lost write is placed only
    # where something observed requires it.
    second = False
    # After a lost write that left the revision alone (a lease grant or revoke, a
    # compaction), `guard` is the state before it: it may be placed only right
    # before an operation that needs it, i.e. one impossible in `guard`.
    guard: State | None = None
    node = nxt[head]
    while remaining:
        steps += 1
        if steps & 0xFFF == 0 and (
            (deadline is not None and time.monotonic() > deadline)
            or (max_steps is not None and steps > max_steps)
        ):
            return Result("unknown", _sources(ops, best), steps=steps)
        if not node & 1:
            i = node >> 1
            # An unknown-outcome write equal to an earlier-called one waits for it.
            ready = optional[i] == second and (twin[i] < 0 or (linearized >> twin[i]) & 1)
            new = checks[i](state) if ready else None
            if new is not None and (guard is None or checks[i](guard) is None):
                if bound[i] != INF:
                    bounds.remove(bound[i])
                after = state if optional[i] and new.revision == state.revision else None
                key = (linearized | (1 << i), new, after)
                fact = facts.get(new.revision, ()) if new.revision != state.revision else ()
                if (
                    (not bounds or new.revision <= bounds[0])
                    and all(f(state, new) for f in fact)
                    and key not in seen
                ):
                    seen.add(key)
                    stack.append((node, state, second, guard))
                    state, linearized, guard = new, key[0], after
                    lift(node)
                    remaining -= not optional[i]
                    if len(stack) > len(best):
                        best = [v[0] >> 1 for v in stack]
                    node, second = nxt[head], False
                    continue
                if bound[i] != INF:
                    bounds.add(bound[i])
            node = nxt[node]
        elif not second:
            node, second = nxt[head], True
        else:
            if not stack:
                return _illegal(ops, best, steps)
            node, state, second, guard = stack.pop()
            i = node >> 1
            linearized &= ~(1 << i)
            unlift(node)
            if bound[i] != INF:
                bounds.add(bound[i])
            remaining += not optional[i]
            node = nxt[node]
    return Result("ok", _sources(ops, [v[0] >> 1 for v in stack]), state=state, steps=steps)


def _sources(ops: _Ops, order: list[int]) -> list[int]:
    return [ops.source[i] for i in order if not ops.observation[i]]


def _illegal(ops: _Ops, best: list[int], steps: int) -> Result:
    """The longest prefix, the state it reaches, and the operations that had to come next.

    Those are the pending operations called before the first pending return, and
    the ones (reads included) whose revision the state may not pass: they block the others.
    """
    state = State()
    for i in best:
        state = ops.check[i](state) or state
    placed = set(best)
    pending = [i for i in range(len(ops.check)) if i not in placed and not ops.optional[i]]
    deadline = min(ops.ret[i] for i in pending)
    lowest = min(ops.bound[i] for i in pending)
    blocked = {
        ops.source[i]
        for i in pending
        if ops.source[i] >= 0
        and (ops.bound[i] == lowest or (ops.call[i] <= deadline and not ops.observation[i]))
    }
    return Result("illegal", _sources(ops, best), sorted(blocked), state=state, steps=steps)
