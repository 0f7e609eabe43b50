"""Replay a linearization through the model: what each revision changed."""

from __future__ import annotations

from dataclasses import dataclass, field

from robustness import model
from robustness.history import Compact, Operation, WatchEvent, WatchRequest
from robustness.model import State


@dataclass
class Replay:
    """The events of every revision (with prev_kv), and the compactions requested."""

    events: dict[int, tuple[WatchEvent, ...]] = field(default_factory=dict)
    revision: int = 1
    compactions: list[int] = field(default_factory=list)

    @classmethod
    def from_linearization(cls, ops: list[Operation], order: list[int]) -> Replay:
        """Apply `ops` in `order` (a checker witness) and record each revision's events."""
        replay = cls(
            compactions=[o.request.revision for o in ops if isinstance(o.request, Compact)]
        )
        state = State()
        for i in order:
            op = ops[i]
            if op.response is None:
                nxt = model.apply_unknown(state, op.request) or state
            else:
                stepped = model.step(state, op.request, op.response)
                if stepped is None:
                    raise ValueError(f"op {i} does not follow in this order")
                nxt = stepped
            if nxt.revision != state.revision:
                replay.events[nxt.revision] = tuple(
                    e._replace(prev_kv=state.kvs.get(e.kv.key)) for e in model.changes(state, nxt)
                )
            state = nxt
        replay.revision = state.revision
        return replay

    def matching(self, request: WatchRequest, first: int, last: int) -> list[WatchEvent]:
        """The events a watch with `request` must deliver for revisions first..last."""
        out = []
        for rev in range(max(first, 2), min(last, self.revision) + 1):
            for e in self.events.get(rev, ()):
                if not model.in_range(e.kv.key, request.key, request.range_end):
                    continue
                if (request.no_put and e.type == "PUT") or (
                    request.no_delete and e.type == "DELETE"
                ):
                    continue
                out.append(e if request.prev_kv else e._replace(prev_kv=None))
        return out
