"""Auth that moves between real etcd 3.5.1 and ours, and what ours refuses that 3.5.1 allowed.

* bcrypt: a password hash real etcd stored verifies here;
* JWT: with the same key files, a token either server issues is accepted by the other
  (same auth revision), RS256 tokens are byte-identical, and bad tokens fail alike;
* mTLS: with ``--client-cert-auth``, auth on and no ``--user``, the certificate's CN
  is the user for etcdctl (gRPC), and not for the JSON gateway, on both servers;
* the holes of 3.5.1: what etcd 3.5.1 lets a reader do and ours refuses.

Certificates and keys are made in the test (``cryptography``) under its temporary
directory; nothing secret is committed.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import os
import re
import ssl
import threading
from http.client import HTTPSConnection
from typing import Any

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from twisted.internet import reactor, threads
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from etcd_twisted._pb import rpc_pb2, rpc_pb2_grpc
from etcd_twisted.auth.jwt_tokens import JWTTokens
from etcd_twisted.auth.password import check_password
from etcd_twisted.testing import free_ports, server_argv
from tests.integration.test_etcdctl_kv import normalise
from tests.support.processes import (
    Completed,
    ServerProcess,
    etcdctl,
    new_member,
    our_server,
    real_etcd,
    start_member,
    start_pair,
)

ROOT = "--user=root:pw"


async def enable_root(endpoint: str, *tls: str) -> None:
    """root:pw with role root, auth enabled (four auth revisions, on either server)."""
    for args in (
        ("user", "add", "root:pw"),
        ("role", "add", "root"),
        ("user", "grant-role", "root", "root"),
        ("auth", "enable"),
    ):
        result = await etcdctl(endpoint, *tls, *args)
        assert result.code == 0, (args, result)


def _grpc(call: Any, request: Any, token: str | None = None) -> Deferred[Any]:
    """A grpcio call on a thread, with the token as etcd's ``token`` metadata; fires
    with the response or ``(code name, details)``."""

    def run() -> Any:
        try:
            metadata = [("token", token)] if token else None
            return call(request, metadata=metadata, timeout=10)
        except grpc.RpcError as e:
            return e.code().name, e.details()

    return threads.deferToThread(run)


class Client:
    """grpcio stubs on one server."""

    def __init__(self, url: str) -> None:
        self.channel = grpc.insecure_channel(url.removeprefix("http://"))
        self.kv = rpc_pb2_grpc.KVStub(self.channel)
        self.auth = rpc_pb2_grpc.AuthStub(self.channel)
        self.lease = rpc_pb2_grpc.LeaseStub(self.channel)
        self.maintenance = rpc_pb2_grpc.MaintenanceStub(self.channel)
        self.watch = rpc_pb2_grpc.WatchStub(self.channel)

    async def token(self, name: str = "root", password: str = "pw") -> str:
        request = rpc_pb2.AuthenticateRequest(name=name, password=password)
        response = await _grpc(self.auth.Authenticate, request)
        assert not isinstance(response, tuple), response
        return response.token

    def put(self, key: bytes, token: str | None) -> Deferred[Any]:
        return _grpc(self.kv.Put, rpc_pb2.PutRequest(key=key, value=b"v"), token)


def outcome(response: Any) -> Any:
    """An error as ``(code, details)``, a success as "OK"."""
    return response if isinstance(response, tuple) else "OK"


class BcryptInteropTests(TestCase):
    timeout = 60

    async def test_etcd_hash_verifies_here(self) -> None:
        """The hash real etcd 3.5.1 stores for a user (read from its bbolt file) is a
        $2a$10$ bcrypt hash that our check accepts for the password, and only for it."""
        base = self.mktemp()
        member, process = await start_member(self, real_etcd, base)
        result = await etcdctl(member.client_url, "user", "add", "alice:s3cret pass")
        self.assertEqual(result.code, 0, result)
        await process.stop()
        with open(os.path.join(member.data_dir, "member", "snap", "db"), "rb") as f:
            db = f.read()
        # authpb.User{name: "alice", password: <60-byte hash>} as bbolt stores the value.
        found = re.search(rb"\x0a\x05alice\x12\x3c(\$2a\$\d\d\$[./A-Za-z0-9]{53})", db)
        self.assertIsNotNone(found, "no bcrypt hash for alice in etcd's db")
        hashed = found.group(1)
        self.assertTrue(hashed.startswith(b"$2a$10$"))
        self.assertTrue(check_password(hashed, "s3cret pass"))
        self.assertFalse(check_password(hashed, "s3cret"))


def _write_rsa_keys(directory: str) -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return _write_pair(directory, key)


def _write_pair(directory: str, key: Any) -> tuple[str, str]:
    os.makedirs(directory, exist_ok=True)
    priv, pub = os.path.join(directory, "priv.pem"), os.path.join(directory, "pub.pem")
    with open(priv, "wb") as f:
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    with open(pub, "wb") as f:
        f.write(
            key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
    return priv, pub


def _claims(token: str) -> tuple[bytes, dict[str, Any]]:
    header, claims, _ = token.split(".")
    decode = lambda s: base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))  # noqa: E731
    return decode(header), json.loads(decode(claims))


class JWTInteropTests(TestCase):
    timeout = 120

    async def pair(self, flag: str) -> tuple[Client, Client]:
        """Real etcd and ours with ``--auth-token flag``, root enabled on both."""
        (etcd, _), (ours, _) = await start_pair(self, self.mktemp(), ["--auth-token", flag])
        await gatherResults(
            [
                Deferred.fromCoroutine(enable_root(etcd.client_url)),
                Deferred.fromCoroutine(enable_root(ours.client_url)),
            ]
        )
        clients = Client(etcd.client_url), Client(ours.client_url)
        for client in clients:
            self.addCleanup(client.channel.close)
        return clients

    async def test_rs256_tokens_interchange(self) -> None:
        """RS256: each server accepts the other's token; etcd's token is exactly the one
        ours signs for the same claims; bad and stale tokens fail alike on both."""
        priv, pub = _write_rsa_keys(self.mktemp())
        flag = f"jwt,pub-key={pub},priv-key={priv},sign-method=RS256,ttl=10m"
        etcd, ours = await self.pair(flag)
        etcd_token, our_token = await etcd.token(), await ours.token()
        header, claims = _claims(etcd_token)
        our_header, our_claims = _claims(our_token)
        self.assertEqual(header, b'{"alg":"RS256","typ":"JWT"}')
        self.assertEqual(our_header, header)
        self.assertEqual(sorted(claims), ["exp", "revision", "username"])
        self.assertEqual(sorted(our_claims), sorted(claims))
        self.assertEqual(
            (our_claims["username"], our_claims["revision"]), ("root", claims["revision"])
        )
        with open(priv, "rb") as f1, open(pub, "rb") as f2:
            files = {"p": f1.read(), "q": f2.read()}
        signer = JWTTokens.from_options(
            {"sign-method": "RS256", "priv-key": "p", "pub-key": "q", "ttl": "10m"},
            files.__getitem__,
        )
        remade = signer.assign("root", claims["revision"], "", 0, claims["exp"] - 600)
        self.assertEqual(remade, etcd_token)
        self.assertEqual(outcome(await ours.put(b"a", etcd_token)), "OK")
        self.assertEqual(outcome(await etcd.put(b"a", our_token)), "OK")
        forged = etcd_token[:-4] + ("AAAA" if not etcd_token.endswith("AAAA") else "BBBB")
        for bad in ("abc.def.ghi", forged, "aBcDeFgHiJkLmNoP.5"):
            want = outcome(await etcd.put(b"a", bad))
            self.assertEqual(want, ("UNAUTHENTICATED", "etcdserver: invalid auth token"))
            self.assertEqual(outcome(await ours.put(b"a", bad)), want, bad)
        for client in (etcd, ours):
            response = await _grpc(
                client.auth.RoleAdd, rpc_pb2.AuthRoleAddRequest(name="r"), etcd_token
            )
            self.assertEqual(outcome(response), "OK")
        want = outcome(await etcd.put(b"a", etcd_token))
        self.assertEqual(want, ("UNKNOWN", "auth: revision in header is old"))
        self.assertEqual(outcome(await ours.put(b"a", etcd_token)), want)

    async def test_other_methods_interchange(self) -> None:
        """PS384, ES256 and HS512 tokens pass from etcd to ours and back."""
        base = self.mktemp()
        ec_priv, ec_pub = _write_pair(
            os.path.join(base, "ec"), ec.generate_private_key(ec.SECP256R1())
        )
        rsa_priv, rsa_pub = _write_rsa_keys(os.path.join(base, "rsa"))
        secret = os.path.join(base, "secret")
        with open(secret, "wb") as f:
            f.write(os.urandom(64))
        for flag in (
            f"jwt,pub-key={rsa_pub},priv-key={rsa_priv},sign-method=PS384",
            f"jwt,pub-key={ec_pub},priv-key={ec_priv},sign-method=ES256",
            f"jwt,priv-key={secret},sign-method=HS512",
        ):
            etcd, ours = await self.pair(flag)
            etcd_token, our_token = await etcd.token(), await ours.token()
            self.assertEqual(_claims(etcd_token)[0], _claims(our_token)[0], flag)
            self.assertEqual(outcome(await ours.put(b"a", etcd_token)), "OK", flag)
            self.assertEqual(outcome(await etcd.put(b"a", our_token)), "OK", flag)

    async def test_verify_only(self) -> None:
        """With only a public key, Authenticate fails alike on both servers, and a token
        signed elsewhere with the private key is accepted by both."""
        priv, pub = _write_rsa_keys(self.mktemp())
        etcd, ours = await self.pair(f"jwt,pub-key={pub},sign-method=RS256")
        request = rpc_pb2.AuthenticateRequest(name="root", password="pw")
        want = outcome(await _grpc(etcd.auth.Authenticate, request))
        self.assertEqual(want, ("UNKNOWN", "auth: token signing attempted with verify-only key"))
        self.assertEqual(outcome(await _grpc(ours.auth.Authenticate, request)), want)
        with open(priv, "rb") as f:
            signer = JWTTokens.from_options(
                {"sign-method": "RS256", "priv-key": "k"}, {"k": f.read()}.__getitem__
            )
        token = signer.assign("root", 4, "", 0, reactor.seconds())  # revision after setup
        for client in (etcd, ours):
            self.assertEqual(outcome(await client.put(b"a", token)), "OK")

    async def test_etcdctl_over_jwt(self) -> None:
        """etcdctl with --user works the same against both when tokens are JWTs."""
        priv, pub = _write_rsa_keys(self.mktemp())
        flag = f"jwt,pub-key={pub},priv-key={priv},sign-method=RS512"
        (etcd, _), (ours, _) = await start_pair(self, self.mktemp(), ["--auth-token", flag])
        urls = [etcd.client_url, ours.client_url]
        for url in urls:
            await enable_root(url)
        for args in (
            (ROOT, "put", "k", "v"),
            (ROOT, "get", "k"),
            (ROOT, "user", "add", "u:p"),
            ("--user=u:p", "get", "k"),
            ("--user=u:bad", "get", "k"),
            (ROOT, "auth", "status"),
        ):
            want = normalise(await etcdctl(etcd.client_url, *args), urls)
            got = normalise(await etcdctl(ours.client_url, *args), urls)
            self.assertEqual(got, want, args)

    async def test_bad_flags_refused(self) -> None:
        """An unknown token type or a JWT without a key stops ours as it stops etcd,
        with etcd's error text."""
        base = self.mktemp()
        for flag, text in (
            ("foo", "auth: invalid auth options"),
            ("jwt,sign-method=RS256", "auth: missing key data"),
            ("jwt,sign-method=XX1", "auth: invalid auth options"),
        ):
            for factory in (real_etcd, our_server):
                directory = os.path.join(base, flag.replace(",", "_"), factory.__name__)
                member = new_member(directory, "m")
                process = factory(member, directory, ["--auth-token", flag])
                process.start()
                code = await _ended(process, 30)
                self.assertEqual(code, 1, (flag, factory, process.output()[-2000:]))
                self.assertIn(text, process.output(), (flag, factory))


