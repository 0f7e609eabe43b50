"""OpenSSL contexts from a `TLSInfo`: the server side of a listening port, and the client
side of a peer dialing another member.

The server side is etcd 3.5's ``TLSInfo.ServerConfig``: TLS 1.2 (up to 1.3 with
``--tls-max-version TLS1.3``), ``--cipher-suites`` for TLS 1.2, a client certificate
required and verified when a trusted CA or ``--client-cert-auth`` is given, the client
certificate's CN or hostname checked during the handshake when one is configured, and
ALPN (``h2``, ``http/1.1``). Certificate files are re-read when they change on disk, as
etcd reloads them per handshake, so rotated certificates take effect without a restart.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Sequence

from cryptography import x509
from cryptography.x509.oid import NameOID
from OpenSSL import SSL, crypto
from service_identity import CertificateError, VerificationError
from service_identity.cryptography import (
    verify_certificate_hostname,
    verify_certificate_ip_address,
)
from twisted.internet.interfaces import (
    IOpenSSLClientConnectionCreator,
    IOpenSSLServerConnectionCreator,
)
from twisted.internet.ssl import (
    AcceptableCiphers,
    Certificate,
    CertificateOptions,
    PrivateCertificate,
    TLSVersion,
    optionsForClientTLS,
    trustRootFromCertificates,
)
from twisted.logger import Logger
from zope.interface import implementer

from etcd_twisted.tls.ciphers import openssl_cipher_list
from etcd_twisted.tls.info import TLSInfo

log = Logger()

_OPENSSL_VERSIONS = {"TLS1.2": SSL.TLS1_2_VERSION, "TLS1.3": SSL.TLS1_3_VERSION}
_TWISTED_VERSIONS = {"TLS1.2": TLSVersion.TLSv1_2, "TLS1.3": TLSVersion.TLSv1_3}


class TLSConfigError(Exception):
    """TLS files or settings that cannot be used; the message is one line."""


def _max_version(info: TLSInfo) -> str:
    """The highest version served: etcd 3.5.1 stops at TLS 1.2 unless told otherwise."""
    return info.max_version or "TLS1.2"


def common_name(cert: x509.Certificate) -> str:
    """The subject's CN as Go reads it (the last one), or ""."""
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    value = names[-1].value if names else ""
    return value if isinstance(value, str) else value.decode()


def matches_hostname(cert: x509.Certificate, hostname: str) -> bool:
    """Whether ``cert``'s SAN names ``hostname`` (an IP address or a DNS name), as Go's
    ``Certificate.VerifyHostname`` checks it."""
    try:
        try:
            address = ipaddress.ip_address(hostname.strip("[]"))
        except ValueError:
            verify_certificate_hostname(cert, hostname)
        else:
            verify_certificate_ip_address(cert, str(address))
    except (VerificationError, CertificateError):
        return False
    return True


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise TLSConfigError(f"open {path}: {(e.strerror or str(e)).lower()}") from None


def load_certificates(path: str) -> list[x509.Certificate]:
    """Every certificate in a PEM file."""
    try:
        return x509.load_pem_x509_certificates(_read(path))
    except ValueError:
        raise TLSConfigError(f"failed to parse certificates in {path}") from None


