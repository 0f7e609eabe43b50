"""TLS on both ports with real clients: etcdctl over mTLS, curl over HTTP/2 and HTTP/1.1,
a 3-member cluster whose members talk TLS to each other, and --auto-tls (issue 15).

The same flags run against real etcd 3.5.1 where its answers are compared. Certificates
are made in the test (``tests.support.certs``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass

import grpc
from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import SkipTest, TestCase

from etcd_twisted._pb import rpc_pb2, rpc_pb2_grpc
from etcd_twisted.testing import free_ports
from tests.support.certs import CA, Leaf
from tests.support.processes import Completed, ServerProcess, binary, etcdctl

CURL = shutil.which("curl")


@dataclass
class Node:
    """One member with https client and peer URLs."""

    name: str
    client_port: int
    peer_port: int
    data_dir: str

    @property
    def client_url(self) -> str:
        return f"https://127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"https://127.0.0.1:{self.peer_port}"


@dataclass
class Pki:
    """The test's CA, the members' certificates and a client's."""

    ca: CA
    server: Leaf
    peer: Leaf
    client: Leaf
    revoked: Leaf
    crl: str

    @classmethod
    def create(cls, directory: str) -> Pki:
        ca = CA.create(directory)
        revoked = ca.issue("revoked", cn="mallory")
        return cls(
            ca,
            ca.issue("server"),
            ca.issue("peer", cn="etcd-peer"),
            ca.issue("client", cn="root"),
            revoked,
            ca.crl("client", [revoked.serial]),
        )

    def client_flags(self, leaf: Leaf | None = None) -> list[str]:
        """etcdctl's TLS flags for ``leaf`` (the good client by default)."""
        leaf = leaf or self.client
        return ["--cacert", self.ca.cert_file, "--cert", leaf.cert_file, "--key", leaf.key_file]

    def server_flags(self) -> list[str]:
        """Both ports with TLS and client certificates required, as production etcd runs."""
        return [
            "--cert-file", self.server.cert_file, "--key-file", self.server.key_file,
            "--trusted-ca-file", self.ca.cert_file, "--client-cert-auth",
            "--client-crl-file", self.crl,
            "--peer-cert-file", self.peer.cert_file, "--peer-key-file", self.peer.key_file,
            "--peer-trusted-ca-file", self.ca.cert_file, "--peer-client-cert-auth",
            "--peer-cert-allowed-cn", "etcd-peer",
        ]  # fmt: skip


def start(
    case: TestCase, base: str, n: int, ours: bool, extra: Sequence[str]
) -> tuple[list[Node], list[ServerProcess]]:
    """Start ``n`` members with https URLs; their processes are stopped in the cleanup."""
    os.makedirs(base, exist_ok=True)
    ports = free_ports(2 * n)
    nodes = [
        Node(f"m{i + 1}", ports[2 * i], ports[2 * i + 1], os.path.join(base, f"m{i + 1}.etcd"))
        for i in range(n)
    ]
    initial = ",".join(f"{m.name}={m.peer_url}" for m in nodes)
    processes = []
    for node in nodes:
        argv = [binary("twistd"), "--nodaemon", "--pidfile=", "etcd"] if ours else [binary("etcd")]
        argv += [
            "--name", node.name, "--data-dir", node.data_dir,
            "--listen-client-urls", node.client_url, "--advertise-client-urls", node.client_url,
            "--listen-peer-urls", node.peer_url, "--initial-advertise-peer-urls", node.peer_url,
            "--initial-cluster", initial, *extra,
        ]  # fmt: skip
        kind = "ours" if ours else "etcd"
        process = ServerProcess(argv, os.path.join(base, f"{kind}-{node.name}.log"))
        process.start()
        case.addCleanup(process.stop)
        processes.append(process)
    return nodes, processes


