"""One side's TLS settings (client port or peer port), as etcd's ``transport.TLSInfo``."""

from __future__ import annotations

import dataclasses

#: ``--tls-min-version`` / ``--tls-max-version`` values (etcd 3.5.10+; "" lets the server pick).
TLS_VERSIONS = ("TLS1.2", "TLS1.3")


def parse_tls_version(raw: str) -> str:
    """A ``--tls-*-version`` value: "", TLS1.2 or TLS1.3 (etcd's error otherwise)."""
    if raw not in ("", *TLS_VERSIONS):
        raise ValueError(f'unexpected TLS version "{raw}" (must be one of: TLS1.2, TLS1.3)')
    return raw


@dataclasses.dataclass(frozen=True)
class TLSInfo:
    """What to serve and check on one port, and what to present when dialing from it.

    ``trusted_ca_file`` or ``client_cert_auth`` makes a client certificate mandatory
    (as etcd 3.5's ``ServerConfig`` does). ``allowed_cn`` / ``allowed_hostname`` must
    match the client certificate; ``crl_file`` lists revoked serials; ``check_san``
    (the peer port, unless ``--experimental-peer-skip-client-san-verification``) wants
    the client certificate's SAN to name the address it connects from. ``self_cert``
    (``--auto-tls``) marks a generated certificate: dialers then skip verifying the
    server, as etcd does.
    """

    cert_file: str = ""
    key_file: str = ""
    client_cert_file: str = ""
    client_key_file: str = ""
    trusted_ca_file: str = ""
    client_cert_auth: bool = False
    crl_file: str = ""
    allowed_cn: str = ""
    allowed_hostname: str = ""
    check_san: bool = False
    cipher_suites: tuple[str, ...] = ()
    min_version: str = "TLS1.2"
    max_version: str = ""
    self_cert: bool = False

    @property
    def empty(self) -> bool:
        """No certificate: this side does not speak TLS."""
        return not self.cert_file and not self.key_file

    @property
    def requires_client_cert(self) -> bool:
        return bool(self.trusted_ca_file) or self.client_cert_auth

    def replace(self, **changes: object) -> TLSInfo:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]
