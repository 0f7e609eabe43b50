"""--auto-tls certificates, made as etcd 3.5.1 makes them."""

from __future__ import annotations

import datetime
import ipaddress
import os
import stat

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted.tls.selfcert import hosts_of, self_cert

NOW = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)


class SelfCertTests(SynchronousTestCase):
    def make(self, years: int = 1) -> tuple[str, str]:
        hosts = hosts_of(["https://127.0.0.1:2379", "https://node1.example:2379"])
        return self_cert(os.path.join(self.mktemp(), "fixtures", "client"), hosts, years, NOW)

    def test_certificate(self) -> None:
        """Self-signed, O=etcd, server auth, the hosts as SANs, valid for years of 365 days."""
        cert_file, key_file = self.make(years=2)
        with open(cert_file, "rb") as f:
            cert = x509.load_pem_x509_certificate(f.read())
        self.assertEqual(cert.subject, cert.issuer)
        self.assertEqual(
            cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value, "etcd"
        )
        self.assertEqual(cert.not_valid_before_utc, NOW.replace(microsecond=0))
        self.assertEqual(cert.not_valid_after_utc - NOW, datetime.timedelta(days=730))
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        self.assertEqual(
            san.get_values_for_type(x509.IPAddress), [ipaddress.ip_address("127.0.0.1")]
        )
        self.assertEqual(san.get_values_for_type(x509.DNSName), ["node1.example"])
        usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        self.assertEqual(list(usage), [ExtendedKeyUsageOID.SERVER_AUTH])
        self.assertGreater(cert.serial_number, 0)

    def test_key(self) -> None:
        """An ECDSA P-521 key in an "EC PRIVATE KEY" PEM, readable by the owner only."""
        _, key_file = self.make()
        with open(key_file, "rb") as f:
            pem = f.read()
        self.assertTrue(pem.startswith(b"-----BEGIN EC PRIVATE KEY-----"))
        key = load_pem_private_key(pem, None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        self.assertEqual(key.curve.name, "secp521r1")
        self.assertEqual(stat.S_IMODE(os.stat(key_file).st_mode), 0o600)

    def test_reused(self) -> None:
        """Existing cert.pem and key.pem are used as they are."""
        directory = self.mktemp()
        first = self_cert(directory, ["127.0.0.1"], 1, NOW)
        with open(first[0], "rb") as f:
            before = f.read()
        second = self_cert(directory, ["127.0.0.1"], 1, NOW + datetime.timedelta(days=1))
        with open(second[0], "rb") as f:
            self.assertEqual(f.read(), before)
        self.assertEqual(first, second)

    def test_zero_validity(self) -> None:
        """A validity of 0 years is refused with etcd's message."""
        with self.assertRaises(ValueError) as caught:
            self_cert(self.mktemp(), [], 0, NOW)
        self.assertIn("selfSignedCertValidity is invalid", str(caught.exception))