async def wait_healthy(
    endpoints: str, flags: Sequence[str], processes: Sequence[ServerProcess], timeout: float = 60
) -> None:
    """Poll ``etcdctl endpoint health`` until every endpoint is healthy."""
    deadline = reactor.seconds() + timeout
    result = None
    while reactor.seconds() < deadline:
        for p in processes:
            if not p.running:
                raise AssertionError(f"a member exited:\n{p.output()[-3000:]}")
        result = await etcdctl(endpoints, *flags, "endpoint", "health", timeout=3)
        if result.code == 0:
            return
        await deferLater(reactor, 0.3, lambda: None)
    outputs = "\n".join(p.output()[-1500:] for p in processes)
    raise AssertionError(f"not healthy: {result}\n{outputs}")


async def curl(*args: str) -> Completed:
    out, err, code = await getProcessOutputAndValue(
        CURL, ["-s", "--max-time", "10", *args], env=os.environ
    )
    return Completed(code, out.decode(errors="replace"), err.decode(errors="replace"))


def normalise(text: str) -> str:
    """Output with the ids and ports that differ between clusters replaced."""
    text = re.sub(r"\b[0-9a-f]{16}\b", "ID", text)
    text = re.sub(r'"(cluster_id|member_id|raft_term)":"\d+"', r'"\1":"N"', text)
    return re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:PORT", text)


