"""etcd_twisted.api.unary: a unary handler answers as the call does, now or later,
with the response header filled and errors mapped to etcd's statuses."""

from __future__ import annotations

import datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from OpenSSL.crypto import X509
from twisted.internet.defer import Deferred, fail, succeed
from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted._pb import rpc_pb2
from etcd_twisted.api.unary import common_name_of, unary
from etcd_twisted.grpc import GrpcError, Metadata, StatusCode
from etcd_twisted.server.errors import NoLeaderError
from tests.api.fake_server import FakeServer


class Ctx:
    def __init__(self, cert: Any = None, **metadata: str) -> None:
        self.metadata = Metadata(metadata.items())
        self.cert = cert

    def peer_certificate(self) -> Any:
        return self.cert


def certificate(*names: str) -> X509:
    """A self-signed certificate whose subject has these CNs."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, n) for n in names])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return X509.from_cryptography(cert)


def answer(call: Any, **kw: Any) -> Any:
    return unary(FakeServer(), call, **kw)(rpc_pb2.RangeRequest(key=b"a"), Ctx(token="ann"))


class UnaryHandlerTests(SynchronousTestCase):
    def test_value_now(self) -> None:
        """A call answering at once is answered at once, its header filled."""
        response = answer(lambda request: rpc_pb2.RangeResponse())
        self.assertEqual((response.header.cluster_id, response.header.raft_term), (11, 3))

    def test_error_now(self) -> None:
        """A call raising at once raises etcd's status at once."""

        def refuse(request: Any) -> Any:
            raise NoLeaderError()

        error = self.assertRaises(GrpcError, answer, refuse)
        self.assertEqual(error.code, StatusCode.UNAVAILABLE)

    def test_later(self) -> None:
        """A Deferred answer (or failure) fires with the filled response (or the status)."""
        pending: Deferred[Any] = Deferred()
        d = answer(lambda request: pending)
        pending.callback(rpc_pb2.RangeResponse())
        self.assertEqual(self.successResultOf(d).header.member_id, 22)
        failed = answer(lambda request: fail(NoLeaderError()))
        self.assertEqual(self.failureResultOf(failed, GrpcError).value.code, StatusCode.UNAVAILABLE)

    def test_coroutine(self) -> None:
        """An ``async`` call's result is the answer, as maybeDeferred would have it."""

        async def call(request: Any) -> Any:
            return await succeed(rpc_pb2.RangeResponse())

        self.assertEqual(self.successResultOf(answer(call)).header.cluster_id, 11)

    def test_auth(self) -> None:
        """With auth, the call gets the token's credentials; a dead token is refused."""
        seen = []

        def call(request: Any, info: Any) -> Any:
            seen.append(info)
            return rpc_pb2.RangeResponse()

        self.assertEqual(answer(call, auth=True).header.cluster_id, 11)
        self.assertEqual(seen, ["ann"])
        handler = unary(FakeServer(), call, auth=True)
        error = self.assertRaises(GrpcError, handler, rpc_pb2.RangeRequest(), Ctx(token="bad"))
        self.assertEqual(error.code, StatusCode.UNAUTHENTICATED)

    def test_auth_waits(self) -> None:
        """A token whose credentials come later (not applied here yet) delays the call."""
        server = FakeServer()
        later: Deferred[Any] = Deferred()
        server.auth_frontend.auth_info = lambda token, cn: later  # type: ignore[method-assign]
        handler = unary(
            server, lambda request, info: rpc_pb2.RangeResponse(count=len(info)), auth=True
        )
        d = handler(rpc_pb2.RangeRequest(), Ctx(token="ann"))
        self.assertNoResult(d)
        later.callback("bob")
        self.assertEqual(self.successResultOf(d).count, 3)


class CommonNameTests(SynchronousTestCase):
    def test_common_name(self) -> None:
        """The CN of the client's certificate (the last, as Go's pkix.Name); "" without
        a CN; None without a certificate or from etcd's gateway (grpcgateway-accept)."""
        self.assertEqual(common_name_of(Ctx(certificate("alice"))), "alice")
        self.assertEqual(common_name_of(Ctx(certificate("a", "b"))), "b")
        self.assertEqual(common_name_of(Ctx(certificate())), "")
        self.assertIsNone(common_name_of(Ctx()))
        gateway = Ctx(certificate("alice"), **{"grpcgateway-accept": "application/json"})
        self.assertIsNone(common_name_of(gateway))
