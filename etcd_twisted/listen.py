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
from twisted.internet.ssl import Certificate, CertificateOptions, PrivateCertificate
from twisted.logger import Logger
from twisted.python.failure import Failure

#: Pending connections the kernel queues per listening socket (Go listens with the
#: system maximum; Twisted's default of 50 drops bursts of new clients).
BACKLOG = 4096


#: ALPN protocols in the server's order of preference (see :func:`tls_options`).
ALPN_PROTOCOLS = [b"http/1.1", b"h2"]


class ListenError(Exception):
    """A listen URL that cannot be served (bad scheme, missing TLS files)."""


def tls_options(
    cert_file: str, key_file: str, trusted_ca_file: str = "", client_cert_auth: bool = False
) -> CertificateOptions:
    """Server TLS options from PEM files, with ALPN ``http/1.1`` and ``h2``.

    A client that offers ``http/1.1`` (a browser, curl) gets it, and so reaches the
    HTTP handlers (JSON gateway, dashboard) that our HTTP/2 side, being gRPC only, does
    not serve; gRPC clients offer ``h2`` alone (grpc-go, grpcio) and get ``h2``.
    """
    try:
        with open(cert_file, "rb") as f:
            cert_pem = f.read()
        with open(key_file, "rb") as f:
            key_pem = f.read()
        authorities = None
        if trusted_ca_file:
            with open(trusted_ca_file, "rb") as f:
                authorities = [Certificate.loadPEM(f.read()).original]
    except OSError as e:
        raise ListenError(f"cannot read TLS file {e.filename}: {e.strerror}") from None
    private = PrivateCertificate.loadPEM(cert_pem + b"\n" + key_pem)
    return CertificateOptions(
        privateKey=private.privateKey.original,
        certificate=private.original,
        verify=bool(client_cert_auth and authorities),
        caCerts=authorities if client_cert_auth else None,
        requireCertificate=client_cert_auth,
        acceptableProtocols=ALPN_PROTOCOLS,
    )


def server_endpoint(
    reactor: object, url: str, tls: Callable[[], CertificateOptions] | None = None
) -> IStreamServerEndpoint:
    """The server endpoint for an etcd listen URL (``http``, ``https``, ``unix``, ``unixs``)."""
    parts = urlsplit(url)
    if parts.scheme in ("unix", "unixs"):
        path = parts.netloc + parts.path
        return endpoints.UNIXServerEndpoint(reactor, path, backlog=BACKLOG)
    if parts.scheme not in ("http", "https"):
        raise ListenError(f"unsupported URL scheme in {url}")
    host = parts.hostname or ""
    port = parts.port or 0
    if host == "localhost":
        host = "127.0.0.1"
    if parts.scheme == "https":
        if tls is None:
            raise ListenError(f"{url} needs TLS: give --cert-file and --key-file")
        if ":" in host:
            raise ListenError("https on IPv6 listen addresses is not supported yet")
        return endpoints.SSL4ServerEndpoint(reactor, port, tls(), backlog=BACKLOG, interface=host)
    if ":" in host:
        return endpoints.TCP6ServerEndpoint(reactor, port, backlog=BACKLOG, interface=host)
    return endpoints.TCP4ServerEndpoint(reactor, port, backlog=BACKLOG, interface=host)


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