class TLSClusterTests(TestCase):
    timeout = 240

    async def sequence(self, ours: bool, pki: Pki) -> dict[str, str]:
        """Start 3 members with TLS on both ports and run the client sequence."""
        base = os.path.join(self.mktemp(), "ours" if ours else "etcd")
        nodes, processes = start(self, base, 3, ours, pki.server_flags())
        endpoints = ",".join(n.client_url for n in nodes)
        flags = pki.client_flags()
        await wait_healthy(endpoints, flags, processes)
        first = nodes[0].client_url
        results: dict[str, str] = {}
        put = await etcdctl(endpoints, *flags, "put", "tls-key", "tls-value")
        results["put"] = put.out
        get = await etcdctl(nodes[2].client_url, *flags, "get", "tls-key")
        results["get"] = get.out
        members = await etcdctl(first, *flags, "member", "list", "-w", "json")
        listed = json.loads(members.out)["members"]
        results["member urls"] = str(sorted(len(m["peerURLs"]) for m in listed))
        results["peer schemes"] = str(
            sorted({u.split(":")[0] for m in listed for u in m["peerURLs"]})
        )
        no_cert = await etcdctl(first, "--cacert", pki.ca.cert_file, "get", "tls-key", timeout=3)
        results["no client cert"] = "refused" if no_cert.code != 0 else "accepted"
        revoked = await etcdctl(first, *pki.client_flags(pki.revoked), "get", "tls-key", timeout=3)
        results["revoked client cert"] = "refused" if revoked.code != 0 else "accepted"
        if CURL:
            tls = ["--cacert", pki.ca.cert_file, "--cert", pki.client.cert_file]
            tls += ["--key", pki.client.key_file, "-w", " %{http_code} %{http_version}"]
            for version in ("--http2", "--http1.1"):
                for path in ("/version", "/health", "/metrics"):
                    answer = await curl(version, *tls, "-o", "/dev/null", first + path)
                    results[f"curl {version} {path}"] = answer.out
                answer = await curl(
                    version,
                    *tls,
                    "-X",
                    "POST",
                    "-d",
                    '{"key":"dGxzLWtleQ=="}',
                    first + "/v3/kv/range",
                )
                results[f"curl {version} range"] = normalise(answer.out)
        return results

    def test_three_members_tls_both_ports(self) -> Deferred[None]:
        """A 3-member cluster with TLS and client certificates on both ports serves
        etcdctl and curl (HTTP/2 and HTTP/1.1) as etcd 3.5.1 does with the same flags."""

        async def run() -> None:
            pki = Pki.create(self.mktemp())
            ours, etcd = await gatherResults(
                [
                    Deferred.fromCoroutine(self.sequence(True, pki)),
                    Deferred.fromCoroutine(self.sequence(False, pki)),
                ],
                consumeErrors=True,
            )
            print(
                "\n[tls] ours:",
                json.dumps(ours, indent=1),
                "\n[tls] etcd:",
                json.dumps(etcd, indent=1),
            )
            self.assertEqual(ours["get"], "tls-key\ntls-value\n")
            self.assertEqual(ours["peer schemes"], "['https']")
            self.assertEqual(ours["member urls"], "[1, 1, 1]")
            self.assertEqual(ours["no client cert"], "refused")
            self.assertEqual(ours["revoked client cert"], "refused")
            if CURL:
                self.assertEqual(ours["curl --http2 /version"], " 200 2")
                self.assertIn('"kvs":[{"key":"dGxzLWtleQ=="', ours["curl --http2 range"])
            self.assertEqual(ours, etcd)

        return Deferred.fromCoroutine(run())

    def test_peer_with_wrong_cn_cannot_join(self) -> Deferred[None]:
        """--peer-cert-allowed-cn: a member whose peer certificate has another CN is
        refused by the others, so a 2-member cluster with one such member never has a leader."""

        async def run() -> None:
            pki = Pki.create(self.mktemp())
            intruder = pki.ca.issue("intruder", cn="intruder")
            base = self.mktemp()
            os.makedirs(base)
            ports = free_ports(4)
            # Member 2 presents the intruder's certificate as its peer certificate.
            flags = pki.server_flags()
            bad = list(flags)
            bad[bad.index(pki.peer.cert_file)] = intruder.cert_file
            bad[bad.index(pki.peer.key_file)] = intruder.key_file
            nodes = [
                Node("m1", ports[0], ports[1], os.path.join(base, "m1.etcd")),
                Node("m2", ports[2], ports[3], os.path.join(base, "m2.etcd")),
            ]
            initial = ",".join(f"{m.name}={m.peer_url}" for m in nodes)
            processes = []
            for node, extra in zip(nodes, (flags, bad), strict=True):
                argv = [binary("twistd"), "--nodaemon", "--pidfile=", "etcd"]
                argv += [
                    "--name", node.name, "--data-dir", node.data_dir,
                    "--listen-client-urls", node.client_url,
                    "--advertise-client-urls", node.client_url,
                    "--listen-peer-urls", node.peer_url,
                    "--initial-advertise-peer-urls", node.peer_url,
                    "--initial-cluster", initial, *extra,
                ]  # fmt: skip
                process = ServerProcess(argv, os.path.join(base, f"{node.name}.log"))
                process.start()
                self.addCleanup(process.stop)
                processes.append(process)
            deadline = reactor.seconds() + 30
            while "rejected connection" not in processes[0].output():
                self.assertLess(reactor.seconds(), deadline, processes[0].output()[-3000:])
                await deferLater(reactor, 0.2, lambda: None)
            health = await etcdctl(
                nodes[0].client_url, *pki.client_flags(), "endpoint", "health", timeout=3
            )
            self.assertNotEqual(health.code, 0)

        return Deferred.fromCoroutine(run())


class AutoTLSTests(TestCase):
    timeout = 120

    def test_auto_tls_both_ports(self) -> Deferred[None]:
        """--auto-tls and --peer-auto-tls: a member serves etcdctl over TLS with generated
        certificates (clients skip verification, as with etcd) kept under fixtures/."""

        async def run() -> None:
            base = self.mktemp()
            nodes, processes = start(self, base, 1, True, ["--auto-tls", "--peer-auto-tls"])
            flags = ["--insecure-skip-tls-verify", "--insecure-transport=false"]
            await wait_healthy(nodes[0].client_url, flags, processes)
            put = await etcdctl(nodes[0].client_url, *flags, "put", "a", "1")
            self.assertEqual(put.out, "OK\n")
            for side in ("client", "peer"):
                for name in ("cert.pem", "key.pem"):
                    path = os.path.join(nodes[0].data_dir, "fixtures", side, name)
                    self.assertTrue(os.path.exists(path), path)
            verified = await etcdctl(nodes[0].client_url, "get", "a", timeout=3)
            self.assertNotEqual(verified.code, 0)  # self-signed: a verifying client refuses

        return Deferred.fromCoroutine(run())


