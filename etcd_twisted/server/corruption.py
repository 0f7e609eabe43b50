"""Corruption checks between members, as etcd 3.5's ``corrupt.go`` runs them.

Every member serves ``GET /members/hashkv`` on its peer port: a JSON ``HashKVRequest``
body in, a JSON ``HashKVResponse`` out (``header.revision``, ``hash``,
``compact_revision``; 400 with the mvcc error text for a compacted or future
revision). :class:`CorruptionChecker` asks every other member for its hash:

- :meth:`~CorruptionChecker.initial_check` (``--experimental-initial-corrupt-check``),
  before the member serves: a peer whose hash differs at the same compact revision
  means this member's data differs from the cluster's, and it refuses to start.
- :meth:`~CorruptionChecker.periodic_check` (every ``--experimental-corrupt-check-time``,
  on the leader only): hash at the current revision, fetch the peers' hashes at that
  revision, pass a linearizable read barrier, hash again. The leader raises the CORRUPT
  alarm through raft for itself if its own hash changed at the same revision, or for
  the first follower that is ahead of it (revision or compact revision) or whose hash
  differs at the leader's compact revision. Alarms name the member by its id in the
  membership, as etcd's later 3.5 releases do (3.5.1 read it from a header the peer
  never fills).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import Cooperator
from twisted.logger import Logger

from etcd_twisted._pb import rpc_pb2
from etcd_twisted._pb.raft_internal_pb2 import InternalRaftRequest
from etcd_twisted._pb.rpc_pb2 import AlarmRequest
from etcd_twisted.apply.state import MemberState
from etcd_twisted.backend import Backend
from etcd_twisted.membership.ids import format_id
from etcd_twisted.mvcc.errors import CompactedError, FutureRevisionError
from etcd_twisted.mvcc.kvstore import KEY_BUCKET, KVStore
from etcd_twisted.server.forwarder import HTTPPoster
from etcd_twisted.server.proposer import Proposer
from etcd_twisted.server.timers import PeriodicService

HASHKV_PATH = "/members/hashkv"

#: ``hash_kv(revision) -> (hash, current_revision, compact_revision)``, or a Deferred of
#: it; raises the mvcc errors for a compacted or future revision.
HashKV = Callable[[int], "Deferred[tuple[int, int, int]] | tuple[int, int, int]"]

#: Records hashed per reactor step when hashing from a pinned snapshot.
HASH_STEP_RECORDS = 1000


def hash_in_steps(
    kv: KVStore,
    backend: Backend,
    revision: int,
    cooperate: Callable[[Iterator[None]], Deferred[Any]],
) -> Deferred[tuple[int, int, int]]:
    """``kv.hash_kv(revision)`` computed a step at a time from a pinned snapshot of the
    backend, so other requests keep being served while a large store is hashed (etcd
    hashes off its request path too). Raises at once for a compacted or future revision."""
    hasher = kv.hasher(revision)
    snapshot = backend.snapshot()

    def steps() -> Iterator[None]:
        for name, pairs in snapshot.buckets():
            if name != KEY_BUCKET:
                continue
            for n, (key, value) in enumerate(pairs, start=1):
                if key >= hasher.end:
                    break
                hasher.add(key, value)
                if n % HASH_STEP_RECORDS == 0:
                    yield None

    def done(result: object) -> object:
        snapshot.close()
        return result

    d = cooperate(steps()).addBoth(done)
    return d.addCallback(lambda _: hasher.result())


class DataInconsistencyError(Exception):
    """The initial check found a peer whose data differs from this member's."""


def response_body(hash_: int, revision: int, compact_revision: int) -> bytes:
    """A ``HashKVResponse`` as Go's ``encoding/json`` writes it (zero fields omitted)."""
    body: dict[str, Any] = {"header": {"revision": revision} if revision else {}}
    if hash_:
        body["hash"] = hash_
    if compact_revision:
        body["compact_revision"] = compact_revision
    return json.dumps(body, separators=(",", ":")).encode()