async def _ended(process: ServerProcess, timeout: float) -> int | None:
    """The exit code of a process expected to exit by itself (killed after ``timeout``)."""
    timer = reactor.callLater(timeout, process.signal, 9)
    code = await process.child.ended(reactor)
    if timer.active():
        timer.cancel()
    return code


# --- mutual TLS


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(
    subject: str, key: Any, issuer: tuple[x509.Name, Any] | None, *, ca: bool = False
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    issuer_name, issuer_key = issuer if issuer else (_name(subject), key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=2))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        usage = x509.KeyUsage(False, False, False, False, False, True, True, False, False)
        builder = builder.add_extension(usage, critical=True)
    else:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        ).add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


class Certs:
    """A CA, a server certificate for 127.0.0.1, and client certificates by CN."""

    def __init__(self, directory: str) -> None:
        os.makedirs(directory)
        self.directory = directory
        self.ca_key = ec.generate_private_key(ec.SECP256R1())
        self.ca = _cert("test-ca", self.ca_key, None, ca=True)
        self.ca_file = self._write("ca.pem", self.ca.public_bytes(serialization.Encoding.PEM))
        self.server = self.issue("server")

    def _write(self, name: str, data: bytes) -> str:
        path = os.path.join(self.directory, name)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def issue(self, cn: str) -> tuple[str, str]:
        """``(cert file, key file)`` for a certificate with Subject CN ``cn``."""
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _cert(cn, key, (self.ca.subject, self.ca_key))
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return (
            self._write(f"{cn}.pem", cert.public_bytes(serialization.Encoding.PEM)),
            self._write(f"{cn}-key.pem", pem),
        )

    def client_flags(self, cn: str) -> list[str]:
        cert, key = self.issue(cn)
        return [f"--cacert={self.ca_file}", f"--cert={cert}", f"--key={key}"]

    def server_flags(self) -> list[str]:
        cert, key = self.server
        return [
            "--cert-file", cert,
            "--key-file", key,
            "--trusted-ca-file", self.ca_file,
            "--client-cert-auth",
        ]  # fmt: skip


