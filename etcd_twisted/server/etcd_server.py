"""``EtcdServer``: one member's request handling, a ``MultiService`` of named parts.

The path of a write: ``put(req)`` checks the request and the quota, then the
:class:`Proposer` wraps it in an ``InternalRaftRequest`` with a fresh id, registers a
Deferred under that id, and hands the turn's batch to the ``raft`` service. Its Ready
loop persists the entries (``wal-writer`` thread, one fdatasync per batch), sends them
to peers, and hands committed ones to :meth:`EtcdServer.apply_entries`, which runs
each through the ``apply/`` :class:`Applier` (auth → quota → corrupt → backend, one
LMDB batch transaction) and answers the waiter with the response or the error. The
backend records each entry's index as the consistent index in the same batch, so a
WAL replay after a crash skips what is already applied.

The path of a linearizable read: ``range(req)`` waits for a batched ReadIndex round
(one round serves every read that arrived meanwhile), then for the applied index to
reach the answered index, then reads the local store. A serializable read runs at once.

The children, in start order: ``wal-writer``, ``raft``, ``deadlines`` (request
timeouts), ``lease-checker``, ``watch-sync``, ``compactor`` (auto-compaction) and
``corruption-check`` (``corruption.py``) when on. Stopping stops them in reverse order,
each after the one before; waiting requests fail once raft is idle, then the backend
and the WAL close. Everything arrives through the constructor: the peer network (a
factory given the server as its inbox), the HTTP client (calls to the leader, peers'
hashes), the callbacks of :class:`MemberEvents`, and (for tests) the WAL writer.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from twisted.application.service import MultiService, Service
from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from etcd_twisted import CLUSTER_VERSION, deep_proto
from etcd_twisted._pb import raft_pb2, rpc_pb2
from etcd_twisted._pb.raft_internal_pb2 import ClusterVersionSetRequest, InternalRaftRequest
from etcd_twisted.apply.applier import Applier
from etcd_twisted.apply.state import MemberState, StateOptions
from etcd_twisted.backend import Backend
from etcd_twisted.config import Config
from etcd_twisted.lease import DEFAULT_CHECKPOINT_INTERVAL, LEASE_CHECK_INTERVAL
from etcd_twisted.mvcc.watchable_store import WatchableStore
from etcd_twisted.raft import SoftState
from etcd_twisted.server import compactor
from etcd_twisted.server.auth_frontend import AuthFrontend, token_provider
from etcd_twisted.server.bootstrap import Bootstrapped
from etcd_twisted.server.compaction import PhysicalCompaction
from etcd_twisted.server.conf_changes import ConfChangeApplier
from etcd_twisted.server.corruption import checker_for
from etcd_twisted.server.deadlines import Deadlines
from etcd_twisted.server.errors import TimeoutError
from etcd_twisted.server.forwarder import HTTPPoster, LeaderForwarder
from etcd_twisted.server.id_gen import IdGenerator
from etcd_twisted.server.kv_frontend import KVFrontend
from etcd_twisted.server.leadership import LeadershipTransfer
from etcd_twisted.server.leases import LeaseFrontend
from etcd_twisted.server.maintenance import Maintenance
from etcd_twisted.server.peers import LoneNetwork, NetworkFactory, follow_conf_change, sync_peers
from etcd_twisted.server.proposer import Proposer
from etcd_twisted.server.publish import AttributePublisher
from etcd_twisted.server.quota import QuotaGuard
from etcd_twisted.server.raft_service import RaftService
from etcd_twisted.server.read_index import AppliedIndex
from etcd_twisted.server.reconfig import Reconfigurator
from etcd_twisted.server.snapshot import SnapshotTaker
from etcd_twisted.server.snapshot_install import SnapshotInstaller
from etcd_twisted.server.timers import PeriodicService
from etcd_twisted.server.wal_writer import WALWriter
from etcd_twisted.server.watch_sync import WatchSync


def _ignore(*args: object) -> None:
    """An event nobody listens to."""


@dataclass(frozen=True)
class MemberEvents:
    """What the embedder hears: a fatal error, this member's removal, leader changes."""

    fatal: Callable[[Failure], None] = _ignore
    removed: Callable[[], None] = _ignore
    leader_changed: Callable[[int], None] = _ignore