def request_revision(body: bytes) -> int:
    """The revision of a JSON ``HashKVRequest`` (absent: 0); ``ValueError`` if malformed."""
    request = json.loads(body or b"{}")
    if not isinstance(request, dict):
        raise ValueError("not an object")
    return int(request.get("revision", 0))


@dataclass(frozen=True)
class PeerHash:
    """A peer's answer: its hash at the asked revision, its current and compact revisions."""

    member_id: int
    hash: int
    revision: int
    compact_revision: int


class PeerHashError(Exception):
    """A peer could not give its hash (unreachable, compacted, future revision, ...)."""


class CorruptionChecker:
    """Compares this member's key hash with its peers' (see the module docstring)."""

    log = Logger()

    def __init__(
        self,
        member_id: int,
        hash_kv: HashKV,
        peers: Callable[[], Iterable[tuple[int, list[str]]]],
        http: HTTPPoster,
        timeout: float,
        *,
        read_barrier: Callable[[], Deferred[Any]],
        raise_alarm: Callable[[int], Deferred[Any]],
        is_leader: Callable[[], bool],
    ) -> None:
        self._id = member_id
        self._hash_kv = hash_kv
        self._peers = peers
        self._http = http
        self._timeout = timeout
        self._read_barrier = read_barrier
        self._raise_alarm = raise_alarm
        self._is_leader = is_leader

    def local_hash(self, revision: int) -> Deferred[tuple[int, int, int]]:
        """This member's hash at ``revision`` (what ``/members/hashkv`` answers)."""
        return maybeDeferred(self._hash_kv, revision)

    # --- the peers' hashes

    async def peer_hashes(self, revision: int) -> list[PeerHash | PeerHashError]:
        """Each other member's hash at ``revision``, or why it could not be had."""
        answers: list[PeerHash | PeerHashError] = []
        for member_id, urls in self._peers():
            if member_id == self._id or not urls:
                continue
            answer: PeerHash | PeerHashError = PeerHashError("no peer URL answered")
            for url in urls:
                try:
                    answer = await self._fetch(member_id, url, revision)
                    break
                except Exception as e:  # noqa: BLE001 - any failure is the peer's answer
                    answer = e if isinstance(e, PeerHashError) else PeerHashError(str(e))
                    self.log.warn(
                        "failed hash kv request: {url} at revision {rev}: {error}",
                        url=url, rev=revision, error=answer,
                    )  # fmt: skip
            answers.append(answer)
        return answers

    async def _fetch(self, member_id: int, url: str, revision: int) -> PeerHash:
        body = json.dumps({"revision": revision}).encode()
        response = await self._http.request(
            "GET", url.rstrip("/") + HASHKV_PATH, data=body, timeout=self._timeout
        )
        content = (await response.content()).decode("utf-8", "replace")
        if response.code == 400:
            for error in (CompactedError, FutureRevisionError):
                if error.message in content:
                    raise PeerHashError(error.message)
        if response.code != 200:
            raise PeerHashError(f"unknown error: {content}")
        answer = json.loads(content)
        return PeerHash(
            member_id,
            int(answer.get("hash", 0)),
            int(answer.get("header", {}).get("revision", 0)),
            int(answer.get("compact_revision", 0)),
        )

    # --- the checks

    async def initial_check(self) -> None:
        """Before serving: raise :class:`DataInconsistencyError` if a peer's hash differs
        at the same compact revision."""
        me = format_id(self._id)
        self.log.info("starting initial corruption check (local member {id})", id=me)
        hash_, revision, compact = await maybeDeferred(self._hash_kv, 0)
        mismatches = 0
        for peer in await self.peer_hashes(revision):
            if isinstance(peer, PeerHashError):
                self.log.warn("cannot fetch hash from remote peer: {error}", error=peer)
            elif peer.hash != hash_ and peer.compact_revision == compact:
                mismatches += 1
                self.log.warn(
                    "found different hash values from remote peer {peer} "
                    "(local {local} at revision {rev}, remote {remote})",
                    peer=format_id(peer.member_id), local=hash_, rev=revision, remote=peer.hash,
                )  # fmt: skip
            elif peer.hash != hash_:
                self.log.warn(
                    "found different compact revision values from remote peer {peer}",
                    peer=format_id(peer.member_id),
                )
        if mismatches:
            raise DataInconsistencyError(f"{me} found data inconsistency with peers")
        self.log.info("initial corruption checking passed; no corruption (member {id})", id=me)

    async def periodic_check(self) -> int | None:
        """On the leader: compare hashes and raise CORRUPT for the first member found
        inconsistent; returns that member's id (``None``: consistent, or not leader)."""
        if not self._is_leader():
            return None
        hash_, revision, compact = await maybeDeferred(self._hash_kv, 0)
        peers = await self.peer_hashes(revision)
        await self._read_barrier()
        hash2, revision2, compact2 = await maybeDeferred(self._hash_kv, 0)
        corrupt: int | None = None
        if hash2 != hash_ and revision2 == revision and compact2 == compact:
            self.log.warn("found hash mismatch on the leader at revision {rev}", rev=revision)
            corrupt = self._id
        checked = [p for p in peers if isinstance(p, PeerHash)]
        for peer in checked:
            if corrupt is not None:
                break
            if peer.revision > revision2:
                reason = "revision from follower must be less than or equal to leader's"
            elif peer.compact_revision > compact2:
                reason = "compact revision from follower must be less than or equal to leader's"
            elif peer.compact_revision == compact and peer.hash != hash_:
                reason = "same compact revision then hashes must match"
            else:
                continue
            self.log.warn("{reason} (member {peer})", reason=reason, peer=format_id(peer.member_id))
            corrupt = peer.member_id
        self.log.info("finished peer corruption check ({n} peers checked)", n=len(checked))
        if corrupt is not None:
            await self._raise_alarm(corrupt)
        return corrupt

    def service(self, interval: float, clock: IReactorTime) -> PeriodicService:
        """The ``corruption-check`` timer: a periodic check every ``interval`` seconds
        (a failed check is logged; the next one runs on time)."""

        def check() -> Deferred[Any]:
            d = Deferred.fromCoroutine(self.periodic_check())
            return d.addErrback(
                lambda f: self.log.warn("failed to check hash KV: {error}", error=f.value)
            )

        self.log.info("enabled corruption checking every {interval}s", interval=interval)
        return PeriodicService("corruption-check", interval, check, clock)


