"""Certificates made in the test (a CA, server/client leaves, a CRL), never committed."""

from __future__ import annotations

import datetime
import ipaddress
import os
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_DAY = datetime.timedelta(days=1)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _write_key(path: str, key: ec.EllipticCurvePrivateKey) -> None:
    with open(path, "wb") as f:
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )


@dataclass
class Leaf:
    """An issued certificate: its files and serial."""

    cert_file: str
    key_file: str
    serial: int


@dataclass
class CA:
    """A test certificate authority in ``directory`` (``ca.pem``)."""

    directory: str
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate
    cert_file: str
    _serial: int = 100

    @classmethod
    def create(cls, directory: str, name: str = "etcd-twisted test CA") -> CA:
        os.makedirs(directory, exist_ok=True)
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(1)
            .not_valid_before(_now() - _DAY)
            .not_valid_after(_now() + _DAY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                critical=True,
            )
            .sign(key, hashes.SHA256())
        )
        cert_file = os.path.join(directory, "ca.pem")
        with open(cert_file, "wb") as f:
            f.write(cert.public_bytes(serialization.Encoding.PEM))
        return cls(directory, key, cert, cert_file)

    def issue(
        self,
        name: str,
        cn: str = "",
        ips: Iterable[str] = ("127.0.0.1",),
        dns: Iterable[str] = ("localhost",),
    ) -> Leaf:
        """A leaf for server and client authentication, written as ``name.pem``/``name-key.pem``."""
        self._serial += 1
        key = ec.generate_private_key(ec.SECP256R1())
        attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "etcd-twisted tests")]
        if cn:
            attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
        sans: list[x509.GeneralName] = [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
        sans += [x509.DNSName(d) for d in dns]
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name(attrs))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(self._serial)
            .not_valid_before(_now() - _DAY)
            .not_valid_after(_now() + _DAY)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        cert_file = os.path.join(self.directory, f"{name}.pem")
        key_file = os.path.join(self.directory, f"{name}-key.pem")
        with open(cert_file, "wb") as f:
            f.write(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(key_file, key)
        return Leaf(cert_file, key_file, self._serial)

    def crl(self, name: str, serials: Iterable[int]) -> str:
        """A PEM CRL revoking ``serials``, written as ``name.crl``."""
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.cert.subject)
            .last_update(_now() - _DAY)
            .next_update(_now() + _DAY)
        )
        for serial in serials:
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder()
                .serial_number(serial)
                .revocation_date(_now() - _DAY)
                .build()
            )
        path = os.path.join(self.directory, f"{name}.crl")
        with open(path, "wb") as f:
            f.write(
                builder.sign(self.key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)
            )
        return path
