"""A correct etcd, simulated: concurrent clients, lost responses, stale members, watchers.

The reference for the checker's own tests and timings: every history it makes is
linearizable by construction (each request takes effect atomically at one moment
between its call and its return, or, when its response is lost, at any later
moment or never), so the checker must accept it.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass, field

from robustness import model
from robustness.history import (
    Compact,
    Compare,
    Delete,
    History,
    LeaseGrant,
    LeaseRevoke,
    Operation,
    Put,
    Range,
    Request,
    Response,
    Txn,
    WatchEvent,
    WatchRequest,
    WatchResponse,
    WatchSession,
)
from robustness.model import State


@dataclass
class Settings:
    """What to simulate."""

    clients: int = 8
    operations: int = 200
    keys: int = 10
    sequential: int = 0
    lost: float = 0.0
    serializable: float = 0.0
    leases: bool = True
    compaction: bool = True
    watchers: int = 0


class Server:
    """One correct member with every past state kept, so it can serve stale and past reads."""

    def __init__(self) -> None:
        self.state = State()
        self.states = {1: self.state}
        self.events: dict[int, tuple[WatchEvent, ...]] = {}

    def handle(self, request: Request, floor: int, rng: random.Random) -> Response:
        """Apply `request` now; a serializable get reads a member at or after `floor`."""
        if isinstance(request, Range) and request.serializable:
            return model.read(self.states[rng.randint(max(floor, 1), self.state.revision)], request)
        response, nxt = model.respond(self.state, request)
        if isinstance(request, Range) and request.revision and response.error is None:
            past = model.read(self.states[request.revision], request)
            response = Response(self.state.revision, kvs=past.kvs, count=past.count)
        if nxt.revision != self.state.revision:
            self.events[nxt.revision] = tuple(
                e._replace(prev_kv=self.state.kvs.get(e.kv.key))
                for e in model.changes(self.state, nxt)
            )
        self.state = nxt
        self.states[nxt.revision] = nxt
        return response


@dataclass
class _Client:
    number: int
    floor: int = 0
    mods: dict[str, int] = field(default_factory=dict)
    request: Request | None = None
    call: float = 0.0
    response: Response | None = None


class _Traffic:
    def __init__(self, rng: random.Random, settings: Settings) -> None:
        self.rng = rng
        self.s = settings
        self.leases: list[int] = []
        self.issued = 0

    def next(self, client: _Client) -> Request:
        rng, s = self.rng, self.s
        self.issued += 1
        key = f"k{rng.randrange(s.keys)}"
        value = f"{client.number}.{self.issued}"
        past = rng.randint(1, max(client.floor, 1))
        r = rng.random()
        if r < 0.3:
            return Put(key, value)
        if r < 0.55:
            return Range(key, serializable=rng.random() < s.serializable)
        if r < 0.6:
            return Range("k", "l", limit=rng.choice([0, 0, 3]))
        if r < 0.67:
            return Delete(key)
        if r < 0.8:
            expected = client.mods.get(key, rng.randint(0, 3))
            return Txn((Compare(key, "mod", "=", expected),), (Put(key, value),), (Range(key),))
        if s.leases and r < 0.84:
            self.leases.append(self.issued)
            return LeaseGrant(self.issued)
        if s.leases and self.leases and r < 0.9:
            return Put(key, value, lease=rng.choice(self.leases))
        if s.leases and self.leases and r < 0.93:
            return LeaseRevoke(rng.choice(self.leases))
        if s.compaction and r < 0.95:
            return Compact(past)
        if r < 0.98:
            return Range(key, revision=past)
        return Delete("k", "l")


def simulate(rng: random.Random, settings: Settings) -> History:
    """Run the traffic against a correct server with random interleavings."""
    server = Server()
    traffic = _Traffic(rng, settings)
    clients = [_Client(n) for n in range(settings.clients)]
    history = History()
    limbo: list[Request] = []
    t = 0.0

    def finish(c: _Client, response: Response | None) -> None:
        assert c.request is not None
        history.operations.append(Operation(c.number, c.call, t, c.request, response))
        if response is not None and response.error is None:
            c.floor = max(c.floor, response.revision)
            for kv in response.kvs:
                c.mods[kv.key] = kv.mod_revision
        c.request = c.response = None

    def serve(c: _Client) -> None:
        assert c.request is not None
        if rng.random() < settings.lost:
            fate = rng.randrange(3)
            if fate == 0:
                server.handle(c.request, c.floor, rng)
            elif fate == 1:
                limbo.append(c.request)
            finish(c, None)
        else:
            c.response = server.handle(c.request, c.floor, rng)

    while traffic.issued < settings.sequential:
        c = rng.choice(clients)
        c.request, c.call = traffic.next(c), t
        t += 1
        serve(c)
        t += 1
        if c.request is not None:
            finish(c, c.response)
    while traffic.issued < settings.operations or any(c.request for c in clients):
        t += 1
        for request in list(limbo):
            if rng.random() < 0.1:
                limbo.remove(request)
                server.handle(request, 0, rng)
        c = rng.choice(clients)
        if c.request is None:
            if traffic.issued < settings.operations:
                c.request, c.call = traffic.next(c), t
        elif c.response is None:
            serve(c)
        else:
            finish(c, c.response)
    for request in limbo:
        if rng.random() < 0.5:
            server.handle(request, 0, rng)
    history.watches = [
        session
        for n in range(settings.watchers)
        for session in watch(rng, server, n, _watch_request(rng, server, settings))
    ]
    return history


def _watch_request(rng: random.Random, server: Server, s: Settings) -> WatchRequest:
    key, end = ("k", "l") if rng.random() < 0.5 else (f"k{rng.randrange(s.keys)}", None)
    return WatchRequest(
        key,
        end,
        start_revision=rng.randint(1, server.state.revision),
        prev_kv=rng.random() < 0.5,
        no_delete=rng.random() < 0.2,
    )


def watch(
    rng: random.Random, server: Server, client: int, request: WatchRequest
) -> list[WatchSession]:
    """Correct watch sessions for `request`: batched revisions, progress notifies, resumed breaks."""
    sessions = []
    start = request.start_revision
    while True:
        responses = [WatchResponse(max(start - 1, 1), created=True)]
        rev = start - 1
        for rev in range(start, server.state.revision + 1):
            events = tuple(
                e if request.prev_kv else e._replace(prev_kv=None)
                for e in server.events.get(rev, ())
                if model.in_range(e.kv.key, request.key, request.range_end)
                and not (request.no_delete and e.type == "DELETE")
            )
            if events:
                last = responses[-1]
                if last.events and rng.random() < 0.3:
                    responses[-1] = WatchResponse(rev, last.events + events)
                else:
                    responses.append(WatchResponse(rev, events))
            if rng.random() < 0.05:
                responses.append(WatchResponse(rev))
            if rng.random() < 0.03 and rev < server.state.revision:
                break
        sessions.append(WatchSession(client, request, tuple(responses)))
        if rev >= server.state.revision:
            return sessions
        start = rev + 1
        request = dataclasses.replace(request, start_revision=start)