class CheckedMember(Protocol):
    """What :func:`checker_for` reads of the member (an ``EtcdServer``)."""

    member_id: int
    clock: IReactorTime
    state: MemberState
    proposer: Proposer
    request_timeout: float

    @property
    def is_leader(self) -> bool: ...


def checker_for(server: CheckedMember, http: HTTPPoster) -> CorruptionChecker:
    """The checker of an ``EtcdServer``: its store's hash, its members' peer URLs, a
    ReadIndex round as the read barrier, and alarms proposed through raft."""

    def raise_alarm(member_id: int) -> Deferred[Any]:
        alarm = AlarmRequest(
            action=AlarmRequest.ACTIVATE, memberID=member_id, alarm=rpc_pb2.CORRUPT
        )
        return server.proposer.propose(InternalRaftRequest(alarm=alarm))

    pacer = Cooperator(scheduler=lambda step: server.clock.callLater(0, step))

    def local_hash(revision: int) -> Deferred[tuple[int, int, int]]:
        state = server.state
        return hash_in_steps(
            state.kv, state.backend, revision, lambda steps: pacer.cooperate(steps).whenDone()
        )

    return CorruptionChecker(
        server.member_id,
        local_hash,
        lambda: [(m.id, list(m.peer_urls)) for m in server.state.cluster.sorted_members()],
        http,
        server.request_timeout,
        read_barrier=lambda: server.proposer.linearizable(lambda: None),
        raise_alarm=raise_alarm,
        is_leader=lambda: server.is_leader,
    )
