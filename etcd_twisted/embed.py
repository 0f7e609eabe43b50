"""Wire a member together: ``build_service(config, reactor) -> MultiService``.

This is the one place that knows every component. The result is the embedding API:
start it as a Twisted service (``twistd etcd`` does, and so can tests or an
application), and stop it to shut down gracefully. Its children are named as the
parts of etcd's ``embed.StartEtcd``: ``raft``, ``peer``, ``client`` and ``metrics``.

Building opens the data dir (a new member creates its WAL and backend, a restarted
one reads them), so a data dir that cannot be used fails here, before anything
listens. Starting binds the ports and starts raft; stopping closes the ports (with
GOAWAY to gRPC clients), then stops raft and flushes the backend and WAL.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from twisted.application.service import MultiService, Service
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IListeningPort
from twisted.logger import Logger
from twisted.python.failure import Failure

from etcd_twisted._pb import raft_pb2
from etcd_twisted.api import auth as auth_api
from etcd_twisted.api import cluster as cluster_api
from etcd_twisted.api import election as election_api
from etcd_twisted.api import kv as kv_api
from etcd_twisted.api import lease as lease_api
from etcd_twisted.api import lock as lock_api
from etcd_twisted.api import maintenance as maintenance_api
from etcd_twisted.api import watch as watch_api
from etcd_twisted.api.gateway import Gateway
from etcd_twisted.api.http import HttpApi
from etcd_twisted.api.unary import token_of
from etcd_twisted.config import Config
from etcd_twisted.grpc import GrpcFactory, Registry
from etcd_twisted.grpc.health import HealthService
from etcd_twisted.listen import ListeningService, server_endpoint, tls_options
from etcd_twisted.membership.ids import format_id
from etcd_twisted.metrics import Metrics
from etcd_twisted.peer.http import PeerApi
from etcd_twisted.peer.transport import Transport
from etcd_twisted.server.bootstrap import bootstrap
from etcd_twisted.server.etcd_server import EtcdServer
from etcd_twisted.sniff import SniffingFactory

#: Seconds in-flight calls get to finish after GOAWAY on shutdown.
SHUTDOWN_GRACE = 5.0


class ServerService(Service):
    """The ``raft`` child: starts the server's raft loop and WAL writer, stops them last."""

    name = "raft"

    def __init__(self, server: EtcdServer) -> None:
        self.server = server

    def startService(self) -> None:
        super().startService()
        self.server.start()

    def stopService(self) -> Deferred[None]:
        super().stopService()
        return self.server.stop()


