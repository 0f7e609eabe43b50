"""The checks etcd makes on a TLS connection after its handshake, before serving it.

etcd's ``tlsListener`` accepts a connection only once its handshake is done and, when
configured, the client certificate is not in the CRL file (``--client-crl-file``,
``--peer-crl-file``; read on every connection, so an updated list applies at once)
and, on the peer port, its SAN names the address it connects from (an IP SAN equal to
it, or a DNS name that resolves to it or that its reverse lookup gives; skipped with
``--experimental-peer-skip-client-san-verification``). A connection that fails is
closed and logged. `GateFactory` wraps a TLS port's factory with these checks: the inner
protocol sees the connection only after its handshake and checks passed. A failed
handshake is logged too ("rejected connection", as etcd logs it).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from typing import Any

from cryptography import x509
from OpenSSL import SSL, crypto
from twisted.internet import threads
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.interfaces import IAddress, IHandshakeListener
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from etcd_twisted.tls.context import matches_hostname
from etcd_twisted.tls.info import TLSInfo

log = Logger()

#: ``run(f, *args)``: call ``f`` off the reactor thread (DNS lookups, file reads).
RunInThread = Callable[..., Deferred[Any]]


class RejectedError(Exception):
    """The certificate failed a check; the message says which, as etcd logs it."""


def revoked_serials(crl_file: str) -> set[int]:
    """The serial numbers a PEM or DER CRL file revokes."""
    with open(crl_file, "rb") as f:
        data = f.read()
    crl = x509.load_pem_x509_crl(data) if b"-----BEGIN" in data else x509.load_der_x509_crl(data)
    return {revoked.serial_number for revoked in crl}


def check_crl(crl_file: str, cert: x509.Certificate) -> None:
    """Raise `RejectedError` if ``cert``'s serial is revoked (or the CRL is unreadable)."""
    try:
        serials = revoked_serials(crl_file)
    except (OSError, ValueError) as e:
        raise RejectedError(f"cannot read CRL {crl_file}: {e}") from None
    if cert.serial_number in serials:
        raise RejectedError(f"transport: certificate serial {cert.serial_number:x} revoked")


def _san(cert: x509.Certificate) -> tuple[list[str], list[str]]:
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return [], []
    addresses = [str(a) for a in ext.get_values_for_type(x509.IPAddress)]
    return addresses, list(ext.get_values_for_type(x509.DNSName))


def _host_in_dns(host: str, names: list[str]) -> bool:
    """Whether ``host`` (an IP address) is one of ``names``, by reverse then forward lookup."""
    wildcards = [name[1:] for name in names if name.startswith("*.")]
    plain = [name for name in names if not name.startswith("*.")]
    try:
        primary, aliases, _ = socket.gethostbyaddr(host)
    except OSError:
        primary, aliases = "", []
    for name in [primary, *aliases]:
        name = name.rstrip(".")
        if name and (name in plain or any(name.endswith(w) for w in wildcards)):
            return True
    for name in plain:
        try:
            infos = socket.getaddrinfo(name, None)
        except OSError:
            continue
        if any(ipaddress.ip_address(info[4][0]) == ipaddress.ip_address(host) for info in infos):
            return True
    return False


def check_san(cert: x509.Certificate, host: str) -> None:
    """Raise `RejectedError` unless ``cert``'s SAN names ``host`` (a certificate without
    IP or DNS SANs passes, as in etcd)."""
    addresses, names = _san(cert)
    if not addresses and not names:
        return
    if addresses and matches_hostname(cert, host):
        return
    if not names:
        raise RejectedError(f"x509: certificate is valid for {', '.join(addresses)}, not {host}")
    if not _host_in_dns(host, names):
        quoted = " ".join(f'"{n}"' for n in names)
        raise RejectedError(f'tls: "{host}" does not match any of DNSNames [{quoted}]')


def check_certificate(info: TLSInfo, cert: x509.Certificate, host: str) -> None:
    """Every post-handshake check ``info`` asks for, in etcd's order (SAN, then CRL)."""
    if info.check_san:
        check_san(cert, host)
    if info.crl_file:
        check_crl(info.crl_file, cert)


def has_checks(info: TLSInfo) -> bool:
    """Whether a client certificate is checked after the handshake at all."""
    return bool(info.crl_file) or (info.check_san and info.requires_client_cert)


@implementer(IHandshakeListener)
class GateProtocol(Protocol):
    """Holds a connection until its client certificate passed; then hands it on."""

    def __init__(self, factory: GateFactory, addr: IAddress) -> None:
        self._factory = factory
        self._addr = addr
        self._inner: Protocol | None = None
        self._buffer: list[bytes] = []
        self._closed = False
        self._handshake_done = False

    def handshakeCompleted(self) -> None:  # noqa: N802 - IHandshakeListener
        self._handshake_done = True
        peer_cert = self.transport.getPeerCertificate()
        if peer_cert is None or not has_checks(self._factory.info):
            self._passed(None)
            return
        cert = crypto.X509.to_cryptography(peer_cert)
        host = getattr(self.transport.getPeer(), "host", "")
        d = self._factory.run(check_certificate, self._factory.info, cert, host)
        d.addCallbacks(self._passed, self._rejected)

    def _passed(self, _: object) -> None:
        if self._closed:
            return
        inner = self._factory.wrapped.buildProtocol(self._addr)
        if inner is None:
            self.transport.loseConnection()
            return
        self._inner = inner
        inner.makeConnection(self.transport)
        buffered, self._buffer = self._buffer, []
        for data in buffered:
            inner.dataReceived(data)

    def _rejected(self, failure: Failure) -> None:
        self._factory.rejected += 1
        log.warn(
            "rejected connection from {peer}: {error}",
            peer=self.transport.getPeer(),
            error=failure.getErrorMessage(),
        )
        if not self._closed:
            self.transport.abortConnection()

    def dataReceived(self, data: bytes) -> None:  # noqa: N802
        if self._inner is not None:
            self._inner.dataReceived(data)
        else:
            self._buffer.append(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:  # noqa: N802
        self._closed = True
        if self._inner is not None:
            self._inner.connectionLost(reason)
        elif not self._handshake_done and reason.check(SSL.Error):
            self._factory.rejected += 1
            log.warn(
                "rejected connection from {peer}: TLS handshake failed: {error}",
                peer=self.transport.getPeer(),
                error=reason.getErrorMessage(),
            )


class GateFactory(Factory):
    """Wraps ``wrapped`` with the post-handshake checks ``info`` asks for."""

    def __init__(self, wrapped: Factory, info: TLSInfo, run: RunInThread | None = None) -> None:
        self.wrapped = wrapped
        self.info = info
        self.run: RunInThread = run or (
            lambda f, *args: threads.deferToThread(f, *args)  # type: ignore[no-untyped-call]
        )
        self.rejected = 0

    def doStart(self) -> None:  # noqa: N802
        self.wrapped.doStart()

    def doStop(self) -> None:  # noqa: N802
        self.wrapped.doStop()

    def buildProtocol(self, addr: IAddress) -> GateProtocol:  # noqa: N802
        return GateProtocol(self, addr)


def run_now(f: Callable[..., Any], *args: Any) -> Deferred[Any]:
    """Call ``f`` on the spot (tests, or checks known not to block)."""
    return maybeDeferred(f, *args)
