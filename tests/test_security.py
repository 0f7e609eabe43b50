"""The client and peer ports' TLS settings derived from the configuration (security.py)."""

from __future__ import annotations

import datetime
import os

from twisted.logger import capturedLogs, formatEvent
from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted.config import parse
from etcd_twisted.security import client_tls_info, peer_tls_info

NOW = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


class SecurityTests(SynchronousTestCase):
    def test_plain(self) -> None:
        """Without certificates neither side speaks TLS."""
        c = parse([], {})
        self.assertTrue(client_tls_info(c).empty)
        self.assertTrue(peer_tls_info(c).empty)

    def test_client_flags(self) -> None:
        """The client side takes the client flags and the shared TLS flags."""
        c = parse(
            [
                "--cert-file", "c.pem", "--key-file", "k.pem", "--trusted-ca-file", "ca.pem",
                "--client-cert-auth", "--client-crl-file", "x.crl",
                "--client-cert-allowed-hostname", "h", "--cipher-suites",
                "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "--tls-max-version", "TLS1.3",
            ],
            {},
        )  # fmt: skip
        info = client_tls_info(c)
        self.assertEqual(
            (info.cert_file, info.trusted_ca_file, info.crl_file), ("c.pem", "ca.pem", "x.crl")
        )
        self.assertEqual((info.allowed_hostname, info.max_version), ("h", "TLS1.3"))
        self.assertFalse(info.check_san)
        self.assertTrue(info.client_cert_auth)

    def test_peer_flags(self) -> None:
        """The peer side checks the client SAN unless told to skip it."""
        c = parse(
            [
                "--peer-cert-file",
                "p.pem",
                "--peer-key-file",
                "pk.pem",
                "--peer-cert-allowed-cn",
                "m",
            ],
            {},
        )
        info = peer_tls_info(c)
        self.assertEqual((info.cert_file, info.allowed_cn, info.check_san), ("p.pem", "m", True))
        skip = parse(
            [
                "--peer-cert-file",
                "p",
                "--peer-key-file",
                "k",
                "--experimental-peer-skip-client-san-verification",
            ],
            {},
        )
        self.assertFalse(peer_tls_info(skip).check_san)

    def test_auto_tls(self) -> None:
        """--auto-tls / --peer-auto-tls generate certificates under DATA_DIR/fixtures; a
        generated certificate is not verified by dialers and asks for no client cert."""
        data_dir = self.mktemp()
        c = parse(
            [
                "--data-dir", data_dir, "--auto-tls", "--peer-auto-tls",
                "--listen-client-urls", "https://127.0.0.1:2379",
                "--listen-peer-urls", "https://127.0.0.1:2380", "--peer-client-cert-auth",
            ],
            {},
        )  # fmt: skip
        client, peer = client_tls_info(c, NOW), peer_tls_info(c, NOW)
        self.assertEqual(
            client.cert_file,
            os.path.abspath(os.path.join(data_dir, "fixtures", "client", "cert.pem")),
        )
        self.assertEqual(
            peer.key_file, os.path.abspath(os.path.join(data_dir, "fixtures", "peer", "key.pem"))
        )
        self.assertTrue(os.path.exists(peer.cert_file))
        self.assertTrue(client.self_cert and peer.self_cert)
        self.assertFalse(peer.requires_client_cert)

    def test_auto_tls_with_certificates(self) -> None:
        """Given certificates win over --auto-tls (etcd ignores it with a warning)."""
        c = parse(
            ["--data-dir", self.mktemp(), "--auto-tls", "--cert-file", "c", "--key-file", "k"], {}
        )
        info = client_tls_info(c)
        self.assertEqual((info.cert_file, info.self_cert), ("c", False))


class PlainUrlWarningTests(SynchronousTestCase):
    def test_certificates_on_plain_urls(self) -> None:
        """Certificates given for http URLs are unused, and etcd's warning says so."""
        c = parse(["--cert-file", "c", "--key-file", "k", "--client-cert-auth"], {})
        with capturedLogs() as events:
            client_tls_info(c)
        texts = [formatEvent(e) for e in events]
        self.assertTrue(any("ignoring key and cert files" in t for t in texts), texts)
        self.assertTrue(any("--client-cert-auth is enabled" in t for t in texts), texts)
