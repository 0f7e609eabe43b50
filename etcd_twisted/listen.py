"""From etcd listen URLs to listening ports: endpoints, TLS, and a service that owns them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from urllib.parse import urlsplit

from twisted.application.service import Service
from twisted.internet import endpoints
from twisted.internet.defer import (
    Deferred,
    DeferredList,
    FirstError,
    fail,
    gatherResults,
    maybeDeferred,
    succeed,
)
from twisted.internet.interfaces import IListeningPort, IStreamServerEndpoint
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python.failure import Failure
from zope.interface import implementer

from etcd_twisted.tls.context import ServerTLS, TLSConfigError
from etcd_twisted.tls.gate import GateFactory, RunInThread
from etcd_twisted.tls.info import TLSInfo

#: Pending connections the kernel queues per listening socket (Go listens with the
#: system maximum; Twisted's default of 50 drops bursts of new clients).
BACKLOG = 4096


class ListenError(Exception):
    """A listen URL that cannot be served (bad scheme, missing or unusable TLS files)."""


@implementer(IStreamServerEndpoint)
class TLSServerEndpoint:
    """Listens on ``wrapped`` with TLS from ``creator``, and the post-handshake checks
    its ``info`` asks for (CRL, SAN: see `etcd_twisted.tls.gate`)."""

    def __init__(
        self,
        wrapped: IStreamServerEndpoint,
        creator: ServerTLS,
        run: RunInThread | None = None,
    ) -> None:
        self.wrapped = wrapped
        self.creator = creator
        self._run = run

    def listen(self, factory: Factory) -> Deferred[IListeningPort]:
        gated = GateFactory(factory, self.creator.info, self._run)
        return self.wrapped.listen(TLSMemoryBIOFactory(self.creator, False, gated))


def server_tls(info: TLSInfo, protocols: Sequence[bytes] = (b"h2", b"http/1.1")) -> ServerTLS:
    """The server TLS of a port, or `ListenError` saying what is wrong with its files."""
    try:
        return ServerTLS(info, protocols)
    except TLSConfigError as e:
        raise ListenError(str(e)) from None


def server_endpoint(
    reactor: object,
    url: str,
    tls: ServerTLS | None = None,
    run: RunInThread | None = None,
    side: str = "client",
) -> IStreamServerEndpoint:
    """The server endpoint for an etcd listen URL (``http``, ``https``, ``unix``, ``unixs``);
    ``https`` and ``unixs`` need ``tls``, the others ignore it, as etcd does. ``side``
    ("client" or "peer") picks etcd's message for a secure URL without certificates."""
    parts = urlsplit(url)
    endpoint: IStreamServerEndpoint
    if parts.scheme in ("unix", "unixs"):
        path = parts.netloc + parts.path
        endpoint = endpoints.UNIXServerEndpoint(reactor, path, backlog=BACKLOG)
    elif parts.scheme in ("http", "https"):
        host = parts.hostname or ""
        port = parts.port or 0
        if host == "localhost":
            host = "127.0.0.1"
        if ":" in host:
            endpoint = endpoints.TCP6ServerEndpoint(reactor, port, backlog=BACKLOG, interface=host)
        else:
            endpoint = endpoints.TCP4ServerEndpoint(reactor, port, backlog=BACKLOG, interface=host)
    else:
        raise ListenError(f"unsupported URL scheme in {url}")
    if parts.scheme in ("https", "unixs"):
        if tls is None and side == "peer":
            raise ListenError(
                f"cannot listen on TLS for {parts.netloc}: KeyFile and CertFile are not presented"
            )
        if tls is None:
            raise ListenError(
                "TLS key/cert (--cert-file, --key-file) must be provided for client url "
                f"{url} with HTTPS scheme"
            )
        return TLSServerEndpoint(endpoint, tls, run)
    return endpoint


class ListeningService(Service):
    """Listens with one factory on several endpoints; stops listening when stopped.

    ``before_stop`` (if given) runs after the ports close and before the service
    reports stopped, e.g. to send GOAWAY on live connections.
    """

    log = Logger()

    def __init__(
        self,
        name: str,
        factory: Factory,
        endpoint_list: Sequence[IStreamServerEndpoint],
        before_stop: Callable[[], Deferred[None] | None] | None = None,
        on_failure: Callable[[Failure], None] | None = None,
    ) -> None:
        self.setName(name)
        self.factory = factory
        self.endpoints = list(endpoint_list)
        self.ports: list[IListeningPort] = []
        self._before_stop = before_stop
        #: Called if a port cannot be bound (a member without its ports must not go on).
        self.on_failure = on_failure
        self._result: list[IListeningPort] | Failure | None = None
        self._waiters: list[Deferred[list[IListeningPort]]] = []

    def startService(self) -> None:
        super().startService()
        listening = gatherResults(
            [endpoint.listen(self.factory) for endpoint in self.endpoints], consumeErrors=True
        )
        listening.addBoth(self._listened)

    def _listened(self, result: list[IListeningPort] | Failure) -> None:
        if isinstance(result, Failure):
            result = result.value.subFailure if isinstance(result.value, FirstError) else result
            self.log.failure("{name} cannot listen", result, name=self.name)
            if self.on_failure is not None:
                self.on_failure(result)
        else:
            self.ports = result
            for port in result:
                self.log.info(
                    "{name} listening on {address}", name=self.name, address=port.getHost()
                )
        self._result = result
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.callback(result) if not isinstance(result, Failure) else waiter.errback(result)

    def listening(self) -> Deferred[list[IListeningPort]]:
        """Fires with the listening ports once all are bound; fails if one cannot be."""
        if self._result is None:
            waiter: Deferred[list[IListeningPort]] = Deferred()
            self._waiters.append(waiter)
            return waiter
        if isinstance(self._result, Failure):
            return fail(self._result)
        return succeed(self._result)

    def stopService(self) -> Deferred[None]:
        super().stopService()
        stopped = DeferredList([maybeDeferred(port.stopListening) for port in self.ports])
        self.ports = []
        if self._before_stop is not None:
            before_stop = self._before_stop
            stopped.addCallback(lambda _: before_stop())
        return stopped.addCallback(lambda _: None)