@implementer(IOpenSSLServerConnectionCreator)
class ServerTLS:
    """Builds server-side TLS connections for a port; re-reads the files when they change."""

    def __init__(self, info: TLSInfo, protocols: Sequence[bytes] = (b"h2", b"http/1.1")) -> None:
        if info.empty:
            raise TLSConfigError("KeyFile and CertFile must both be present")
        if info.allowed_cn and info.allowed_hostname:
            raise TLSConfigError(
                "AllowedCN and AllowedHostname are mutually exclusive "
                f'(cn="{info.allowed_cn}", hostname="{info.allowed_hostname}")'
            )
        self.info = info
        self.protocols = tuple(protocols)
        self._stamp = self._file_stamp()
        self.context = self._build()

    def _file_stamp(self) -> tuple[float, ...]:
        paths = (self.info.cert_file, self.info.key_file, self.info.trusted_ca_file)
        stamp = []
        for path in paths:
            try:
                stamp.append(os.stat(path).st_mtime if path else 0.0)
            except OSError:
                stamp.append(-1.0)
        return tuple(stamp)

    def _build(self) -> SSL.Context:
        info = self.info
        context = SSL.Context(SSL.TLS_METHOD)
        context.set_min_proto_version(_OPENSSL_VERSIONS[info.min_version or "TLS1.2"])
        context.set_max_proto_version(_OPENSSL_VERSIONS[_max_version(info)])
        context.set_options(SSL.OP_NO_COMPRESSION | SSL.OP_NO_TICKET)
        context.set_session_id(b"etcd-twisted")
        _read(info.cert_file)
        _read(info.key_file)
        try:
            context.use_certificate_chain_file(info.cert_file)
            context.use_privatekey_file(info.key_file)
            context.check_privatekey()
        except SSL.Error:
            raise TLSConfigError(
                f"tls: cannot use certificate {info.cert_file} with key {info.key_file}"
            ) from None
        if info.cipher_suites:
            suites = openssl_cipher_list(info.cipher_suites)
            try:
                context.set_cipher_list(suites.encode() if suites else b"")
            except SSL.Error:
                raise TLSConfigError(
                    f"no cipher suite of {','.join(info.cipher_suites)} is available"
                ) from None
        if info.requires_client_cert:
            if info.trusted_ca_file:
                load_certificates(info.trusted_ca_file)
                context.load_verify_locations(info.trusted_ca_file)
            else:
                context.set_default_verify_paths()
            context.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT, self._verify)
        protocols = self.protocols

        def select(connection: SSL.Connection, offered: list[bytes]) -> bytes | object:
            for protocol in protocols:
                if protocol in offered:
                    return protocol
            return SSL.NO_OVERLAPPING_PROTOCOLS

        if protocols:
            context.set_alpn_select_callback(select)
        return context

    def _verify(
        self, connection: SSL.Connection, cert: crypto.X509, errno: int, depth: int, ok: int
    ) -> bool:
        """OpenSSL's chain verdict, and at the leaf the CN or hostname etcd requires."""
        if not ok or depth != 0:
            return bool(ok)
        info = self.info
        if not info.allowed_cn and not info.allowed_hostname:
            return True
        leaf = cert.to_cryptography()
        if info.allowed_cn:
            allowed = common_name(leaf) == info.allowed_cn
        else:
            allowed = matches_hostname(leaf, info.allowed_hostname)
        if not allowed:
            log.warn(
                "rejected connection: client certificate authentication failed "
                "(CN {cn!r} does not match the allowed CN or hostname)",
                cn=common_name(leaf),
            )
        return allowed

    def serverConnectionForTLS(self, tlsProtocol: object) -> SSL.Connection:  # noqa: N802,N803
        stamp = self._file_stamp()
        if stamp != self._stamp:
            self._stamp = stamp
            try:
                self.context = self._build()
            except TLSConfigError as e:
                log.warn("keeping the previous TLS certificate: {error}", error=e)
        return SSL.Connection(self.context, None)


def client_tls(info: TLSInfo, hostname: str) -> IOpenSSLClientConnectionCreator:
    """The client side for dialing ``hostname`` (a peer): the peer certificate (or
    ``client_cert_file``) as client certificate, the server verified against the trusted
    CA (the system's without one) and its name checked, except for self-signed
    (``--peer-auto-tls``) certificates, which etcd does not verify."""
    extra: dict[str, object] = {
        "raiseMinimumTo": _TWISTED_VERSIONS[info.min_version or "TLS1.2"],
        "lowerMaximumSecurityTo": _TWISTED_VERSIONS[_max_version(info)],
    }
    if info.cipher_suites and openssl_cipher_list(info.cipher_suites):
        extra["acceptableCiphers"] = AcceptableCiphers.fromOpenSSLCipherString(
            openssl_cipher_list(info.cipher_suites)
        )
    cert_file = info.client_cert_file or info.cert_file
    key_file = info.client_key_file or info.key_file
    client_cert = None
    if cert_file and key_file:
        client_cert = PrivateCertificate.loadPEM(_read(cert_file) + b"\n" + _read(key_file))
    if info.self_cert:
        assert client_cert is not None
        return CertificateOptions(  # type: ignore[return-value]
            privateKey=client_cert.privateKey.original,
            certificate=client_cert.original,
            verify=False,
            **extra,
        )
    trust = None
    if info.trusted_ca_file:
        trust = trustRootFromCertificates(
            [
                Certificate(crypto.X509.from_cryptography(cert))
                for cert in load_certificates(info.trusted_ca_file)
            ]
        )
    return optionsForClientTLS(
        hostname,
        trustRoot=trust,
        clientCertificate=client_cert,
        extraCertificateOptions=extra,
    )
