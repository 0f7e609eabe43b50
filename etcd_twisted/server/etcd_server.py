"""``EtcdServer``: client requests in, responses out, through raft and the applier.

A write is checked, wrapped in an ``InternalRaftRequest`` with a fresh id, proposed
through the :class:`RaftService`, and answered when the applier has run it: the
Deferred registered under its id fires with the response (or the error). A
linearizable read waits for a batched ReadIndex round and then runs locally; a
serializable read runs locally at once. The applier records the raft index of each
entry it applies as the backend's consistent index, in the same batch as the
data, so replaying the WAL after a crash skips what is already applied.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from typing import Any

import treq.client
from twisted.internet import threads
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import Cooperator, LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.client import Agent, HTTPConnectionPool

from etcd_twisted import CLUSTER_VERSION, ETCD_VERSION, deep_proto, failpoints
from etcd_twisted._pb import raft_pb2, rpc_pb2, wal_pb2
from etcd_twisted._pb.raft_internal_pb2 import (
    ClusterMemberAttrSetRequest,
    ClusterVersionSetRequest,
    InternalRaftRequest,
    MemberAttributes,
)
from etcd_twisted.apply import checks
from etcd_twisted.apply.alarms import NOSPACE, AlarmStore
from etcd_twisted.apply.auth import AUTH_KINDS, AuthApplier
from etcd_twisted.apply.errors import NoSpaceError
from etcd_twisted.apply.kv import KVApplier, is_txn_readonly
from etcd_twisted.auth import NO_USER, AuthInfo, AuthStore, SimpleTokens
from etcd_twisted.auth.errors import AuthOldRevisionError
from etcd_twisted.backend import Backend, buckets, restore_snapshot
from etcd_twisted.config import Config
from etcd_twisted.lease import (
    CHECKPOINT_BATCH_LIMIT,
    DEFAULT_CHECKPOINT_INTERVAL,
    LEASE_CHECK_INTERVAL,
    MAX_LEASE_TTL,
    REVOKE_LIMIT,
    LeaseNotFoundError,
    LeaseTTLTooLargeError,
    Lessor,
)
from etcd_twisted.membership.cluster import Cluster, Member
from etcd_twisted.mvcc.encoded_range import EncodedRange, EncodedRangeResponse, pages_per_turn
from etcd_twisted.mvcc.kvstore import KVStore
from etcd_twisted.mvcc.watchable_store import WatchableStore
from etcd_twisted.raft import ProposalDroppedError, ReadState, SoftState
from etcd_twisted.server import compactor, reconfig
from etcd_twisted.server.auth_frontend import AuthFrontend
from etcd_twisted.server.bootstrap import Bootstrapped
from etcd_twisted.server.deadlines import Deadlines
from etcd_twisted.server.errors import (
    BadLeaderTransfereeError,
    CorruptError,
    LeaderTransferTimeoutError,
    NoLeaderError,
    NotLeaderError,
    RequestTooLargeError,
    StoppedError,
    TimeoutError,
    TooManyRequestsError,
)
from etcd_twisted.server.id_gen import IdGenerator
from etcd_twisted.server.raft_service import RaftService
from etcd_twisted.server.read_index import AppliedIndex, LinearizableReads
from etcd_twisted.server.reconfig import Reconfigurator
from etcd_twisted.server.snapshot import SnapshotTaker
from etcd_twisted.server.wal_writer import WALWriter
from etcd_twisted.wal import backend_path
from etcd_twisted.wal.files import fsync_dir

#: Refuse new proposals while more than this many committed entries wait to be applied.
MAX_GAP_BETWEEN_APPLY_AND_COMMIT = 5000
#: Quota cost estimates of a key's and a lease's metadata (etcd's ``kvOverhead``,
#: ``leaseOverhead``).
KV_OVERHEAD = 256
LEASE_OVERHEAD = 64
#: Errors the leader may answer a forwarded call with, by class name.
_FORWARDED_ERRORS: dict[str, type[Exception]] = {
    cls.__name__: cls
    for cls in (
        NotLeaderError,
        NoLeaderError,
        LeaseNotFoundError,
        reconfig.MemberNotFoundError,
        reconfig.NotLearnerError,
        reconfig.LearnerNotReadyError,
        reconfig.MemberRemovedError,
    )
}
#: Seconds a removed member keeps serving, so the answer to its removal gets out.
REMOVED_STOP_DELAY = 0.5
#: Meta-bucket key prefix recording a conf change that was rejected when applied.
_REJECTED_CONF_CHANGE = b"rejectedConfChange/"
#: Cluster-bucket key holding the decided cluster version.
CLUSTER_VERSION_KEY = b"clusterVersion"
#: How often lagging watchers catch up from history when nothing hurries them.
WATCH_SYNC_INTERVAL = 0.1
#: Physical compaction deletes this many records per reactor turn.
COMPACTION_STEP = 1000


class EtcdServer:
    """One member's request handling (see the module docstring)."""

    log = Logger()

    def __init__(self, config: Config, boot: Bootstrapped, clock: IReactorTime) -> None:
        self.config = config
        self.clock = clock
        #: Runs long ranges a few pages per reactor turn, all of them in one rotation.
        self._range_pacer = Cooperator(
            terminationPredicateFactory=pages_per_turn,
            scheduler=lambda step: clock.callLater(0, step),
        )
        self.member_id = boot.member_id
        self._cluster_id = boot.cluster_id
        self.ids = IdGenerator(boot.member_id, int(time.time() * 1000))
        #: Called with a Failure when the member cannot go on (the embedder stops it).
        self.on_fatal: Callable[[Failure], None] | None = None
        #: Called with the leader id whenever it changes (metrics).
        self.on_leader_change: Callable[[int], None] | None = None
        #: Called with each applied membership change (the peer transport follows it).
        self.on_peers_changed: Callable[[raft_pb2.ConfChange], None] | None = None
        #: Called when this member learns it was removed (the embedder stops it).
        self.on_removed: Callable[[], None] | None = None
        #: Called after a snapshot from the leader replaced the whole state.
        self.on_state_replaced: Callable[[], None] | None = None
        #: Whether a peer's stream is up (the peer transport answers; alone, only self).
        self.peer_active: Callable[[int], bool] = lambda node_id: node_id == self.member_id
        self.watchable: WatchableStore | None = None
        #: Auth tokens live in memory only; they outlive a snapshot's new state.
        self.auth_tokens = SimpleTokens(ttl=float(config.auth_token_ttl))
        token_type = config.auth_token.split(",", 1)[0]
        if token_type != "simple":
            self.log.warn(
                "--auth-token {type} is not supported; simple tokens are used", type=token_type
            )
        self._open_state(boot.backend)
        self.auth_frontend = AuthFrontend(self)
        self.watchable.on_work = self._watch_work
        self._watch_sync = LoopingCall(self._sync_watchers)
        self._watch_sync.clock = clock
        self._watch_sync_scheduled = False
        self._wal = boot.wal
        self.wal_writer = WALWriter(boot.wal, clock)
        self._snapshotter = boot.snapshotter
        self.raft = RaftService(
            boot.node,
            boot.storage,
            self.wal_writer,
            self,
            clock,
            config.heartbeat_interval / 1000.0,
            on_fatal=self._fatal,
            persist_snapshot=self._persist_snapshot,
        )
        self.node = boot.node
        self.snapshots = SnapshotTaker(
            boot.storage,
            lambda: self.backend,
            boot.wal,
            self.wal_writer,
            boot.snapshotter,
            lambda: self.node.raft.trk.conf_state(),
            config.snapshot_count,
            config.max_snapshots,
            config.max_wals,
            config.experimental_snapshot_catchup_entries,
        )
        #: A member that is its own quorum elects itself at once, without waiting out an
        #: election timeout (etcd fast-forwards the ticks; campaigning is quicker still).
        self._campaign_alone = True
        self._version_proposed = False
        self.applied = AppliedIndex(self.backend.consistent_index()[0])
        self.reads = LinearizableReads(self.raft.read_index, self.applied, clock, self.ids.next)
        self.request_timeout = 5.0 + 2 * config.election_timeout / 1000.0
        self._deadlines = Deadlines(clock, self.request_timeout, TimeoutError)
        self.leader_id = 0
        self.committed_index = 0
        self._waiters: dict[int, Deferred[Any]] = {}
        #: Proposals waiting for the end of this reactor turn, as (request id, data).
        self._batch: list[tuple[int, bytes]] = []
        self._leader_waiters: list[Deferred[None]] = []
        self._compactions: list[tuple[int, Deferred[None]]] = []
        self._compacting = False
        self._stopped = False
        #: HTTP client for calls forwarded to the leader (lease renewals).
        self._http = treq.client.HTTPClient(Agent(clock, pool=HTTPConnectionPool(clock)))
        #: Databases received from the leader, by the snapshot index they go with.
        self._received_dbs: dict[int, str] = {}
        self._lease_checker = LoopingCall(self._check_leases)
        self._lease_checker.clock = clock
        self.compactor = compactor.from_config(
            config,
            clock,
            lambda: self.kv.current_rev,
            lambda rev: self.compact(rpc_pb2.CompactionRequest(revision=rev)),
            lambda: self.is_leader,
        )

    def _open_state(self, backend: Backend) -> None:
        """Build everything that lives in the backend (at start, and after a snapshot)."""
        config = self.config
        self.backend = backend
        self.cluster = Cluster(self._cluster_id, backend.batch_tx)
        self.cluster.load()
        self.lessor = Lessor(
            backend.batch_tx,
            min_ttl=math.ceil(1.5 * config.election_timeout / 1000.0),
            checkpoint_interval=(
                DEFAULT_CHECKPOINT_INTERVAL if config.experimental_enable_lease_checkpoint else None
            ),
        )
        self.lessor.restore()  # before the KV store, which re-attaches keys to leases
        self.kv = KVStore(backend, leases=self.lessor)
        self.auth = AuthStore(backend.batch_tx, self.auth_tokens, cost=config.bcrypt_cost)
        self.auth_applier = AuthApplier(self.auth, self._lease_keys)
        self.applier = KVApplier(self.kv, lambda lease_id: self.lessor.lookup(lease_id) is not None)
        if self.watchable is None:
            self.watchable = WatchableStore(self.kv)
        else:
            self.watchable.restore(self.kv)
        self.alarms = AlarmStore(backend.batch_tx)
        self.applier.no_space = bool(self.alarms.get(NOSPACE))
        self.reconfig = Reconfigurator(
            self.cluster,
            self.member_id,
            config.strict_reconfig_check,
            self._propose_conf_change,
            self.ids.next,
            lambda node_id: self.peer_active(node_id),
            self._match_index,
        )

    # --- snapshots from the leader

    def snapshot_received(self, message: raft_pb2.Message, path: str) -> None:
        """The transport received a snapshot: keep its database, give raft the message."""
        self._received_dbs[message.snapshot.metadata.index] = path
        self.raft.step(message)

    def _persist_snapshot(self, snap: raft_pb2.Snapshot) -> Deferred[None]:
        """Save a snapshot from the leader (file, then WAL record) before its entries."""
        md = snap.metadata
        walsnap = wal_pb2.Snapshot(index=md.index, term=md.term, conf_state=md.conf_state)

        def save() -> None:
            self._snapshotter.save_snap(snap)
            self._wal.save_snapshot(walsnap)

        return self.wal_writer.call(save)

    def apply_snapshot(self, snap: raft_pb2.Snapshot) -> Deferred[None]:
        """Replace the state with the database received with ``snap``."""
        index = snap.metadata.index
        path = self._received_dbs.pop(index, None)
        if path is None:
            raise CorruptError(f"no database was received with the snapshot at index {index}")
        target = backend_path(self.config.data_dir)
        incoming = target + ".incoming"
        backend = self.backend

        def restore() -> None:
            with open(path, "rb") as f:
                chunks = iter(lambda: f.read(1 << 20), b"")
                restore_snapshot(incoming, chunks, map_size=backend.map_size)

        def swap(_: None) -> None:
            failpoints.hit("before_apply_snapshot")
            backend.close()
            os.replace(incoming, target)
            fsync_dir(os.path.dirname(target))
            for stale in (target + "-lock", incoming + "-lock"):
                if os.path.exists(stale):
                    os.unlink(stale)
            self._open_state(
                Backend(
                    target,
                    quota_bytes=self.config.quota_bytes,
                    batch_interval=self.config.backend_batch_interval,
                    batch_limit=self.config.backend_batch_limit,
                )
            )
            # Kept until now: a restart before the swap installs it (``bootstrap``).
            os.unlink(path)
            self.applied.advance(max(index, self.backend.consistent_index()[0]))
            failpoints.hit("after_apply_snapshot")
            self.log.info("applied a snapshot from the leader at index {index}", index=index)
            if self.on_state_replaced is not None:
                self.on_state_replaced()

        return threads.deferToThread(restore).addCallback(swap)

    # --- lifecycle (driven by the embedding service)

    def start(self) -> None:
        """Start the WAL writer and the raft loop."""
        self.wal_writer.startService()
        self.raft.startService()
        self._lease_checker.start(LEASE_CHECK_INTERVAL, now=False)
        self._watch_sync.start(WATCH_SYNC_INTERVAL, now=False)
        self._deadlines.start()
        if self.compactor is not None:
            self.compactor.start()
        self._publish_attributes()

    def hand_over_leadership(self) -> Deferred[None]:
        """Before stopping: a leader of others hands leadership to its most up-to-date
        connected voter (so the cluster need not wait out an election); fires when done."""
        transferee = self._leadership_transferee() if self.is_leader else None
        if transferee is None:
            return succeed(None)
        self.log.info("handing leadership to {id:x} before stopping", id=transferee)
        d = self._transfer_leadership(transferee, self.config.election_timeout / 1000.0)
        return d.addErrback(lambda _: None)

    def stop(self) -> Deferred[None]:
        """Stop raft, fail waiting requests, flush the backend and close the WAL."""
        return self._stop()

    def _stop(self) -> Deferred[None]:
        self._stopped = True
        self.reads.stop()
        if self._lease_checker.running:
            self._lease_checker.stop()
        if self._watch_sync.running:
            self._watch_sync.stop()
        self._deadlines.stop()
        if self.compactor is not None:
            self.compactor.stop()
        d = self.raft.stopService()

        def close(_: object) -> Deferred[None]:
            for waiter in list(self._waiters.values()):
                if not waiter.called:
                    waiter.errback(StoppedError())
            self._waiters.clear()
            self.backend.close()
            return self.wal_writer.stopService()

        return d.addCallback(close).addCallback(lambda _: self._wal.close())

    def removed(self) -> None:
        """This member was removed from the cluster: it stops, as etcd's does."""
        if self._stopped:
            return
        self.log.warn("the member has been permanently removed from the cluster; it stops")
        if self.on_removed is not None:
            self.on_removed()

    def _fatal(self, failure: Failure) -> None:
        if self.on_fatal is not None:
            self.on_fatal(failure)

    # --- identity and headers

    @property
    def cluster_id(self) -> int:
        return self._cluster_id

    @property
    def term(self) -> int:
        return self.node.raft.term

    @property
    def is_leader(self) -> bool:
        return self.leader_id == self.member_id

    @property
    def is_learner(self) -> bool:
        member = self.cluster.members.get(self.member_id)
        return member is not None and member.is_learner

    def header(self, revision: int = 0) -> rpc_pb2.ResponseHeader:
        """A response header; ``revision`` 0 means the store's current revision."""
        return rpc_pb2.ResponseHeader(
            cluster_id=self.cluster_id,
            member_id=self.member_id,
            revision=revision or self.kv.current_rev,
            raft_term=self.term,
        )

    # --- KV requests

    def range(
        self, r: rpc_pb2.RangeRequest, auth: AuthInfo | None = None
    ) -> Deferred[rpc_pb2.RangeResponse] | rpc_pb2.RangeResponse:
        """Range: serializable reads run now; linearizable ones after a ReadIndex round."""
        checks.check_range(r)

        def read() -> rpc_pb2.RangeResponse | Deferred[EncodedRangeResponse]:
            info = auth or NO_USER
            self.auth.is_range_permitted(info, r.key, r.range_end)
            paged = EncodedRange.start(self.kv, r)
            if paged is not None:  # a long range: read in pages across reactor turns
                done = self._range_pacer.cooperate(paged.pages()).whenDone()
                return done.addCallback(lambda _: self._check_auth_revision(info, paged.response()))
            return self._check_auth_revision(info, self.applier.range(self.kv, r))

        if r.serializable:
            return read()
        return self._linearizable(read)

    def put(
        self, p: rpc_pb2.PutRequest, auth: AuthInfo | None = None
    ) -> Deferred[rpc_pb2.PutResponse]:
        """Put, through raft."""
        checks.check_put(p)
        self._check_quota(KV_OVERHEAD + len(p.key) + len(p.value))
        return self._propose(InternalRaftRequest(put=p), auth)

    def delete_range(
        self, d: rpc_pb2.DeleteRangeRequest, auth: AuthInfo | None = None
    ) -> Deferred[rpc_pb2.DeleteRangeResponse]:
        """DeleteRange, through raft."""
        checks.check_delete(d)
        return self._propose(InternalRaftRequest(delete_range=d), auth)

    def txn(
        self, t: rpc_pb2.TxnRequest, auth: AuthInfo | None = None
    ) -> Deferred[rpc_pb2.TxnResponse] | rpc_pb2.TxnResponse:
        """Txn: read-only ones are served like reads, others go through raft."""
        checks.check_txn(t, self.config.max_txn_ops)
        if is_txn_readonly(t):

            def read() -> rpc_pb2.TxnResponse:
                info = auth or NO_USER
                self.auth_applier.check_txn(info, t)
                return self._check_auth_revision(info, self.applier.txn(t))

            if _txn_serializable(t):
                return read()
            return self._linearizable(read)
        self._check_quota(_txn_cost(t))
        request = InternalRaftRequest()
        request.txn.CopyFrom(t)  # InternalRaftRequest(txn=t) re-parses: upb refuses deep Txns
        return self._propose(request, auth)

    def _check_auth_revision(self, info: AuthInfo, response: Any) -> Any:
        """A read authorised at an auth revision that is no longer current is refused."""
        if info.revision and info.revision != self.auth.revision:
            raise AuthOldRevisionError()
        return response

    def compact(
        self, c: rpc_pb2.CompactionRequest, auth: AuthInfo | None = None
    ) -> Deferred[rpc_pb2.CompactionResponse]:
        """Compaction, through raft; ``physical`` waits until the space is reclaimed."""
        d = self._propose(InternalRaftRequest(compaction=c), auth)
        if c.physical:

            def wait_physical(resp: rpc_pb2.CompactionResponse) -> Deferred[Any]:
                return self._compaction_done().addCallback(lambda _: resp)

            d.addCallback(wait_physical)
        return d

    def _check_quota(self, cost: int) -> None:
        """Refuse a write that would take the backend past its quota, and raise NOSPACE."""
        if cost and self.backend.would_exceed(cost):
            if not self.alarms.get(NOSPACE):
                alarm = rpc_pb2.AlarmRequest(
                    action=rpc_pb2.AlarmRequest.ACTIVATE, memberID=self.member_id, alarm=NOSPACE
                )
                self._propose(InternalRaftRequest(alarm=alarm)).addErrback(lambda f: None)
            raise NoSpaceError()

    def _linearizable(self, read: Callable[[], Any]) -> Deferred[Any]:
        d = self.reads.wait()
        self._add_timeout(d)
        return d.addCallback(lambda _: read())

    def _publish_attributes(self) -> None:
        """Propose this member's name and client URLs, retrying until it is applied."""
        attrs = ClusterMemberAttrSetRequest(
            member_ID=self.member_id,
            member_attributes=MemberAttributes(
                name=self.config.name, client_urls=self.config.advertise_client_urls
            ),
        )

        def retry(failure: Failure) -> None:
            if not self._stopped:
                self.clock.callLater(0.5, self._publish_attributes)

        self._propose(InternalRaftRequest(cluster_member_attr_set=attrs)).addErrback(retry)

    # --- proposing

    def _propose(self, req: InternalRaftRequest, auth: AuthInfo | None = None) -> Deferred[Any]:
        if self._stopped:
            raise StoppedError()
        if self.committed_index - self.applied.applied > MAX_GAP_BETWEEN_APPLY_AND_COMMIT:
            raise TooManyRequestsError()
        req.header.ID = self.ids.next()
        if auth is not None:
            # Who asks, and at which auth revision: the applier checks permissions.
            req.header.username = auth.username
            req.header.auth_revision = auth.revision
        data = req.SerializeToString()
        if len(data) > self.config.max_request_bytes:
            raise RequestTooLargeError()
        d: Deferred[Any] = Deferred()
        self._waiters[req.header.ID] = d
        self._add_timeout(d)
        d.addBoth(self._forget, req.header.ID)
        if self.leader_id:
            self._propose_now(req.header.ID, data)
        else:
            self._wait_for_leader().addCallback(lambda _: self._propose_now(req.header.ID, data))
        return d

    def _propose_now(self, request_id: int, data: bytes) -> None:
        """Queue a proposal; everything queued in one reactor turn goes to raft as one batch."""
        self._batch.append((request_id, data))
        if len(self._batch) == 1:
            self.clock.callLater(0, self._flush_proposals)

    def _flush_proposals(self) -> None:
        batch, self._batch = self._batch, []
        live = [(rid, data) for rid, data in batch if rid in self._waiters]
        if not live:
            return
        try:
            self.raft.propose_batch([data for _, data in live])
        except ProposalDroppedError:
            for request_id, _ in live:
                waiter = self._waiters.pop(request_id, None)
                if waiter is not None and not waiter.called:
                    waiter.errback(NoLeaderError())

    def outgoing(self, messages: list[raft_pb2.Message]) -> list[raft_pb2.Message]:
        """Messages on their way to peers; a snapshot describes the current applied state.

        The database a follower receives with ``MsgSnap`` is the backend as it is now, so
        the message's metadata must say so (index, term and membership as applied), as
        etcd's ``createMergedSnapshotMessage`` does; a member added after raft's last
        snapshot would otherwise refuse a snapshot that does not list it.
        """
        for message in messages:
            if message.type == raft_pb2.MsgSnap:
                self.backend.force_commit()
                index, term = self.backend.consistent_index()
                md = message.snapshot.metadata
                md.index, md.term = index, term
                md.conf_state.CopyFrom(self.node.raft.trk.conf_state())
        return messages

    def _forget(self, result: Any, request_id: int) -> Any:
        self._waiters.pop(request_id, None)
        return result

    def _add_timeout(self, d: Deferred[Any]) -> None:
        self._deadlines.add(d)

    def _wait_for_leader(self) -> Deferred[None]:
        d: Deferred[None] = Deferred()
        self._leader_waiters.append(d)
        return d

    # --- called by the raft loop

    def on_soft_state(self, soft: SoftState) -> None:
        """Raft's leader or role changed."""
        lead = soft.lead
        if lead != self.leader_id:
            self.leader_id = lead
            self.log.info(
                "raft: leader is now {leader:x} at term {term}", leader=lead, term=self.term
            )
            if self.on_leader_change is not None:
                self.on_leader_change(lead)
            if lead != self.member_id:
                self.lessor.demote()
        if lead:
            waiters, self._leader_waiters = self._leader_waiters, []
            for d in waiters:
                d.callback(None)

    def on_read_states(self, states: list[ReadState]) -> None:
        """Raft answered ReadIndex requests."""
        self.reads.on_read_states(states)

    def apply_entries(self, entries: list[raft_pb2.Entry]) -> None:
        """Apply committed entries in order, skipping those the backend already has."""
        backend = self.backend
        consistent = backend.consistent_index()[0]
        self.committed_index = max(self.committed_index, entries[-1].index)
        for entry in entries:
            if entry.type == raft_pb2.EntryConfChange:
                self._apply_conf_change(entry, entry.index > consistent)
            elif not entry.data:
                # The leader's empty entry of its term: once it is applied, everything
                # from earlier terms is too, and the new leader takes over lease expiry.
                if self.is_leader and entry.term == self.term:
                    self.lessor.promote(self.config.election_timeout / 1000.0, self.clock.seconds())
            elif entry.index > consistent:
                self._apply_request(deep_proto.parse(InternalRaftRequest, entry.data), entry.index)
            if entry.index > consistent:
                backend.set_consistent_index(entry.index, entry.term)
        self.applied.advance(entries[-1].index)
        self.watchable.flush()  # one batch of watch responses per Ready

    def _apply_request(self, req: InternalRaftRequest, index: int = 0) -> None:
        kind = req.WhichOneof("request")
        try:
            self.auth_applier.check(req)
            if kind in AUTH_KINDS:
                result: Any = self.auth_applier.apply(req, index, self.clock.seconds())
            elif kind == "put":
                result = self.applier.apply_put(req.put)
            elif kind == "delete_range":
                result = self.applier.apply_delete_range(req.delete_range)
            elif kind == "txn":
                result = self.applier.txn(req.txn)
            elif kind == "lease_grant":
                if self.applier.no_space:
                    raise NoSpaceError()
                result = self._apply_lease_grant(req.lease_grant)
            elif kind == "alarm":
                result = self._apply_alarm(req.alarm)
            elif kind == "lease_revoke":
                result = self._apply_lease_revoke(req.lease_revoke)
            elif kind == "lease_checkpoint":
                for cp in req.lease_checkpoint.checkpoints:
                    self.lessor.apply_checkpoint(cp.ID, cp.remaining_TTL)
                result = rpc_pb2.LeaseCheckpointResponse()
            elif kind == "cluster_version_set":
                self.backend.batch_tx.put(
                    buckets.CLUSTER, CLUSTER_VERSION_KEY, req.cluster_version_set.ver.encode()
                )
                result = None
            elif kind == "cluster_member_attr_set":
                attrs = req.cluster_member_attr_set
                self.cluster.set_attributes(
                    attrs.member_ID,
                    attrs.member_attributes.name,
                    list(attrs.member_attributes.client_urls),
                )
                result = None
            elif kind == "compaction":
                result = self.applier.compaction(req.compaction)
                self._schedule_compaction()
            else:
                result = None
        except Exception:  # noqa: BLE001 - the request's error goes to its client
            result = Failure()
        waiter = self._waiters.pop(req.header.ID, None)
        if waiter is not None and not waiter.called:
            if isinstance(result, Failure):
                waiter.errback(result)
            else:
                waiter.callback(result)

    def _apply_conf_change(self, entry: raft_pb2.Entry, to_backend: bool) -> None:
        """Validate and apply a membership change; replays skip what was rejected before."""
        cc = raft_pb2.ConfChange.FromString(entry.data)
        rejected_key = _REJECTED_CONF_CHANGE + entry.index.to_bytes(8, "big")
        if not to_backend:
            # The backend already reflects this change; raft must see it again, unless it
            # was rejected (then raft saw it as a no-op).
            if self.backend.batch_tx.get(buckets.META, rejected_key) is None:
                self.node.apply_conf_change(cc)
            return
        waiter = self._waiters.pop(cc.id, None) if cc.id else None
        try:
            self.reconfig.validate(cc)
        except Exception:  # noqa: BLE001 - the caller gets the reason; raft sees a no-op
            self.backend.batch_tx.put(buckets.META, rejected_key, b"")
            if waiter is not None and not waiter.called:
                waiter.errback(Failure())
            return
        self.node.apply_conf_change(cc)
        self.reconfig.apply(cc)
        if self.on_peers_changed is not None:
            self.on_peers_changed(cc)
        if waiter is not None and not waiter.called:
            waiter.callback(self.cluster.sorted_members())
        if cc.type == raft_pb2.ConfChangeRemoveNode and cc.node_id == self.member_id:
            # Answer the MemberRemove that removed us (it may have come through us) first.
            self.clock.callLater(REMOVED_STOP_DELAY, self.removed)

    def _propose_conf_change(self, cc: raft_pb2.ConfChange) -> Deferred[list[Member]]:
        if self._stopped:
            raise StoppedError()
        d: Deferred[list[Member]] = Deferred()
        self._waiters[cc.id] = d
        self._add_timeout(d)
        d.addBoth(self._forget, cc.id)
        try:
            self.raft.propose_conf_change(cc)
        except ProposalDroppedError:
            self._waiters.pop(cc.id, None)
            raise NoLeaderError() from None
        return d

    def _match_index(self, node_id: int) -> int | None:
        """A member's replicated log index as the leader tracks it (None if unknown)."""
        progress = self.node.status().progress.get(node_id)
        return None if progress is None else progress.match

    def after_ready(self) -> None:
        """Once per Ready: commit the backend batch if due, snapshot if due; campaign if alone."""
        self.backend.maybe_commit(self.clock.seconds())
        self.snapshots.maybe_snapshot(self.applied.applied)
        if self.is_leader and not self._version_proposed and not self.cluster_version():
            self._version_proposed = True
            req = InternalRaftRequest(
                cluster_version_set=ClusterVersionSetRequest(ver=CLUSTER_VERSION)
            )

            def retry(failure: Failure) -> None:
                self._version_proposed = False

            self._propose(req).addErrback(retry)
        if self._campaign_alone:
            voters = list(self.node.raft.trk.conf_state().voters)
            if voters:
                self._campaign_alone = False
                if voters == [self.member_id] and not self.leader_id:
                    self.raft.campaign()

    # --- watches

    def _watch_work(self) -> None:
        """The watchable store has catching up to do: sync on the next reactor turn."""
        if not self._watch_sync_scheduled:
            self._watch_sync_scheduled = True
            self.clock.callLater(0, self._sync_watchers)

    def _sync_watchers(self) -> None:
        self._watch_sync_scheduled = False
        if self._stopped:
            return
        progressed = self.watchable.sync_watchers()
        self.watchable.answer_progress_requests()
        self.watchable.flush()
        if progressed:
            self._watch_work()

    # --- leases

    def lease_grant(
        self, r: rpc_pb2.LeaseGrantRequest, auth: AuthInfo | None = None
    ) -> Deferred[rpc_pb2.LeaseGrantResponse]:
        """Grant a lease through raft; ID 0 lets the server pick one."""
        if r.TTL > MAX_LEASE_TTL:
            raise LeaseTTLTooLargeError()
        self._check_quota(LEASE_OVERHEAD)
        while r.ID == 0:
            r.ID = self.ids.next() & ((1 << 63) - 1)
        return self._propose(InternalRaftRequest(lease_grant=r), auth)

    def lease_revoke(
        self, r: rpc_pb2.LeaseRevokeRequest, auth: AuthInfo | None = None
    ) -> Deferred[rpc_pb2.LeaseRevokeResponse]:
        """Revoke a lease (and delete its keys) through raft; needs write on the keys."""
        return self._propose(InternalRaftRequest(lease_revoke=r), auth)

    def _lease_keys(self, lease_id: int) -> set[bytes]:
        lease = self.lessor.lookup(lease_id)
        return set() if lease is None else lease.keys

    def lease_renew(self, lease_id: int) -> int | Deferred[int]:
        """Renew a lease (only the leader can: a follower forwards); unknown renews to TTL 0."""
        if not self.is_leader:
            request = rpc_pb2.LeaseKeepAliveRequest(ID=lease_id)
            d = self._forward_to_leader("/leases", request.SerializeToString())
            return d.addCallback(lambda body: rpc_pb2.LeaseKeepAliveResponse.FromString(body).TTL)
        try:
            return self.lessor.renew(lease_id, self.clock.seconds())
        except LeaseNotFoundError:
            return 0

    def lease_time_to_live(
        self, r: rpc_pb2.LeaseTimeToLiveRequest
    ) -> rpc_pb2.LeaseTimeToLiveResponse | Deferred[rpc_pb2.LeaseTimeToLiveResponse]:
        """A lease's granted and remaining TTL (and keys); TTL -1 for an unknown lease.

        Only the leader knows how long a lease has left, so a follower asks it.
        """
        if not self.is_leader:
            d = self._forward_to_leader("/leases/internal", r.SerializeToString())
            return d.addCallback(rpc_pb2.LeaseTimeToLiveResponse.FromString)
        return self._local_time_to_live(r)

    def handle_forwarded(self, kind: str, body: bytes) -> bytes | Deferred[bytes]:
        """Answer a call a follower forwarded here (the peer API's ``/leases``, ``/members/promote``)."""
        if not self.is_leader:
            raise NotLeaderError()
        if kind == "promote":
            request = rpc_pb2.MemberPromoteRequest.FromString(body)
            d = self.reconfig.promote(request)
            return d.addCallback(lambda resp: resp.SerializeToString())
        if kind == "renew":
            request = rpc_pb2.LeaseKeepAliveRequest.FromString(body)
            ttl = self.lease_renew(request.ID)
            return rpc_pb2.LeaseKeepAliveResponse(ID=request.ID, TTL=ttl).SerializeToString()
        request = rpc_pb2.LeaseTimeToLiveRequest.FromString(body)
        return self._local_time_to_live(request).SerializeToString()

    def member_promote(
        self, r: rpc_pb2.MemberPromoteRequest
    ) -> Deferred[rpc_pb2.MemberPromoteResponse]:
        """Promote a learner: only the leader knows whether it has caught up, so a
        follower forwards the request (etcd's ``/members/promote``)."""
        if self.is_leader:
            return self.reconfig.promote(r)
        d = self._forward_to_leader("/members/promote", r.SerializeToString())
        return d.addCallback(rpc_pb2.MemberPromoteResponse.FromString)

    def _forward_to_leader(self, path: str, body: bytes) -> Deferred[bytes]:
        leader = self.cluster.members.get(self.leader_id) if self.leader_id else None
        if leader is None or not leader.peer_urls:
            raise NoLeaderError()
        url = leader.peer_urls[0].rstrip("/") + path
        d = self._http.post(url, data=body, timeout=self.request_timeout)

        def check(response: Any) -> Deferred[bytes]:
            if response.code != 200:
                name = (response.headers.getRawHeaders(b"x-etcd-twisted-error") or [b""])[0]
                raise _FORWARDED_ERRORS.get(name.decode(), NoLeaderError)()
            return response.content()

        return d.addCallback(check)

    def _local_time_to_live(
        self, r: rpc_pb2.LeaseTimeToLiveRequest
    ) -> rpc_pb2.LeaseTimeToLiveResponse:
        try:
            ttl = self.lessor.time_to_live(r.ID, self.clock.seconds())
        except LeaseNotFoundError:
            return rpc_pb2.LeaseTimeToLiveResponse(header=self.header(), ID=r.ID, TTL=-1)
        resp = rpc_pb2.LeaseTimeToLiveResponse(
            header=self.header(), ID=r.ID, TTL=ttl.ttl, grantedTTL=ttl.granted_ttl
        )
        if r.keys:
            resp.keys.extend(ttl.keys)
        return resp

    def lease_leases(self, r: rpc_pb2.LeaseLeasesRequest) -> rpc_pb2.LeaseLeasesResponse:
        """Every lease."""
        resp = rpc_pb2.LeaseLeasesResponse(header=self.header())
        for lease in self.lessor.leases():
            resp.leases.add(ID=lease.id)
        return resp

    def _apply_lease_grant(self, r: rpc_pb2.LeaseGrantRequest) -> rpc_pb2.LeaseGrantResponse:
        lease = self.lessor.grant(r.ID, r.TTL, self.clock.seconds())
        return rpc_pb2.LeaseGrantResponse(header=self.header(), ID=lease.id, TTL=lease.ttl)

    def _apply_lease_revoke(self, r: rpc_pb2.LeaseRevokeRequest) -> rpc_pb2.LeaseRevokeResponse:
        keys = self.lessor.revoke(r.ID)
        if keys:
            txn = self.kv.write()
            try:
                for key in keys:
                    txn.delete_range(key)
            finally:
                txn.end()
        return rpc_pb2.LeaseRevokeResponse(header=self.header())

    def _check_leases(self) -> None:
        """On the leader: propose revokes for expired leases (at most 500 a check)."""
        if not self.is_leader:
            return
        root = self.auth_frontend.root()
        for lease in self.lessor.expired_leases(self.clock.seconds(), REVOKE_LIMIT):
            self._propose(
                InternalRaftRequest(lease_revoke=rpc_pb2.LeaseRevokeRequest(ID=lease.id)), root
            ).addErrback(lambda f: None)
        batch = self.lessor.checkpoint_due(self.clock.seconds(), CHECKPOINT_BATCH_LIMIT)
        if batch:
            req = rpc_pb2.LeaseCheckpointRequest()
            for lease_id, remaining in batch:
                req.checkpoints.add(ID=lease_id, remaining_TTL=remaining)
            self._propose(InternalRaftRequest(lease_checkpoint=req)).addErrback(lambda f: None)

    # --- compaction in steps

    def _schedule_compaction(self) -> None:
        if not self._compacting:
            self._compacting = True
            self.clock.callLater(0, self._compaction_step)

    def _compaction_step(self) -> None:
        if self._stopped:
            return
        failpoints.hit("during_compaction")
        if self.kv.compaction_step(COMPACTION_STEP):
            self._compacting = False
            self.backend.force_commit()
            done, self._compactions = self._compactions, []
            for _, d in done:
                d.callback(None)
        else:
            self.clock.callLater(0, self._compaction_step)

    def _compaction_done(self) -> Deferred[None]:
        d: Deferred[None] = Deferred()
        if not self.kv.compacting:
            d.callback(None)
        else:
            self._compactions.append((self.kv.compact_main_rev, d))
        return d

    # --- maintenance and cluster

    def status(self) -> rpc_pb2.StatusResponse:
        """What ``etcdctl endpoint status`` shows."""
        return rpc_pb2.StatusResponse(
            header=self.header(),
            version=ETCD_VERSION,
            dbSize=self.backend.size(),
            leader=self.leader_id,
            raftIndex=self.node.raft.raft_log.committed,
            raftTerm=self.term,
            raftAppliedIndex=self.applied.applied,
            dbSizeInUse=self.backend.size_in_use(),
            isLearner=bool(self.cluster.members.get(self.member_id, Member(0)).is_learner),
            errors=[
                f"memberID:{a.memberID} alarm:{rpc_pb2.AlarmType.Name(a.alarm)} "
                for a in self.alarms.get()
            ],
        )

    def alarm(self, r: rpc_pb2.AlarmRequest) -> Deferred[rpc_pb2.AlarmResponse]:
        """List, raise or clear alarms, through raft as etcd does."""
        return self._propose(InternalRaftRequest(alarm=r))

    def _apply_alarm(self, r: rpc_pb2.AlarmRequest) -> rpc_pb2.AlarmResponse:
        resp = rpc_pb2.AlarmResponse()
        if r.action == rpc_pb2.AlarmRequest.GET:
            resp.alarms.extend(self.alarms.get(r.alarm))
        elif r.action == rpc_pb2.AlarmRequest.ACTIVATE and r.alarm != rpc_pb2.NONE:
            member = self.alarms.activate(r.memberID, r.alarm)
            if member is not None:
                resp.alarms.append(member)
        elif r.action == rpc_pb2.AlarmRequest.DEACTIVATE:
            member = self.alarms.deactivate(r.memberID, r.alarm)
            if member is not None:
                resp.alarms.append(member)
        self.applier.no_space = bool(self.alarms.get(NOSPACE))
        return resp

    def move_leader(self, r: rpc_pb2.MoveLeaderRequest) -> Deferred[rpc_pb2.MoveLeaderResponse]:
        """Hand leadership to another voting member (on the leader only)."""
        if not self.is_leader:
            raise NotLeaderError()
        target = self.cluster.members.get(r.targetID)
        if target is None or target.is_learner or r.targetID == self.member_id:
            raise BadLeaderTransfereeError()
        return self._transfer_leadership(r.targetID, self.request_timeout).addCallback(
            lambda _: rpc_pb2.MoveLeaderResponse(header=self.header())
        )

    def _transfer_leadership(self, target: int, timeout: float) -> Deferred[None]:
        """Ask raft to move leadership to ``target``; fires once it has, fails on timeout."""
        self.raft.transfer_leader(target)
        deadline = self.clock.seconds() + timeout
        done: Deferred[None] = Deferred()

        def check() -> None:
            if self.leader_id == target:
                done.callback(None)
            elif self.clock.seconds() >= deadline:
                done.errback(LeaderTransferTimeoutError())
            else:
                self.clock.callLater(self.config.heartbeat_interval / 1000.0, check)

        check()
        return done

    def _leadership_transferee(self) -> int | None:
        """The most up-to-date connected voter, to hand leadership to before stopping."""
        progress = self.node.status().progress
        best, best_match = None, -1
        for member in self.cluster.members.values():
            if member.id == self.member_id or member.is_learner or not self.peer_active(member.id):
                continue
            pr = progress.get(member.id)
            if pr is not None and pr.match > best_match:
                best, best_match = member.id, pr.match
        return best

    def defragment(self, r: rpc_pb2.DefragmentRequest) -> rpc_pb2.DefragmentResponse:
        """Rewrite the backend compactly (blocks this member while it runs, as etcd's does)."""
        self.backend.defragment()
        return rpc_pb2.DefragmentResponse(header=self.header())

    def cluster_version(self) -> str:
        """The cluster version the leader decided ("" until then)."""
        return (self.backend.batch_tx.get(buckets.CLUSTER, CLUSTER_VERSION_KEY) or b"").decode()

    def health(self) -> tuple[bool, str]:
        """``(healthy, reason)`` as ``/health`` reports it."""
        if not self.leader_id:
            return False, "RAFT NO LEADER"
        if self.alarms.get(NOSPACE):
            return False, "ALARM NOSPACE"
        return True, ""

    def hash(self, r: rpc_pb2.HashRequest) -> rpc_pb2.HashResponse:
        """A hash of the backend's key bucket, pending writes included."""
        return rpc_pb2.HashResponse(header=self.header(), hash=self.backend.hash())

    def hash_kv(self, r: rpc_pb2.HashKVRequest) -> rpc_pb2.HashKVResponse:
        """The hash of the key bucket up to ``r.revision`` (0: now), for consistency checks."""
        crc, current, compacted = self.kv.hash_kv(r.revision)
        return rpc_pb2.HashKVResponse(
            header=self.header(current), hash=crc, compact_revision=compacted
        )

    def member_list(self) -> rpc_pb2.MemberListResponse:
        """Every member, ordered by id."""
        resp = rpc_pb2.MemberListResponse(
            header=rpc_pb2.ResponseHeader(
                cluster_id=self.cluster_id, member_id=self.member_id, raft_term=self.term
            )
        )
        for m in self.cluster.sorted_members():
            resp.members.add(
                ID=m.id, name=m.name, peerURLs=m.peer_urls, clientURLs=m.client_urls,
                isLearner=m.is_learner,
            )  # fmt: skip
        return resp


def _txn_cost(t: rpc_pb2.TxnRequest) -> int:
    """The quota cost of a txn: its costlier branch's puts (etcd's ``costTxn``)."""

    def branch(ops: object) -> int:
        return sum(
            KV_OVERHEAD + len(op.request_put.key) + len(op.request_put.value)
            for op in ops
            if op.WhichOneof("request") == "request_put"
        )

    return max(branch(t.success), branch(t.failure))


def _txn_serializable(t: rpc_pb2.TxnRequest) -> bool:
    """A read-only txn whose every range asks for serializable reads."""
    for op in (*t.success, *t.failure):
        kind = op.WhichOneof("request")
        if kind == "request_range" and not op.request_range.serializable:
            return False
        if kind == "request_txn" and not _txn_serializable(op.request_txn):
            return False
    return True