async def _start_tls(case: TestCase, kind: str, base: str, certs: Certs) -> str:
    """A member (``kind`` "etcd" or "ours") on an https client URL with client-cert
    auth; returns the URL once etcdctl finds it healthy."""
    client_port, peer_port = free_ports(2)
    url, peer = f"https://127.0.0.1:{client_port}", f"http://127.0.0.1:{peer_port}"
    os.makedirs(base, exist_ok=True)
    flags = [
        "--name", "m",
        "--data-dir", os.path.join(base, "m.etcd"),
        "--listen-client-urls", url,
        "--advertise-client-urls", url,
        "--listen-peer-urls", peer,
        "--initial-advertise-peer-urls", peer,
        "--initial-cluster", f"m={peer}",
        *certs.server_flags(),
    ]  # fmt: skip
    process = ServerProcess(server_argv(kind, flags), os.path.join(base, f"{kind}.log"))
    process.start()
    case.addCleanup(process.stop)
    tls = certs.client_flags("root")
    deadline = reactor.seconds() + 30
    while reactor.seconds() < deadline:
        result = await etcdctl(url, *tls, "endpoint", "health", timeout=2)
        if result.code == 0:
            return url
        if not process.running:
            break
        await deferLater(reactor, 0.2, lambda: None)
    raise AssertionError(f"{url} not healthy: {process.output()[-3000:]}")


