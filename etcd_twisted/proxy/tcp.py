"""etcd's L4 TCP proxy (the ``gateway``): each accepted connection is spliced to one
healthy endpoint; an endpoint that refuses a connection is set aside and retried
every ``monitor_interval``.

Endpoints are picked as etcd's ``tcpproxy`` picks them, following RFC 2782 for SRV
records: the active endpoints of the lowest priority class; among those, by weight
when any has one (weight-0 endpoints then get about one pick in a hundred), else
round-robin.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList, maybeDeferred, succeed
from twisted.internet.interfaces import IListeningPort, IReactorTime, IStreamServerEndpoint
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

__all__ = ["Remote", "TcpProxy", "TcpProxyService"]

log = Logger()


@dataclass
class Remote:
    """One endpoint (an SRV record's target, port, priority and weight)."""

    target: str
    port: int
    priority: int = 0
    weight: int = 0
    active: bool = True

    @property
    def addr(self) -> str:
        host = f"[{self.target}]" if ":" in self.target else self.target
        return f"{host}:{self.port}"


#: Opens a connection to a remote with a factory; fires with the connected protocol.
Connector = Callable[[Remote, Factory], Deferred[Protocol]]


class TcpProxy:
    """Picks endpoints, connects spliced pairs, and re-activates failed endpoints."""

    def __init__(
        self,
        remotes: Sequence[Remote],
        connect: Connector,
        clock: IReactorTime,
        monitor_interval: float = 300.0,
        rng: random.Random | None = None,
    ) -> None:
        self.remotes = list(remotes)
        self._connect = connect
        self._clock = clock
        self.monitor_interval = monitor_interval or 300.0
        self._random = rng or random.Random()
        self._pick_count = 0
        self._monitor = LoopingCall(self._reactivate)
        self._monitor.clock = clock
        self.connections: set[Splice] = set()

    def start(self) -> None:
        """Start the monitor that retries inactive endpoints."""
        log.info(
            "ready to proxy client requests to {endpoints}",
            endpoints=[r.addr for r in self.remotes],
        )
        self._monitor.start(self.monitor_interval, now=False)

    def stop(self) -> None:
        """Stop the monitor and close every spliced connection."""
        if self._monitor.running:
            self._monitor.stop()
        for splice in list(self.connections):
            splice.transport.loseConnection()

    def pick(self) -> Remote | None:
        """The endpoint for the next connection, or None when none is active."""
        best = None
        weighted: list[Remote] = []
        unweighted: list[Remote] = []
        for remote in self.remotes:
            if not remote.active:
                continue
            if best is None or remote.priority < best:
                best, weighted, unweighted = remote.priority, [], []
            if remote.priority == best:
                (weighted if remote.weight > 0 else unweighted).append(remote)
        if weighted:
            if unweighted and self._random.randrange(100) == 1:
                chosen = unweighted[self._pick_count % len(unweighted)]
                self._pick_count += 1
                return chosen
            choose = self._random.randrange(sum(r.weight for r in weighted))
            for remote in weighted:
                choose -= remote.weight
                if choose < 0:
                    return remote
        if unweighted:
            # etcd goes round every active remote here, whatever its priority; we keep
            # to the chosen class, as RFC 2782 asks.
            picked = unweighted[self._pick_count % len(unweighted)]
            self._pick_count += 1
            return picked
        return None

    def serve(self, splice: Splice) -> None:
        """Connect ``splice`` to an endpoint, deactivating each one that fails; close it
        when none is left."""
        remote = self.pick()
        if remote is None:
            splice.transport.loseConnection()
            return
        d = self._connect(remote, _quiet(Factory.forProtocol(lambda: Outbound(splice))))

        def failed(failure: Failure) -> None:
            remote.active = False
            log.warn(
                "deactivated endpoint {address} (retried every {interval}s): {error}",
                address=remote.addr,
                interval=self.monitor_interval,
                error=failure.getErrorMessage(),
            )
            if splice.open:
                self.serve(splice)

        d.addErrback(failed)

    def _reactivate(self) -> Deferred[object]:
        attempts = [self._try(remote) for remote in self.remotes if not remote.active]
        return DeferredList(attempts)

    def _try(self, remote: Remote) -> Deferred[None]:
        def up(protocol: Protocol) -> None:
            protocol.transport.loseConnection()
            remote.active = True
            log.info("activated {address}", address=remote.addr)

        def down(failure: Failure) -> None:
            log.warn(
                "failed to activate endpoint {address} (stay inactive for another interval)",
                address=remote.addr,
            )

        return self._connect(remote, _quiet(Factory.forProtocol(Protocol))).addCallbacks(up, down)


def _quiet(factory: Factory) -> Factory:
    """A factory that does not log each start and stop (one per proxied connection)."""
    factory.noisy = False
    return factory


class Splice(Protocol):
    """A client's connection: buffered until its endpoint connects, then relayed both ways
    with backpressure (each side pauses reading while the other cannot take more)."""

    def __init__(self, proxy: TcpProxy) -> None:
        self._proxy = proxy
        self._buffer: list[bytes] = []
        self.peer: Outbound | None = None
        self.open = True

    def connectionMade(self) -> None:
        self._proxy.connections.add(self)
        self.transport.pauseProducing()
        self._proxy.serve(self)

    def attach(self, peer: Outbound) -> None:
        self.peer = peer
        if self._buffer:
            peer.transport.write(b"".join(self._buffer))
            self._buffer = []
        peer.transport.registerProducer(self.transport, True)
        self.transport.registerProducer(peer.transport, True)
        self.transport.resumeProducing()

    def dataReceived(self, data: bytes) -> None:
        if self.peer is None:
            self._buffer.append(data)
        else:
            self.peer.transport.write(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.open = False
        self._proxy.connections.discard(self)
        if self.peer is not None:
            self.peer.transport.loseConnection()


class Outbound(Protocol):
    """The endpoint side of a :class:`Splice`."""

    def __init__(self, splice: Splice) -> None:
        self._splice = splice

    def connectionMade(self) -> None:
        if not self._splice.open:
            self.transport.loseConnection()
            return
        self._splice.attach(self)

    def dataReceived(self, data: bytes) -> None:
        self._splice.transport.write(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._splice.transport.loseConnection()


class TcpProxyService(Service):
    """Listens on ``endpoint`` and serves every connection through ``proxy``."""

    def __init__(self, proxy: TcpProxy, endpoint: IStreamServerEndpoint) -> None:
        self.setName("gateway")
        self.proxy = proxy
        self._endpoint = endpoint
        self.port: IListeningPort | None = None
        self.listening: Deferred[IListeningPort] = Deferred()

    def startService(self) -> None:
        super().startService()
        factory = _quiet(Factory.forProtocol(lambda: Splice(self.proxy)))
        d = self._endpoint.listen(factory)

        def listened(port: IListeningPort) -> IListeningPort:
            self.port = port
            self.proxy.start()
            return port

        d.addCallback(listened).chainDeferred(self.listening)

    def stopService(self) -> Deferred[None]:
        super().stopService()
        self.proxy.stop()
        port, self.port = self.port, None
        return maybeDeferred(port.stopListening) if port is not None else succeed(None)