class EtcdServer(MultiService):
    """One member's request handling (see the module docstring)."""

    log = Logger()

    def __init__(
        self,
        config: Config,
        boot: Bootstrapped,
        clock: IReactorTime,
        *,
        http: HTTPPoster,
        network: NetworkFactory = LoneNetwork,
        events: MemberEvents = MemberEvents(),
        wal_writer: WALWriter | None = None,
    ) -> None:
        super().__init__()
        self.setName("raft")
        self.config = config
        self.clock = clock
        self.member_id = boot.member_id
        self.cluster_id = boot.cluster_id
        self.events = events
        self.ids = IdGenerator(boot.member_id, int(time.time() * 1000))
        self._initial_members = boot.initial_members
        #: Auth tokens live in memory only; they outlive a snapshot's new state.
        self.auth_tokens = token_provider(config)
        self._wal = boot.wal
        self.node = boot.node
        self.wal_writer = wal_writer or WALWriter(boot.wal, clock)
        self.installer = SnapshotInstaller(
            config.data_dir,
            boot.wal,
            boot.snapshotter,
            self.wal_writer,
            lambda: self.state.backend,
            self._open_backend,
            self._install_backend,
        )
        self.raft = RaftService(
            boot.node,
            boot.storage,
            self.wal_writer,
            self,
            clock,
            config.heartbeat_interval / 1000.0,
            send=self._send,
            on_fatal=events.fatal,
            persist_snapshot=self.installer.persist,
        )
        self.applied = AppliedIndex(boot.backend.consistent_index()[0])
        self.request_timeout = 5.0 + 2 * config.election_timeout / 1000.0
        self.deadlines = Deadlines(clock, self.request_timeout, TimeoutError)
        self.proposer = Proposer(
            self.raft, clock, self.ids, self.deadlines, self.applied, config.max_request_bytes
        )
        self.compaction = PhysicalCompaction(lambda: self.state, clock)
        self.network = network(self)
        self._open_state(boot.backend)
        self.watchable = WatchableStore(self.state.kv, on_work=self._watch_work)
        self.watch_sync = WatchSync(self.watchable, clock)
        self.quota = QuotaGuard(lambda: self.state, self.proposer, self.member_id)
        self.forwarder = LeaderForwarder(http, self._leader_peer_url, self.request_timeout)
        self.corruption = checker_for(self, http)
        self.auth_frontend = AuthFrontend(
            lambda: self.state.auth, self.proposer, clock, config.client_cert_auth
        )
        self.leases = LeaseFrontend(
            lambda: self.state,
            self.proposer,
            self.quota,
            self.forwarder,
            clock,
            lambda: self.is_leader,
            self.auth_frontend.root,
        )
        self.kv_frontend = KVFrontend(
            lambda: self.applier,
            self.proposer,
            self.quota,
            self.compaction,
            config.max_txn_ops,
            clock,
        )
        self.conf_changes = ConfChangeApplier(
            self.member_id,
            boot.node,
            lambda: self.state,
            lambda: self.reconfig,
            self.proposer,
            clock,
            lambda cc: follow_conf_change(self.network, self.state.cluster.members, cc),
            self.removed,
        )
        self.leadership = LeadershipTransfer(
            self.member_id,
            self.raft,
            lambda: self.leader_id,
            boot.node.match_index,
            self.peer_active,
            clock,
            config.heartbeat_interval / 1000.0,
        )
        self.maintenance = Maintenance(self)
        self.snapshots = SnapshotTaker(
            boot.storage,
            lambda: self.state.backend,
            boot.wal,
            self.wal_writer,
            boot.snapshotter,
            boot.node.conf_state,
            config.snapshot_count,
            config.max_snapshots,
            config.max_wals,
            config.experimental_snapshot_catchup_entries,
        )
        #: A member that is its own quorum elects itself at once, without waiting out an
        #: election timeout (etcd fast-forwards the ticks; campaigning is quicker still).
        self._campaign_alone = True
        self._version_proposed = False
        self._stopping = False
        self.publisher = AttributePublisher(
            self.member_id, config.name, config.advertise_client_urls,
            self.proposer.propose, clock, lambda: self._stopping,
        )  # fmt: skip
        sync_peers(self.network, self.state.cluster.members, self._initial_members)
        children: list[Service] = [
            self.wal_writer,
            self.raft,
            self.deadlines,
            PeriodicService(
                "lease-checker", LEASE_CHECK_INTERVAL, self.leases.check_expired, clock
            ),
            self.watch_sync,
        ]
        auto_compactor = compactor.from_config(
            config,
            clock,
            lambda: self.state.kv.current_rev,
            lambda rev: self.kv_frontend.compact(rpc_pb2.CompactionRequest(revision=rev)),
            lambda: self.is_leader,
        )
        if auto_compactor is not None:
            children.append(auto_compactor)
        if config.experimental_corrupt_check_time > 0:
            children.append(self.corruption.service(config.experimental_corrupt_check_time, clock))
        for child in children:
            child.setServiceParent(self)

    # --- the state in the backend

    def _open_state(self, backend: Backend) -> None:
        """Open the stores of ``backend`` and the applier and reconfigurator over them."""
        config = self.config
        options = StateOptions(
            min_lease_ttl=math.ceil(1.5 * config.election_timeout / 1000.0),
            lease_checkpoint_interval=(
                DEFAULT_CHECKPOINT_INTERVAL if config.experimental_enable_lease_checkpoint else None
            ),
            bcrypt_cost=config.bcrypt_cost,
        )
        self.state = MemberState(backend, self.cluster_id, options, self.auth_tokens)
        self.applier = Applier(self.state, self.compaction.schedule)
        self.reconfig = Reconfigurator(
            self.state.cluster,
            self.member_id,
            config.strict_reconfig_check,
            self.proposer.propose_conf_change,
            self.ids.next,
            self.peer_active,
            self.node.match_index,
        )

    def _open_backend(self, path: str) -> Backend:
        c = self.config
        return Backend(
            path,
            quota_bytes=c.quota_bytes,
            batch_interval=c.backend_batch_interval,
            batch_limit=c.backend_batch_limit,
            sync_commits=not c.unsafe_no_fsync,
        )

    def _install_backend(self, backend: Backend, index: int) -> None:
        """A snapshot from the leader replaced the database: reopen everything over it."""
        self._open_state(backend)
        self.watchable.restore(self.state.kv)
        self.applied.advance(max(index, backend.consistent_index()[0]))
        sync_peers(self.network, self.state.cluster.members, self._initial_members)

    # --- lifecycle

    def startService(self) -> None:
        super().startService()
        self.publisher.publish()

    def stopService(self) -> Deferred[None]:
        """Stop the children in reverse order, one after another (see the module docstring)."""
        return Deferred.fromCoroutine(self._stop())

    async def _stop(self) -> None:
        Service.stopService(self)
        self._stopping = True
        self.proposer.stop()
        self.compaction.stop()
        for child in reversed(list(self)):
            if child is self.wal_writer:
                self.proposer.fail_waiting()
                self.state.backend.close()
            await maybeDeferred(child.stopService)
        self._wal.close()

    def hand_over_leadership(self) -> Deferred[None]:
        """Before stopping: a leader of others hands leadership to its most up-to-date
        connected voter (so the cluster need not wait out an election); fires when done."""
        if not self.is_leader:
            return succeed(None)
        transferee = self.leadership.transferee(self.state.cluster.members.values())
        if transferee is None:
            return succeed(None)
        self.log.info("handing leadership to {id:x} before stopping", id=transferee)
        d = self.leadership.transfer(transferee, self.config.election_timeout / 1000.0)
        return d.addErrback(lambda _: None)

    def removed(self) -> None:
        """This member was removed from the cluster: it stops, as etcd's does."""
        if self._stopping:
            return
        self.log.warn("the member has been permanently removed from the cluster; it stops")
        self.events.removed()

    # --- identity and headers

    @property
    def term(self) -> int:
        return self.node.term

    @property
    def leader_id(self) -> int:
        return self.proposer.leader_id

    @property
    def is_leader(self) -> bool:
        return self.proposer.leader_id == self.member_id

    @property
    def committed(self) -> int:
        return self.node.committed

    @property
    def is_learner(self) -> bool:
        member = self.state.cluster.members.get(self.member_id)
        return member is not None and member.is_learner

    def header(self, revision: int = 0) -> rpc_pb2.ResponseHeader:
        """A response header; ``revision`` 0 means the store's current revision."""
        return rpc_pb2.ResponseHeader(
            cluster_id=self.cluster_id,
            member_id=self.member_id,
            revision=revision or self.state.kv.current_rev,
            raft_term=self.term,
        )

    def cluster_version(self) -> str:
        """The cluster version the leader decided ("" until then)."""
        return self.state.cluster_version()

    def peer_active(self, member_id: int) -> bool:
        """Whether a member is reachable (this member always is)."""
        return member_id == self.member_id or self.network.is_active(member_id)

    def _leader_peer_url(self) -> str | None:
        leader = self.state.cluster.members.get(self.leader_id) if self.leader_id else None
        return leader.peer_urls[0] if leader is not None and leader.peer_urls else None

    # --- the peer inbox (what the network hands in)

    def step(self, message: raft_pb2.Message) -> None:
        """A raft message from a peer."""
        self.raft.step(message)

    def report_unreachable(self, member_id: int) -> None:
        """The network could not reach a peer."""
        self.raft.report_unreachable(member_id)

    def report_snapshot(self, member_id: int, ok: bool) -> None:
        """A snapshot sent to a peer was (or was not) delivered."""
        self.raft.report_snapshot(member_id, ok)

    def snapshot_received(self, message: raft_pb2.Message, path: str) -> None:
        """The network received a snapshot: keep its database, give raft the message."""
        self.installer.received(message, path)
        self.raft.step(message)

    def is_removed(self, member_id: int) -> bool:
        """Whether ``member_id`` was removed from the cluster."""
        return member_id in self.state.cluster.removed

    def _send(self, messages: list[raft_pb2.Message]) -> None:
        """Raft's outbound messages; a snapshot describes the current applied state.

        The database a follower receives with ``MsgSnap`` is the backend as it is now, so
        the message's metadata must say so (index, term and membership as applied), as
        etcd's ``createMergedSnapshotMessage`` does; a member added after raft's last
        snapshot would otherwise refuse a snapshot that does not list it.
        """
        for message in messages:
            if message.type == raft_pb2.MsgSnap:
                self.state.backend.force_commit()
                index, term = self.state.backend.consistent_index()
                md = message.snapshot.metadata
                md.index, md.term = index, term
                md.conf_state.CopyFrom(self.node.conf_state())
        self.network.send(messages)

    # --- what the raft loop hands over (``raft_service.Applier``)

    def on_soft_state(self, soft: SoftState) -> None:
        """Raft's leader or role changed."""
        lead = soft.lead
        changed = lead != self.leader_id
        self.proposer.leader_changed(lead)
        if changed:
            self.log.info(
                "raft: leader is now {leader:x} at term {term}", leader=lead, term=self.term
            )
            self.events.leader_changed(lead)
            if lead != self.member_id:
                self.state.lessor.demote()

    def on_read_states(self, states: list) -> None:
        """Raft answered ReadIndex requests."""
        self.proposer.on_read_states(states)

    def apply_snapshot(self, snap: raft_pb2.Snapshot) -> Deferred[None]:
        """Replace the state with the database received with ``snap``."""
        return self.installer.apply(snap)

    def apply_entries(self, entries: list[raft_pb2.Entry]) -> None:
        """Apply committed entries in order, skipping those the backend already has."""
        backend = self.state.backend
        consistent = backend.consistent_index()[0]
        proposer = self.proposer
        proposer.committed_index = max(proposer.committed_index, entries[-1].index)
        for entry in entries:
            fresh = entry.index > consistent
            if entry.type == raft_pb2.EntryConfChange:
                self.conf_changes.apply(entry, fresh)
            elif not entry.data:
                # The leader's empty entry of its term: once it is applied, everything
                # from earlier terms is too, and the new leader takes over lease expiry.
                if self.is_leader and entry.term == self.term:
                    self.state.lessor.promote(
                        self.config.election_timeout / 1000.0, self.clock.seconds()
                    )
            elif fresh:
                req = deep_proto.parse(InternalRaftRequest, entry.data)
                try:
                    result = self.applier.apply(req, entry.index, self.clock.seconds())
                except Exception:  # noqa: BLE001 - the request's error goes to its client
                    result = Failure()
                proposer.answer(req.header.ID, result)
            if fresh:
                backend.set_consistent_index(entry.index, entry.term)
        self.applied.advance(entries[-1].index)
        self.watchable.flush()  # one batch of watch responses per Ready

    def after_ready(self) -> None:
        """Once per Ready: commit the backend batch if due, snapshot if due, decide the
        cluster version on the leader; a member alone campaigns at once."""
        self.state.backend.maybe_commit(self.clock.seconds())
        self.snapshots.maybe_snapshot(self.applied.applied)
        if self._stopping:
            return
        if self.is_leader and not self._version_proposed and not self.cluster_version():
            self._version_proposed = True
            req = InternalRaftRequest(
                cluster_version_set=ClusterVersionSetRequest(ver=CLUSTER_VERSION)
            )

            def retry(failure: Failure) -> None:
                self._version_proposed = False

            self.proposer.propose(req).addErrback(retry)
        if self._campaign_alone:
            voters = list(self.node.conf_state().voters)
            if voters:
                self._campaign_alone = False
                if voters == [self.member_id] and not self.leader_id:
                    self.raft.campaign()

    def _watch_work(self) -> None:
        """The watchable store has catching up to do: sync on the next reactor turn."""
        self.watch_sync.kick()