def _grpcio_puts(url: str, certs: Certs, cn: str, keys: list[bytes]) -> list[Any]:
    """Puts through grpcio over mTLS with a client certificate of ``cn`` and no token."""
    cert, key = certs.issue(cn)
    with open(certs.ca_file, "rb") as ca, open(cert, "rb") as c, open(key, "rb") as k:
        credentials = grpc.ssl_channel_credentials(ca.read(), k.read(), c.read())
    channel = grpc.secure_channel(url.removeprefix("https://"), credentials)
    try:
        stub = rpc_pb2_grpc.KVStub(channel)
        results: list[Any] = []
        for name in keys:
            try:
                stub.Put(rpc_pb2.PutRequest(key=name, value=b"v"), timeout=10)
                results.append("OK")
            except grpc.RpcError as e:
                results.append((e.code().name, e.details()))
        return results
    finally:
        channel.close()


def _gateway_put(url: str, certs: Certs, cn: str, key: str) -> tuple[int, dict]:
    """POST /v3/kv/put over HTTPS/1.1 with a client certificate of ``cn`` and no token."""
    context = ssl.create_default_context(cafile=certs.ca_file)
    cert, keyfile = certs.issue(cn)
    context.load_cert_chain(cert, keyfile)
    host, port = url.removeprefix("https://").split(":")
    connection = HTTPSConnection(host, int(port), context=context, timeout=10)
    body = json.dumps({"key": base64.b64encode(key.encode()).decode(), "value": "dg=="})
    try:
        connection.request("POST", "/v3/kv/put", body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        raw = response.read()
        return response.status, json.loads(raw) if raw.startswith(b"{") else {"raw": raw.decode()}
    finally:
        connection.close()


class CommonNameTests(TestCase):
    timeout = 120

    async def test_cn_is_the_user(self) -> None:
        """Auth on, cert CN=alice, no --user: etcdctl put a/1 is allowed and put b/1
        denied, as on etcd 3.5.1, for etcdctl and grpcio alike; the JSON gateway refuses
        a certificate with a CN (400, etcd's text) rather than ignore it."""
        base = self.mktemp()
        certs = Certs(os.path.join(base, "certs"))
        urls = await gatherResults(
            [
                Deferred.fromCoroutine(_start_tls(self, "etcd", os.path.join(base, "etcd"), certs)),
                Deferred.fromCoroutine(_start_tls(self, "ours", os.path.join(base, "ours"), certs)),
            ]
        )
        root_tls = certs.client_flags("root")
        alice_tls = certs.client_flags("alice")
        for url in urls:
            await enable_root(url, *root_tls)
            for args in (
                ("role", "add", "writer"),
                ("role", "grant-permission", "writer", "readwrite", "a/", "--prefix"),
                ("user", "add", "alice:apw"),
                ("user", "grant-role", "alice", "writer"),
            ):
                result = await etcdctl(url, *root_tls, *args)  # CN=root is root
                self.assertEqual(result.code, 0, (url, args, result))
        results: list[list[Completed]] = []
        for url in urls:
            results.append(
                [
                    await etcdctl(url, *alice_tls, "put", "a/1", "x"),
                    await etcdctl(url, *alice_tls, "put", "b/1", "x"),
                    await etcdctl(url, *alice_tls, "get", "a/1", "--print-value-only"),
                    await etcdctl(url, *certs.client_flags("nobody"), "get", "a/1"),
                ]
            )
        etcd, ours = ([normalise(r, list(urls))[:2] for r in rs] for rs in results)
        self.assertEqual(ours, etcd)
        self.assertEqual(ours[0], (0, "OK\n"))
        self.assertEqual(results[1][1].code, 1)
        self.assertIn("etcdserver: permission denied", results[1][1].err)
        self.assertEqual(ours[2], (0, "x\n"))
        grpcio = [
            await threads.deferToThread(_grpcio_puts, url, certs, "alice", [b"a/3", b"b/3"])
            for url in urls
        ]
        self.assertEqual(grpcio[1], grpcio[0])
        self.assertEqual(grpcio[1], ["OK", ("PERMISSION_DENIED", "etcdserver: permission denied")])
        gateway = [
            await threads.deferToThread(_gateway_put, url, certs, "alice", "a/2") for url in urls
        ]
        self.assertEqual(gateway[1], gateway[0])
        self.assertEqual(
            gateway[1],
            (
                400,
                {
                    "raw": "CommonName of client sending a request against gateway will be"
                    " ignored and not used as expected\n"
                },
            ),
        )


def _watch_once(client: Client, token: str, key: bytes, range_end: bytes, then: Any) -> list:
    """Create a watch with ``token``; after its first response run ``then()`` and read
    one more response (at most 5 s). Returns the responses, or ``(code, details)``."""
    done = threading.Event()

    def requests() -> Any:
        create = rpc_pb2.WatchCreateRequest(key=key, range_end=range_end)
        yield rpc_pb2.WatchRequest(create_request=create)
        done.wait(10)

    stream = client.watch.Watch(requests(), metadata=[("token", token)], timeout=5)
    seen: list[Any] = []
    try:
        for response in stream:
            seen.append(response)
            if len(seen) == 1 and response.created and not response.canceled:
                then()
                continue
            break
    except grpc.RpcError as e:
        if e.code() != grpc.StatusCode.DEADLINE_EXCEEDED:
            return [(e.code().name, e.details())]
    finally:
        done.set()
        stream.cancel()
    return seen


class ClosedHolesTests(TestCase):
    """What etcd 3.5.1 lets a reader of ``pub/`` do, and ours refuses (as later etcd)."""

    timeout = 120

    async def setUp(self) -> None:
        (etcd, _), (ours, _) = await start_pair(self, self.mktemp())
        self.urls = [etcd.client_url, ours.client_url]
        self.clients = [Client(url) for url in self.urls]
        for client in self.clients:
            self.addCleanup(client.channel.close)
        for url in self.urls:
            await enable_root(url)
            for args in (
                ("role", "add", "reader"),
                ("role", "grant-permission", "reader", "read", "pub/", "--prefix"),
                ("user", "add", "u:p"),
                ("user", "grant-role", "u", "reader"),
                ("put", "pub/a", "1"),
            ):
                result = await etcdctl(url, ROOT, *args)
                self.assertEqual(result.code, 0, (args, result))

    async def both(self, *args: str) -> list[tuple[int, str, str]]:
        return [
            (r.code, r.out, r.err.splitlines()[-1] if r.err else "")
            for r in [await etcdctl(url, *args) for url in self.urls]
        ]

    async def test_lease_keys(self) -> None:
        """lease timetolive --keys: 3.5.1 shows a reader the key secret/x; ours denies."""
        leases = []
        for url in self.urls:
            out = (await etcdctl(url, ROOT, "lease", "grant", "100")).out
            lease = out.split()[1]
            leases.append(lease)
            await etcdctl(url, ROOT, "put", "secret/x", "v", f"--lease={lease}")
        results = [
            await etcdctl(url, "--user=u:p", "lease", "timetolive", lease, "--keys")
            for url, lease in zip(self.urls, leases, strict=True)
        ]
        self.assertEqual(results[0].code, 0)
        self.assertIn("attached keys([secret/x])", results[0].out)
        self.assertNotEqual(results[1].code, 0)
        self.assertIn("etcdserver: permission denied", results[1].err)

    async def test_compaction(self) -> None:
        """compaction: 3.5.1 lets a reader compact; ours needs root."""
        etcd, ours = await self.both("--user=u:p", "compaction", "2")
        self.assertEqual(etcd[:2], (0, "compacted revision 2\n"))
        self.assertEqual(ours[0], 1)
        self.assertIn("etcdserver: permission denied", ours[2])
        result = await etcdctl(self.urls[1], ROOT, "compaction", "2")
        self.assertEqual((result.code, result.out), (0, "compacted revision 2\n"))

    async def test_alarm(self) -> None:
        """NOSPACE raised by a reader: 3.5.1 takes it (every write then fails); ours
        denies it, and disarming too."""
        request = rpc_pb2.AlarmRequest(action=rpc_pb2.AlarmRequest.ACTIVATE, alarm=rpc_pb2.NOSPACE)
        outcomes = []
        for client in self.clients:
            token = await client.token("u", "p")
            outcomes.append(outcome(await _grpc(client.maintenance.Alarm, request, token)))
        self.assertEqual(outcomes, ["OK", ("PERMISSION_DENIED", "etcdserver: permission denied")])
        etcd, ours = await self.both(ROOT, "put", "k", "v")
        self.assertIn("database space exceeded", etcd[2])
        self.assertEqual(ours[:2], (0, "OK\n"))
        root = await self.clients[1].token()
        response = await _grpc(self.clients[1].maintenance.Alarm, request, root)
        self.assertEqual(outcome(response), "OK")
        etcd, ours = await self.both("--user=u:p", "alarm", "disarm")
        self.assertEqual(etcd[0], 0)
        self.assertIn("etcdserver: permission denied", ours[2])
        etcd, ours = await self.both(ROOT, "alarm", "list")
        self.assertEqual(etcd[1], "")  # the reader disarmed etcd 3.5.1
        self.assertIn("alarm:NOSPACE", ours[1])

    async def test_from_key_watch(self) -> None:
        """A reader of pub/ watching from pub/ with range end "\\0": 3.5.1 sends it the
        event of secret/x; ours refuses the watch."""
        results = []
        for client, url in zip(self.clients, self.urls, strict=True):
            token = await client.token("u", "p")
            put = lambda url=url: threads.blockingCallFromThread(  # noqa: E731
                reactor, lambda: Deferred.fromCoroutine(etcdctl(url, ROOT, "put", "secret/x", "s"))
            )
            results.append(
                await threads.deferToThread(_watch_once, client, token, b"pub/", b"\0", put)
            )
        etcd, ours = results
        self.assertEqual([e.kv.key for e in etcd[1].events], [b"secret/x"])
        self.assertEqual(len(ours), 1)
        self.assertTrue(ours[0].canceled)
        self.assertEqual(  # etcd's text for a refused watch (a gRPC status string)
            ours[0].cancel_reason,
            "rpc error: code = PermissionDenied desc = etcdserver: permission denied",
        )
