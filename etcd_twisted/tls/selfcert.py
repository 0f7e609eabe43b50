"""Self-signed certificates for ``--auto-tls`` and ``--peer-auto-tls``, as etcd makes them.

etcd 3.5.1's ``transport.SelfCert`` writes ``cert.pem`` and ``key.pem`` (an ECDSA P-521
key, PEM "EC PRIVATE KEY", mode 0600) into ``DATA_DIR/fixtures/client`` or ``.../peer``
and reuses them when both exist. The certificate is self-signed, subject ``O=etcd``, a
random 128-bit serial, valid from now for ``--self-signed-cert-validity`` years of 365
days, for server authentication, with the listen URLs' hosts as IP or DNS SANs.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import secrets
from collections.abc import Iterable
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def hosts_of(urls: Iterable[str]) -> list[str]:
    """The host part of each listen URL, as etcd passes them to ``SelfCert``."""
    return [urlsplit(url).hostname or "" for url in urls]


def self_cert(
    directory: str, hosts: Iterable[str], validity_years: int, now: datetime.datetime
) -> tuple[str, str]:
    """The paths of ``cert.pem`` and ``key.pem`` in ``directory``, made if missing."""
    if validity_years <= 0:
        raise ValueError("selfSignedCertValidity is invalid,it should be greater than 0")
    os.makedirs(directory, mode=0o700, exist_ok=True)
    cert_path = os.path.abspath(os.path.join(directory, "cert.pem"))
    key_path = os.path.abspath(os.path.join(directory, "key.pem"))
    if os.path.exists(cert_path) and os.path.exists(key_path):
        return cert_path, key_path
    addresses: list[x509.GeneralName] = []
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            addresses.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    key = ec.generate_private_key(ec.SECP521R1())
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "etcd")])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(secrets.randbits(128) or 1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=365 * validity_years))
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=True,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    )
    if addresses or names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(addresses + names), critical=False
        )
    cert = builder.sign(key, hashes.SHA256())
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    descriptor = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as f:
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption(),
            )
        )
    return cert_path, key_path
