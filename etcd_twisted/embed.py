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

from treq.client import HTTPClient
from twisted.application.service import MultiService, Service
from twisted.internet.defer import Deferred, gatherResults, succeed
from twisted.internet.interfaces import IListeningPort
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.iweb import IPolicyForHTTPS
from zope.interface import implementer

from etcd_twisted.api import auth as auth_api
from etcd_twisted.api import cluster as cluster_api
from etcd_twisted.api import election as election_api
from etcd_twisted.api import kv as kv_api
from etcd_twisted.api import lease as lease_api
from etcd_twisted.api import lock as lock_api
from etcd_twisted.api import maintenance as maintenance_api
from etcd_twisted.api import watch as watch_api
from etcd_twisted.api.access import AccessPolicy
from etcd_twisted.api.gateway import Gateway
from etcd_twisted.api.http import HttpApi
from etcd_twisted.api.unary import common_name_of, token_of
from etcd_twisted.config import Config
from etcd_twisted.grpc import GrpcFactory, Registry
from etcd_twisted.grpc.health import HealthService
from etcd_twisted.grpc.keepalive import KeepalivePolicy
from etcd_twisted.listen import ListeningService, server_endpoint, server_tls
from etcd_twisted.membership.ids import format_id
from etcd_twisted.metrics import Metrics
from etcd_twisted.peer.http import PeerApi
from etcd_twisted.peer.transport import Transport
from etcd_twisted.security import client_tls_info, peer_tls_info
from etcd_twisted.server.bootstrap import bootstrap
from etcd_twisted.server.etcd_server import EtcdServer, MemberEvents
from etcd_twisted.server.peers import PeerInbox
from etcd_twisted.sniff import SniffingFactory
from etcd_twisted.tls.context import ServerTLS, client_tls
from etcd_twisted.tls.info import TLSInfo
from etcd_twisted.ui.dashboard import Dashboard


@implementer(IPolicyForHTTPS)
class PeerTLSPolicy:
    """TLS for the calls a follower forwards to the leader's https peer URL: the same
    client side as the raft transport's (``--peer-*`` certificates and CA)."""

    def __init__(self, info: TLSInfo) -> None:
        self._info = info

    def creatorForNetloc(self, hostname: bytes, port: int) -> Any:
        return client_tls(self._info, hostname.decode("ascii"))