class PlaintextHttp2Tests(TestCase):
    timeout = 60

    def test_h2c_prior_knowledge(self) -> Deferred[None]:
        """curl --http2-prior-knowledge reaches /version and the gateway on a plain port
        (etcd 3.5.1 resets those streams: its plain port sends all HTTP/2 to gRPC)."""
        if CURL is None:
            raise SkipTest("curl is not installed")

        async def run() -> None:
            from tests.support.processes import our_server, start_member

            member, _ = await start_member(self, our_server, self.mktemp())
            url = member.client_url
            version = await curl(
                "--http2-prior-knowledge", "-w", " %{http_code} %{http_version}", url + "/version"
            )
            self.assertEqual(version.out, '{"etcdserver":"3.5.1","etcdcluster":"3.5.0"} 200 2')
            put = await curl(
                "--http2-prior-knowledge",
                "-X",
                "POST",
                "-d",
                '{"key":"YQ==","value":"Yg=="}',
                url + "/v3/kv/put",
            )
            self.assertIn('"header"', put.out)
            got = await curl(
                "--http2-prior-knowledge",
                "-X",
                "POST",
                "-d",
                '{"key":"YQ=="}',
                url + "/v3/kv/range",
            )
            self.assertIn('"value":"Yg=="', got.out)
            watch = curl(
                "--http2-prior-knowledge", "-N", "--max-time", "3", "-X", "POST",
                "-d", '{"create_request":{"key":"YQ==","start_revision":"3"}}', url + "/v3/watch",
            )  # fmt: skip
            await deferLater(reactor, 1.0, lambda: None)
            await curl(
                "--http2-prior-knowledge",
                "-X",
                "POST",
                "-d",
                '{"key":"YQ==","value":"Yw=="}',
                url + "/v3/kv/put",
            )
            lines = (await watch).out.splitlines()
            self.assertEqual(len(lines), 2, lines)
            self.assertIn('"created":true', lines[0])
            self.assertIn('"value":"Yw=="', lines[1])

        return Deferred.fromCoroutine(run())


class GrpcioTLSTests(TestCase):
    timeout = 90

    def test_grpcio_mtls(self) -> Deferred[None]:
        """grpcio with ``ssl_channel_credentials`` (ALPN h2, client certificate) puts and
        reads a key; without a client certificate the channel cannot connect."""

        async def run() -> None:
            pki = Pki.create(self.mktemp())
            nodes, processes = start(self, self.mktemp(), 1, True, pki.server_flags())
            await wait_healthy(nodes[0].client_url, pki.client_flags(), processes)
            target = f"127.0.0.1:{nodes[0].client_port}"

            def read(path: str) -> bytes:
                with open(path, "rb") as f:
                    return f.read()

            root = read(pki.ca.cert_file)

            def with_cert() -> bytes:
                creds = grpc.ssl_channel_credentials(
                    root, read(pki.client.key_file), read(pki.client.cert_file)
                )
                with grpc.secure_channel(target, creds) as channel:
                    kv = rpc_pb2_grpc.KVStub(channel)
                    kv.Put(rpc_pb2.PutRequest(key=b"g", value=b"tls"), timeout=10)
                    return kv.Range(rpc_pb2.RangeRequest(key=b"g"), timeout=10).kvs[0].value

            def without_cert() -> grpc.StatusCode:
                creds = grpc.ssl_channel_credentials(root)
                with grpc.secure_channel(target, creds) as channel:
                    try:
                        rpc_pb2_grpc.KVStub(channel).Range(
                            rpc_pb2.RangeRequest(key=b"g"), timeout=3
                        )
                    except grpc.RpcError as e:
                        return e.code()
                return grpc.StatusCode.OK

            self.assertEqual(await deferToThread(with_cert), b"tls")
            self.assertEqual(await deferToThread(without_cert), grpc.StatusCode.UNAVAILABLE)

        return Deferred.fromCoroutine(run())
