"""Go cipher suite names for --cipher-suites, and their OpenSSL names."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted.tls.ciphers import GO_TO_OPENSSL, openssl_cipher_list, parse_cipher_suites


class CipherSuiteTests(SynchronousTestCase):
    def test_known_names(self) -> None:
        """Go's names (and etcd's two CHACHA20 aliases) are accepted, in order."""
        raw = "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305"
        self.assertEqual(
            parse_cipher_suites(raw),
            ("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305"),
        )

    def test_unknown_name(self) -> None:
        """An unknown name fails with etcd's message."""
        with self.assertRaises(ValueError) as caught:
            parse_cipher_suites("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,FOO")
        self.assertEqual(str(caught.exception), 'unexpected TLS cipher suite "FOO"')

    def test_openssl_names(self) -> None:
        """The OpenSSL list keeps the order, drops duplicates and TLS 1.3 suites."""
        names = (
            "TLS_AES_128_GCM_SHA256",
            "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
            "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
            "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305",
        )
        self.assertEqual(
            openssl_cipher_list(names), "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-CHACHA20-POLY1305"
        )

    def test_every_name_maps(self) -> None:
        """Every TLS 1.2 suite Go knows has an OpenSSL name."""
        for go, openssl in GO_TO_OPENSSL.items():
            self.assertEqual(openssl is None, go.startswith(("TLS_AES", "TLS_CHACHA")), go)