#: Seconds in-flight calls get to finish after GOAWAY on shutdown.
SHUTDOWN_GRACE = 5.0


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
        self.client_tls = client_tls_info(config)
        self.peer_tls = peer_tls_info(config)
        boot = bootstrap(config, random.Random(), on_sync=self.metrics.wal_fsync_duration.observe)
        self.server = EtcdServer(
            config,
            boot,
            reactor,
            http=HTTPClient(
                Agent(
                    reactor,
                    contextFactory=PeerTLSPolicy(self.peer_tls),
                    pool=HTTPConnectionPool(reactor),
                )
            ),
            network=self._build_transport,
            events=MemberEvents(
                fatal=on_fatal or self._stop_on_fatal,
                removed=on_removed or self._stop_when_removed,
                leader_changed=lambda lead: self.metrics.leader_changes.inc(),
            ),
        )
        self.transport = self.server.network
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
                token_of(ctx), key, end, common_name_of(ctx)
            ),
        )
        auth_api.register(self.registry, self.server)
        maintenance_api.register(self.registry, self.server)
        cluster_api.register(self.registry, self.server)
        lock_api.register(self.registry, self.server)
        election_api.register(self.registry, self.server)
        gateway = Gateway(self.registry, max_receive_bytes=config.max_receive_bytes)
        self.http_api = HttpApi(
            self.metrics,
            self._health,
            gateway,
            self.server.cluster_version,
            Dashboard(self._client_urls) if config.enable_dashboard else None,
            AccessPolicy(
                config.cors,
                config.host_whitelist,
                config.client_cert_auth,
                lambda: self.server.state.auth.enabled,
            ),
        )
        http_site = self.http_api.site()
        self.grpc_factory = GrpcFactory(
            self.registry,
            reactor,
            max_receive_bytes=config.max_receive_bytes,
            max_concurrent_streams=config.max_concurrent_streams,
            web=http_site,
            keepalive=KeepalivePolicy(
                config.grpc_keepalive_min_time,
                config.grpc_keepalive_interval,
                config.grpc_keepalive_timeout,
            ),
        )
        self.raft = self.server
        client_server_tls = self._server_tls(self.client_tls, config.listen_client_urls)
        peer_server_tls = self._server_tls(
            self.peer_tls, config.listen_peer_urls, protocols=(b"http/1.1",)
        )
        peer_api = PeerApi(
            lambda: self.server.state.cluster.members.values(),
            lambda: self.server.cluster_id,
            self.server.maintenance.handle_forwarded,
            self.server.corruption.local_hash,
        )
        self.peer = MultiService()
        self.peer.setName("peer")
        self.transport.setServiceParent(self.peer)
        ListeningService(
            "peer-listener",
            self.transport.server_factory(peer_api.site()),
            [
                server_endpoint(reactor, url, peer_server_tls, side="peer")
                for url in config.listen_peer_urls
            ],
            on_failure=lambda failure: self.server.events.fatal(failure),
        ).setServiceParent(self.peer)
        self.client_factory = SniffingFactory(self.grpc_factory, http_site, reactor)
        self.client = ListeningService(
            "client",
            self.client_factory,
            [server_endpoint(reactor, url, client_server_tls) for url in config.listen_client_urls],
            before_stop=self._close_client_connections,
            on_failure=lambda failure: self.server.events.fatal(failure),
        )
        self.metrics_service = ListeningService(
            "metrics",
            HttpApi(self.metrics, self._health, None, self.server.cluster_version).site(),
            [
                server_endpoint(
                    reactor,
                    url,
                    self._server_tls(self.client_tls, config.listen_metrics_urls),
                )
                for url in config.listen_metrics_urls
            ],
        )
        for service in (self.raft, self.peer, self.client, self.metrics_service):
            service.setServiceParent(self)

    def serving(self) -> Deferred[Any]:
        """Fires once the client ports listen and this member's attributes are applied."""
        return gatherResults([self.client.listening(), self.server.publisher.wait()])

    def _close_client_connections(self) -> Deferred[None]:
        """GOAWAY to gRPC clients (in-flight calls get a grace period), then close the rest."""
        d = self.grpc_factory.shutdown(SHUTDOWN_GRACE)
        d.addCallback(lambda _: self.client_factory.close_connections())
        return d

    def _build_transport(self, inbox: PeerInbox) -> Transport:
        """The server's peer network: raft streams and snapshots over the peer URLs."""
        metrics = self.metrics
        return Transport(
            self.reactor,
            inbox.member_id,
            inbox.cluster_id,
            on_message=inbox.step,
            on_unreachable=inbox.report_unreachable,
            on_snapshot_status=inbox.report_snapshot,
            on_snapshot=inbox.snapshot_received,
            open_snapshot=lambda: self.server.state.backend.snapshot(),
            snapshot_dir=self.config.snap_path,
            on_round_trip=lambda peer, seconds: metrics.peer_round_trip.labels(
                To=format_id(peer)
            ).observe(seconds),
            is_removed=inbox.is_removed,
            on_removed=inbox.removed,
            client_tls=None
            if self.peer_tls.empty
            else lambda host: client_tls(self.peer_tls, host),
        )

    @staticmethod
    def _server_tls(
        info: TLSInfo, urls: list[str], protocols: tuple[bytes, ...] = (b"h2", b"http/1.1")
    ) -> ServerTLS | None:
        """The port's server TLS if one of its URLs is secure (etcd ignores the
        certificates of a port whose URLs are all plain)."""
        if info.empty or not any(url.startswith(("https:", "unixs:")) for url in urls):
            return None
        return server_tls(info, protocols)

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
            lambda: server.state.backend.size(),
        )
        metrics.watch_state(
            "etcd_mvcc_db_total_size_in_use_in_bytes",
            "Total size of the underlying database logically in use in bytes.",
            lambda: server.state.backend.size_in_use(),
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
            lambda: server.state.kv.current_rev,
        )

    def _client_urls(self) -> list[str]:
        """Every member's client URLs (the dashboard may fetch each member's status)."""
        return [url for m in self.server.state.cluster.members.values() for url in m.client_urls]

    def _health(self, serializable: bool) -> tuple[bool, str]:
        return self.server.maintenance.health()

    def startService(self) -> None:
        """Start every child; with ``--experimental-initial-corrupt-check``, only once the
        peers' hashes agree with this member's (a mismatch is fatal, as in etcd)."""
        if not self.config.experimental_initial_corrupt_check:
            return super().startService()
        Service.startService(self)
        d = Deferred.fromCoroutine(self.server.corruption.initial_check())
        d.addCallbacks(lambda _: self._start_children(), self.server.events.fatal)
        return None

    def _start_children(self) -> None:
        if self.running:
            for service in self:
                service.startService()

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
