"""The client and peer ports' TLS settings from the configuration, as etcd's embed derives them.

``--auto-tls`` / ``--peer-auto-tls`` without certificate files generate a self-signed
certificate under ``DATA_DIR/fixtures/client`` or ``.../peer`` (see
`etcd_twisted.tls.selfcert`); as in etcd 3.5.1, a generated certificate replaces that
side's settings whole: no trusted CA, client certificate auth, CRL or allowed names.
"""

from __future__ import annotations

import datetime
import os

from twisted.logger import Logger

from etcd_twisted.config import Config
from etcd_twisted.tls.info import TLSInfo
from etcd_twisted.tls.selfcert import hosts_of, self_cert

log = Logger()


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _auto(config: Config, side: str, urls: list[str], now: datetime.datetime) -> TLSInfo:
    cert_file, key_file = self_cert(
        os.path.join(config.data_dir, "fixtures", side),
        hosts_of(urls),
        config.self_signed_cert_validity,
        now,
    )
    log.warn(
        "automatically generated {side} certificates in {cert_file}",
        side=side,
        cert_file=cert_file,
    )
    return TLSInfo(
        cert_file=cert_file,
        key_file=key_file,
        cipher_suites=config.cipher_suites,
        min_version=config.tls_min_version,
        max_version=config.tls_max_version,
        self_cert=True,
    )


def _warn_plain(urls: list[str], has_cert: bool, cert_auth: bool, flag: str, side: str) -> None:
    """etcd's warnings for plain URLs of a side that has TLS settings (they are unused)."""
    for url in urls:
        if url.startswith(("http:", "unix:")):
            if has_cert:
                log.warn(
                    "scheme is HTTP while key and cert files are present; ignoring key and "
                    "cert files ({side}-url {url})",
                    side=side,
                    url=url,
                )
            if cert_auth:
                log.warn(
                    "scheme is HTTP while --{flag} is enabled; ignoring client cert auth for "
                    "this URL ({side}-url {url})",
                    flag=flag,
                    side=side,
                    url=url,
                )


def client_tls_info(config: Config, now: datetime.datetime | None = None) -> TLSInfo:
    """The client port's TLS (empty when it has none)."""
    c = config
    if c.auto_tls:
        if not c.cert_file:
            return _auto(c, "client", c.listen_client_urls, now or _now())
        log.warn("ignoring client auto TLS since certs given")
    _warn_plain(
        c.listen_client_urls, bool(c.cert_file), c.client_cert_auth, "client-cert-auth", "client"
    )
    return TLSInfo(
        cert_file=c.cert_file,
        key_file=c.key_file,
        trusted_ca_file=c.trusted_ca_file,
        client_cert_auth=c.client_cert_auth,
        crl_file=c.client_crl_file,
        allowed_hostname=c.client_cert_allowed_hostname,
        cipher_suites=c.cipher_suites,
        min_version=c.tls_min_version,
        max_version=c.tls_max_version,
    )


def peer_tls_info(config: Config, now: datetime.datetime | None = None) -> TLSInfo:
    """The peer port's TLS, served and used to dial other members (empty when none)."""
    c = config
    if c.peer_auto_tls:
        if not c.peer_cert_file:
            return _auto(c, "peer", c.listen_peer_urls, now or _now())
        log.warn("ignoring peer auto TLS since certs given")
    _warn_plain(
        c.listen_peer_urls,
        bool(c.peer_cert_file),
        c.peer_client_cert_auth,
        "peer-client-cert-auth",
        "peer",
    )
    return TLSInfo(
        cert_file=c.peer_cert_file,
        key_file=c.peer_key_file,
        client_cert_file=c.peer_client_cert_file,
        client_key_file=c.peer_client_key_file,
        trusted_ca_file=c.peer_trusted_ca_file,
        client_cert_auth=c.peer_client_cert_auth,
        crl_file=c.peer_crl_file,
        allowed_cn=c.peer_cert_allowed_cn,
        allowed_hostname=c.peer_cert_allowed_hostname,
        check_san=not c.experimental_peer_skip_client_san_verification,
        cipher_suites=c.cipher_suites,
        min_version=c.tls_min_version,
        max_version=c.tls_max_version,
    )