class EtcdService(MultiService):
    """A running member: its child services and the objects embedders may reach."""

    log = Logger()

    def __init__(
        self,
        config: Config,
        reactor: Any,
        on_fatal: Callable[[Failure], None] | None = None,
        on_removed: Callable[[], None] | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.reactor = reactor
        self.metrics = Metrics()
        boot = bootstrap(config, random.Random(), on_sync=self.metrics.wal_fsync_duration.observe)
        self._initial_members = boot.initial_members
        self.server = EtcdServer(config, boot, reactor)
        self.server.on_fatal = on_fatal or self._stop_on_fatal
        self.server.on_removed = on_removed or self._stop_when_removed
        self.server.on_leader_change = lambda lead: self.metrics.leader_changes.inc()
        self._watch_server_state()
        self.registry = Registry()
        self.health = HealthService()
        self.health.register(self.registry)
        kv_api.register(self.registry, self.server)
        lease_api.register(self.registry, self.server)
        watch_api.register(
            self.registry,
            self.server,
            config.experimental_watch_progress_notify_interval,
            config.max_receive_bytes,
            permitted=lambda ctx, key, end: self.server.auth_frontend.watch_permitted(
                token_of(ctx), key, end
            ),
        )
        auth_api.register(self.registry, self.server)
        maintenance_api.register(self.registry, self.server)
        cluster_api.register(self.registry, self.server)
        lock_api.register(self.registry, self.server)
        election_api.register(self.registry, self.server)
        self.grpc_factory = GrpcFactory(
            self.registry, reactor, max_receive_bytes=config.max_receive_bytes
        )
        self.http_api = HttpApi(
            self.metrics,
            self._health,
            Gateway(self.registry, config.max_receive_bytes),
            self.server.cluster_version,
        )
        self.raft = ServerService(self.server)
        self.transport = self._build_transport()
        peer_api = PeerApi(
            lambda: self.server.cluster.members.values(),
            lambda: self.server.cluster_id,
            self.server.handle_forwarded,
        )
        self.peer = MultiService()
        self.peer.setName("peer")
        self.transport.setServiceParent(self.peer)
        ListeningService(
            "peer-listener",
            self.transport.server_factory(peer_api.site()),
            [server_endpoint(reactor, url, self._peer_tls()) for url in config.listen_peer_urls],
            on_failure=lambda failure: self.server.on_fatal(failure),
        ).setServiceParent(self.peer)
        self.client_factory = SniffingFactory(self.grpc_factory, self.http_api.site(), reactor)
        self.client = ListeningService(
            "client",
            self.client_factory,
            [
                server_endpoint(reactor, url, self._client_tls())
                for url in config.listen_client_urls
            ],
            before_stop=self._close_client_connections,
            on_failure=lambda failure: self.server.on_fatal(failure),
        )
        self.metrics_service = ListeningService(
            "metrics",
            HttpApi(self.metrics, self._health, None, self.server.cluster_version).site(),
            [server_endpoint(reactor, url) for url in config.listen_metrics_urls],
        )
        for service in (self.raft, self.peer, self.client, self.metrics_service):
            service.setServiceParent(self)

    def _close_client_connections(self) -> Deferred[None]:
        """GOAWAY to gRPC clients (in-flight calls get a grace period), then close the rest."""
        d = self.grpc_factory.shutdown(SHUTDOWN_GRACE)
        d.addCallback(lambda _: self.client_factory.close_connections())
        return d

    def _build_transport(self) -> Transport:
        server, metrics = self.server, self.metrics
        transport = Transport(
            self.reactor,
            server.member_id,
            server.cluster_id,
            on_message=server.raft.step,
            on_unreachable=server.raft.report_unreachable,
            on_snapshot_status=server.raft.report_snapshot,
            on_snapshot=server.snapshot_received,
            open_snapshot=lambda: server.backend.snapshot(),
            snapshot_dir=self.config.snap_path,
            on_round_trip=lambda peer, seconds: metrics.peer_round_trip.labels(
                To=format_id(peer)
            ).observe(seconds),
            is_removed=lambda member_id: member_id in server.cluster.removed,
            on_removed=server.removed,
        )
        server.raft.send = lambda messages: transport.send(server.outgoing(messages))
        server.peer_active = lambda member_id: (
            member_id == server.member_id or transport.is_active(member_id)
        )
        server.on_peers_changed = self._peers_changed
        server.on_state_replaced = self._sync_peers
        self._sync_peers(transport)
        return transport

    def _peers_changed(self, cc: raft_pb2.ConfChange) -> None:
        """Follow an applied membership change in the transport."""
        if cc.type == raft_pb2.ConfChangeRemoveNode:
            self.transport.remove_peer(cc.node_id)
            return
        member = self.server.cluster.members.get(cc.node_id)
        if member is None:
            return
        if cc.type == raft_pb2.ConfChangeUpdateNode:
            self.transport.update_peer(member.id, member.peer_urls)
        else:
            self.transport.add_peer(member.id, member.peer_urls)

    def _sync_peers(self, transport: Transport | None = None) -> None:
        """Make the transport's peers the cluster's members (at start, after a snapshot)."""
        transport = transport or self.transport
        members = self.server.cluster.members
        for member in members.values():
            transport.add_peer(member.id, member.peer_urls)
        if not members:  # a first start: talk to the members we were told about
            for member in self._initial_members:
                transport.add_peer(member.id, member.peer_urls)
            return
        for peer_id in list(transport.peers):
            if peer_id not in members:
                transport.remove_peer(peer_id)

    def _client_tls(self) -> Callable[[], Any] | None:
        c = self.config
        if not c.cert_file:
            return None
        return lambda: tls_options(c.cert_file, c.key_file, c.trusted_ca_file, c.client_cert_auth)

    def _peer_tls(self) -> Callable[[], Any] | None:
        c = self.config
        if not c.peer_cert_file:
            return None
        return lambda: tls_options(
            c.peer_cert_file, c.peer_key_file, c.peer_trusted_ca_file, c.peer_client_cert_auth
        )

    def _watch_server_state(self) -> None:
        server, metrics = self.server, self.metrics
        metrics.watch_state(
            "etcd_server_has_leader",
            "Whether or not a leader exists. 1 is existence, 0 is not.",
            lambda: 1 if server.leader_id else 0,
        )
        metrics.watch_state(
            "etcd_server_is_leader",
            "Whether or not this member is a leader. 1 if is, 0 otherwise.",
            lambda: 1 if server.is_leader else 0,
        )
        metrics.watch_state(
            "etcd_mvcc_db_total_size_in_bytes",
            "Total size of the underlying database physically allocated in bytes.",
            lambda: server.backend.size(),
        )
        metrics.watch_state(
            "etcd_mvcc_db_total_size_in_use_in_bytes",
            "Total size of the underlying database logically in use in bytes.",
            lambda: server.backend.size_in_use(),
        )
        metrics.watch_state(
            "etcd_debugging_mvcc_watcher_total",
            "Total number of watchers.",
            lambda: (
                len(server.watchable.synced)
                + len(server.watchable.unsynced)
                + len(server.watchable.victims)
            ),
        )
        metrics.watch_state(
            "etcd_debugging_mvcc_watch_stream_total",
            "Total number of watch streams.",
            lambda: len(server.watchable.streams),
        )
        metrics.watch_state(
            "etcd_debugging_mvcc_slow_watcher_total",
            "Total number of unsynced slow watchers.",
            lambda: len(server.watchable.unsynced) + len(server.watchable.victims),
        )
        metrics.watch_state(
            "etcd_debugging_mvcc_current_revision",
            "The current revision of store.",
            lambda: server.kv.current_rev,
        )

    def _health(self, serializable: bool) -> tuple[bool, str]:
        return self.server.health()

    def stopService(self) -> Deferred[None]:
        """Hand leadership over first (while peers can still be reached), then stop the
        children: client and metrics ports, the peer transport, raft last."""
        if not self.running:
            return succeed(None)
        d = self.server.hand_over_leadership()
        return d.addCallback(lambda _: super(EtcdService, self).stopService())

    def _stop_when_removed(self) -> None:
        if self.running:
            self.stopService()

    def _stop_on_fatal(self, failure: Failure) -> None:
        self.log.critical("member stops after a fatal error: {error}", error=failure.value)
        if self.running:
            self.stopService()

    def client_ports(self) -> Deferred[list[IListeningPort]]:
        """The client listening ports, once bound (useful with port 0)."""
        return self.client.listening()


def build_service(
    config: Config,
    reactor: Any,
    on_fatal: Callable[[Failure], None] | None = None,
    on_removed: Callable[[], None] | None = None,
) -> EtcdService:
    """Open the data dir and build a member's service tree from its configuration.

    ``on_fatal`` (default: stop the service) is called when the member cannot go on;
    ``on_removed`` (default: stop the service) when it was removed from the cluster.
    """
    return EtcdService(config, reactor, on_fatal, on_removed)
