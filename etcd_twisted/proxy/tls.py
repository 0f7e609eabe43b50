"""TLS for the grpc-proxy: to the members (``--cert``, ``--key``, ``--cacert``,
``--insecure-skip-tls-verify``) and to its clients (``--cert-file``, ``--key-file``,
``--trusted-ca-file``, which then requires client certificates signed by that CA, and
``--client-crl-file``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from OpenSSL import SSL
from twisted.internet import ssl

from etcd_twisted.listen import ListenError, server_tls
from etcd_twisted.tls.context import ServerTLS
from etcd_twisted.tls.info import TLSInfo

__all__ = ["client_side_tls", "member_tls"]


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise ListenError(f"cannot read TLS file {e.filename}: {e.strerror}") from None


def member_tls(
    cert: str, key: str, cacert: str, insecure_skip_verify: bool
) -> Callable[[str], Any] | None:
    """Client TLS to the members (ALPN ``h2``, as gRPC requires), or None for plain h2c.

    Verifies the member's certificate against ``cacert`` (the system's roots without it)
    for the host dialled, unless ``insecure_skip_verify``; presents ``cert``/``key`` if given.
    """
    if not (cert or key or cacert or insecure_skip_verify):
        return None
    client_cert = None
    if cert or key:
        client_cert = ssl.PrivateCertificate.loadPEM(_read(cert) + b"\n" + _read(key))
    trust = ssl.Certificate.loadPEM(_read(cacert)) if cacert else None

    def creator(host: str) -> Any:
        if insecure_skip_verify:
            options = ssl.CertificateOptions(
                privateKey=client_cert.privateKey.original if client_cert else None,
                certificate=client_cert.original if client_cert else None,
                verify=False,
                acceptableProtocols=[b"h2"],
            )
            return _Unverified(options)
        return ssl.optionsForClientTLS(
            host, trustRoot=trust, clientCertificate=client_cert, acceptableProtocols=[b"h2"]
        )

    return creator


class _Unverified:
    """A client connection creator that checks nothing (``--insecure-skip-tls-verify``)."""

    def __init__(self, options: ssl.CertificateOptions) -> None:
        self._options = options

    def clientConnectionForTLS(self, protocol: Any) -> SSL.Connection:  # noqa: N802
        connection = SSL.Connection(self._options.getContext(), None)
        connection.set_app_data(protocol)
        return connection


def client_side_tls(
    cert_file: str, key_file: str, trusted_ca_file: str, crl_file: str = ""
) -> ServerTLS | None:
    """Server TLS for the proxy's clients, or None without ``--cert-file``."""
    if not cert_file:
        return None
    info = TLSInfo(
        cert_file=cert_file, key_file=key_file, trusted_ca_file=trusted_ca_file, crl_file=crl_file
    )
    return server_tls(info)
