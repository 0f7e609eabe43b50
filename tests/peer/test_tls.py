"""Peer links over TLS (https peer URLs)."""

from __future__ import annotations

import datetime
import ipaddress
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from twisted.internet.defer import Deferred
from twisted.internet.ssl import Certificate, optionsForClientTLS
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import TestCase

from etcd_twisted._pb import raft_pb2
from etcd_twisted.backend.backend import Backend
from etcd_twisted.listen import ListeningService, server_endpoint, server_tls
from etcd_twisted.peer.http import PeerApi
from etcd_twisted.tls.context import client_tls
from etcd_twisted.tls.gate import run_now
from etcd_twisted.tls.info import TLSInfo
from tests.peer.fakes import app
from tests.peer.loopback import LoopbackMember, reactor, wait_for
from tests.support.certs import CA, Leaf


def self_signed(directory: str) -> tuple[str, str]:
    """A certificate for 127.0.0.1 and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    os.makedirs(directory)
    cert_file, key_file = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    with open(cert_file, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_file, "wb") as f:
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return cert_file, key_file


class TLSTests(TestCase):
    timeout = 30

    def test_https_peer_urls(self) -> Deferred[None]:
        """Members with https peer URLs open TLS streams and exchange messages."""
        cert_file, key_file = self_signed(self.mktemp())
        with open(cert_file, "rb") as f:
            trust = Certificate.loadPEM(f.read())

        def client_tls(host: str) -> object:
            return optionsForClientTLS(host, trustRoot=trust)

        async def run() -> None:
            members = []
            for member_id in (1, 2):
                m = LoopbackMember(member_id, self.mktemp(), client_tls=client_tls)
                m.listening = ListeningService(
                    "peer",
                    m.transport.server_factory(PeerApi().site()),
                    [
                        server_endpoint(
                            reactor,
                            "https://127.0.0.1:0",
                            server_tls(TLSInfo(cert_file=cert_file, key_file=key_file)),
                        )
                    ],
                )
                await m.start()
                m.url = m.url.replace("http://", "https://")
                self.addCleanup(lambda m=m: Deferred.fromCoroutine(m.stop()))
                members.append(m)
            a, b = members
            a.transport.add_peer(2, [b.url])
            b.transport.add_peer(1, [a.url])
            await wait_for(lambda: a.transport.is_active(2) and b.transport.is_active(1))
            a.transport.send([app(2, 1, 1)])
            b.transport.send([app(1, 2, 2)])
            await wait_for(lambda: len(a.received) == 1 and len(b.received) == 1)
            self.assertEqual((a.received[0].index, b.received[0].index), (2, 1))

        return Deferred.fromCoroutine(run())


class MutualTLSTests(TestCase):
    """Peer links as etcd runs them: client certificates, allowed CN, SAN, snapshots."""

    timeout = 60

    async def member(self, member_id: int, leaf: Leaf, ca: CA, **server: object) -> LoopbackMember:
        info = TLSInfo(
            cert_file=leaf.cert_file,
            key_file=leaf.key_file,
            trusted_ca_file=ca.cert_file,
            client_cert_auth=True,
            check_san=True,
            **server,  # type: ignore[arg-type]
        )
        m = LoopbackMember(member_id, self.mktemp(), client_tls=lambda host: client_tls(info, host))
        m.listening = ListeningService(
            "peer",
            m.transport.server_factory(PeerApi().site()),
            [
                server_endpoint(
                    reactor, "https://127.0.0.1:0", server_tls(info, (b"http/1.1",)), run_now
                )
            ],
        )
        await m.start()
        m.url = m.url.replace("http://", "https://")
        self.addCleanup(lambda: Deferred.fromCoroutine(m.stop()))
        return m

    def test_messages_and_snapshot(self) -> Deferred[None]:
        """With client certificates required both ways, messages and a snapshot arrive."""

        async def run() -> None:
            ca = CA.create(self.mktemp())
            peer = ca.issue("peer", cn="etcd-peer")
            a = await self.member(1, peer, ca, allowed_cn="etcd-peer")
            b = await self.member(2, peer, ca, allowed_cn="etcd-peer")
            a.transport.add_peer(2, [b.url])
            b.transport.add_peer(1, [a.url])
            await wait_for(lambda: a.transport.is_active(2) and b.transport.is_active(1))
            a.transport.send([app(2, 1, 1)])
            await wait_for(lambda: len(b.received) == 1)
            be = Backend(os.path.join(self.mktemp(), "db"))
            self.addCleanup(be.close)
            for i in range(200):
                be.batch_tx.put(b"key", b"k%04d" % i, b"v" * 100)
            expected = b"".join(be.snapshot().chunks())
            a.db = be.snapshot()
            a.transport.send(
                [
                    raft_pb2.Message(
                        type=raft_pb2.MsgSnap,
                        to=2,
                        from_=1,
                        term=2,
                        snapshot=raft_pb2.Snapshot(
                            metadata=raft_pb2.SnapshotMetadata(index=9, term=2)
                        ),
                    )
                ]
            )
            await wait_for(lambda: a.snapshot_status == [(2, True)])
            with open(b.snapshots[0][1], "rb") as f:
                self.assertEqual(f.read(), expected)

        return Deferred.fromCoroutine(run())

    def test_disallowed_cn_never_links(self) -> Deferred[None]:
        """A member whose certificate has another CN cannot open a stream to the other."""

        async def run() -> None:
            ca = CA.create(self.mktemp())
            a = await self.member(1, ca.issue("peer", cn="etcd-peer"), ca, allowed_cn="etcd-peer")
            b = await self.member(2, ca.issue("intruder", cn="intruder"), ca)
            rejected: list[dict[str, object]] = []

            def observe(event: dict[str, object]) -> None:
                if "rejected connection" in str(event.get("log_format", "")):
                    rejected.append(event)

            globalLogPublisher.addObserver(observe)
            self.addCleanup(globalLogPublisher.removeObserver, observe)
            b.transport.add_peer(1, [a.url])
            await wait_for(lambda: rejected)  # a refused b's certificate at the handshake
            self.assertEqual(rejected[0]["cn"], "intruder")
            self.assertFalse(b.transport.is_active(1))

        return Deferred.fromCoroutine(run())
