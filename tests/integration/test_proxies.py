"""The gateway and the grpc-proxy in front of 3-member clusters, ours and real etcd 3.5.1,
driven by real etcdctl: KV, txn, watch, lease and member list through each proxy, then
a member killed under them: clients see at most one failed attempt, and a watch
opened through the grpc-proxy before the kill goes on receiving events."""

from __future__ import annotations

import json
import os
import re
import signal
from collections.abc import Sequence

import treq
from twisted.internet import reactor
from twisted.internet.defer import succeed
from twisted.internet.task import deferLater
from twisted.names import dns, server
from twisted.trial.unittest import TestCase

from etcd_twisted.testing import free_ports
from tests.peer.test_tls import self_signed
from tests.proxy.test_discovery import SrvRecords
from tests.support.processes import (
    Cluster,
    Completed,
    ServerProcess,
    binary,
    etcdctl,
    etcdctl_input,
    new_member,
    real_etcd,
    spawn_etcdctl,
    start_cluster,
    start_member,
    wait_healthy,
    wait_until,
)


def _proxy_process(command: str, flags: Sequence[str], log_dir: str) -> ServerProcess:
    argv = [binary("twistd"), "--nodaemon", "--pidfile=", "etcd", command, "start", *flags]
    return ServerProcess(argv, os.path.join(log_dir, f"{command}.log"))


async def start_proxy(case: TestCase, command: str, cluster: Cluster, *extra: str) -> str:
    """Start ``twistd etcd <command> start`` in front of ``cluster``; its ``host:port``."""
    (port,) = free_ports(1)
    addr = f"127.0.0.1:{port}"
    flags = [f"--endpoints={cluster.endpoints}", f"--listen-addr={addr}", *extra]
    if command == "gateway":
        flags.append("--retry-delay=1s")
    process = _proxy_process(command, flags, cluster.base_dir)
    process.start()
    case.addCleanup(process.stop)
    # /health answers through either: the gateway relays it to a member.
    await wait_http_health(f"http://{addr}", process)
    return addr


async def wait_http_health(url: str, process: ServerProcess, timeout: float = 60.0) -> None:
    """Poll ``url/health`` until it answers 200 (a proxy serves no JSON gateway, so the
    test kit's readiness check does not apply)."""

    async def healthy() -> bool:
        if not process.running:
            raise AssertionError(f"{url} exited:\n{process.output()[-3000:]}")
        try:
            response = await treq.get(url + "/health", timeout=2, persistent=False)
            await response.content()
            return response.code == 200
        except Exception:  # noqa: BLE001 - not listening yet
            return False

    await wait_until(healthy, timeout, f"{url}/health")


async def retried(endpoint: str, *args: str, attempts: int = 2) -> Completed:
    """etcdctl, tried again once after a failure (a client's ordinary retry)."""
    result = await etcdctl(endpoint, *args, timeout=5)
    for _ in range(attempts - 1):
        if result.code == 0:
            break
        await deferLater(reactor, 0.5, lambda: None)
        result = await etcdctl(endpoint, *args, timeout=5)
    return result


class _ProxyScenarios:
    """The scenarios, run against a cluster of ours and one of real etcd."""

    ours = True
    timeout = 240

    async def check_etcdctl(self, case: TestCase, endpoint: str, label: str) -> None:
        """KV, txn, watch and lease through ``endpoint`` behave as on a member."""
        put = await etcdctl(endpoint, "put", f"{label}/k", "v1")
        case.assertEqual((put.code, put.out.strip()), (0, "OK"), put.err)
        got = await etcdctl(endpoint, "get", f"{label}/k", "--print-value-only")
        case.assertEqual(got.out.strip(), "v1")
        cached = await etcdctl(endpoint, "get", f"{label}/k", "--consistency=s", "-w", "json")
        case.assertEqual(json.loads(cached.out)["kvs"][0]["version"], 1)
        again = await etcdctl(endpoint, "get", f"{label}/k", "--consistency=s", "-w", "json")
        case.assertEqual(json.loads(again.out)["kvs"], json.loads(cached.out)["kvs"])
        txn = await etcdctl_input(
            endpoint,
            f'value("{label}/k") = "v1"\n\nput {label}/k v2\n\nput {label}/k other\n\n'.encode(),
            "txn",
        )
        case.assertEqual(txn.out.split(), ["SUCCESS", "OK"], txn.err)
        # The proxy's own write invalidated the cached serializable answer.
        fresh = await etcdctl(
            endpoint, "get", f"{label}/k", "--consistency=s", "--print-value-only"
        )
        case.assertEqual(fresh.out.strip(), "v2")

        watch = spawn_etcdctl(case, endpoint, "watch", f"{label}/w", "--prefix")
        await deferLater(reactor, 1.0, lambda: None)
        for i in range(3):
            await etcdctl(endpoint, "put", f"{label}/w{i}", str(i))
        await etcdctl(endpoint, "del", f"{label}/w0")
        await watch.wait_output(f"DELETE\n{label}/w0\n", timeout=10)
        await watch.stop()
        case.assertEqual(
            watch.stdout.split(),
            ["PUT", f"{label}/w0", "0", "PUT", f"{label}/w1", "1", "PUT", f"{label}/w2", "2",
             "DELETE", f"{label}/w0"],
        )  # fmt: skip

        grant = await etcdctl(endpoint, "lease", "grant", "60")
        lease = re.search(r"lease ([0-9a-f]+) granted", grant.out)
        case.assertIsNotNone(lease, grant.out + grant.err)
        lease_id = lease.group(1)  # type: ignore[union-attr]
        await etcdctl(endpoint, "put", f"{label}/leased", "x", f"--lease={lease_id}")
        kept = await etcdctl(endpoint, "lease", "keep-alive", "--once", lease_id)
        case.assertIn(f"lease {lease_id} keepalived with TTL(60)", kept.out, kept.err)
        ttl = await etcdctl(endpoint, "lease", "timetolive", lease_id, "--keys")
        case.assertIn(f"attached keys([{label}/leased])", ttl.out)
        revoke = await etcdctl(endpoint, "lease", "revoke", lease_id)
        case.assertIn("revoked", revoke.out)
        gone = await etcdctl(endpoint, "get", f"{label}/leased", "--print-value-only")
        case.assertEqual(gone.out.strip(), "")

    async def test_proxies(self) -> None:
        """Gateway and grpc-proxy serve etcdctl, and survive a member's death."""
        case: TestCase = self  # type: ignore[assignment]
        base = case.mktemp()
        cluster = await start_cluster(case, 3, base, ours=self.ours)
        gateway = await start_proxy(case, "gateway", cluster)
        proxy = await start_proxy(
            case, "grpc-proxy", cluster, f"--advertise-client-url=127.0.0.1:{free_ports(1)[0]}"
        )

        await self.check_etcdctl(case, gateway, "gw")
        members = await etcdctl(gateway, "member", "list", "-w", "json")
        case.assertEqual(len(json.loads(members.out)["members"]), 3)

        await self.check_etcdctl(case, proxy, "gp")
        own = await (await treq.get(f"http://{proxy}/proxy/metrics", persistent=False)).text()
        case.assertRegex(own, r"etcd_grpc_proxy_cache_hits_total [1-9]")
        relayed = await (await treq.get(f"http://{proxy}/metrics", persistent=False)).text()
        case.assertIn("etcd_server_has_leader 1", relayed)
        listed = await etcdctl(proxy, "member", "list", "-w", "json")
        case.assertEqual(len(json.loads(listed.out)["members"]), 1)

        # A watch through the grpc-proxy before the member it talks to dies.
        watch = spawn_etcdctl(case, proxy, "watch", "after")
        await deferLater(reactor, 1.0, lambda: None)
        # The proxies connect to the first endpoint first: kill that member.
        await cluster.processes[0].kill()
        for endpoint in (gateway, proxy):
            for i in range(3):
                put = await retried(endpoint, "put", "after", f"{endpoint}-{i}")
                case.assertEqual(put.code, 0, f"{endpoint}: {put.err}")
        got = await retried(proxy, "get", "after", "--print-value-only")
        case.assertEqual(got.out.strip(), f"{proxy}-2")
        await watch.wait_output(f"{proxy}-2", timeout=15)
        await watch.stop(signal.SIGINT)
        values = watch.stdout.split()[2::3]
        # Every write after the kill reached the watcher once, in order.
        case.assertEqual(values[-3:], [f"{proxy}-{i}" for i in range(3)])
        case.assertEqual(len(values), len(set(values)))


class OursTests(_ProxyScenarios, TestCase):
    """The proxies in front of our 3-member cluster."""

    ours = True


class EtcdTests(_ProxyScenarios, TestCase):
    """The proxies in front of real etcd 3.5.1's 3-member cluster."""

    ours = False


class ProxyOptionsTests(TestCase):
    """--namespace and --resolver-prefix, in front of one member of ours."""

    timeout = 120

    async def test_namespace_and_registration(self) -> None:
        """Keys written through a --namespace proxy live under the prefix on the member and
        come back without it; proxies sharing a --resolver-prefix list each other."""
        base = self.mktemp()
        cluster = await start_cluster(self, 1, base)
        member = cluster.members[0].client_url
        spaced = await start_proxy(self, "grpc-proxy", cluster, "--namespace=tenant/")
        put = await etcdctl(spaced, "put", "k", "v")
        self.assertEqual(put.code, 0, put.err)
        raw = await etcdctl(member, "get", "tenant/k", "--print-value-only")
        self.assertEqual(raw.out.strip(), "v")
        listed = await etcdctl(spaced, "get", "", "--prefix", "-w", "json")
        self.assertEqual([kv["key"] for kv in json.loads(listed.out)["kvs"]], ["aw=="])
        watch = spawn_etcdctl(self, spaced, "watch", "k")
        await deferLater(reactor, 1.0, lambda: None)
        await etcdctl(member, "put", "tenant/k", "v2")
        await watch.wait_output("PUT\nk\nv2\n")

        urls = []
        for _ in range(2):
            (port,) = free_ports(1)
            urls.append(f"127.0.0.1:{port}")
        proxies = [
            await start_proxy(
                self, "grpc-proxy", cluster, f"--advertise-client-url={url}",
                "--resolver-prefix=/proxies", "--resolver-ttl=10",
            )
            for url in urls
        ]  # fmt: skip

        async def both_listed() -> bool:
            result = await etcdctl(proxies[0], "member", "list", "-w", "json")
            found = [m["clientURLs"][0] for m in json.loads(result.out or "{}").get("members", [])]
            return sorted(found) == sorted(urls)

        await wait_until(both_listed, 15, "both proxies in member list")


class ProxyAuthTests(TestCase):
    """Auth through the grpc-proxy, in front of a member of ours and one of etcd 3.5.1."""

    timeout = 120

    async def test_auth_through_proxy(self) -> None:
        """Tokens reach the members through the proxy: a user's watch on a range it may
        not read is refused, one it may read gets its events."""
        for ours in (True, False):
            base = self.mktemp()
            cluster = await start_cluster(self, 1, base, ours=ours)
            proxy = await start_proxy(self, "grpc-proxy", cluster)
            root = "--user=root:pw"
            for args in (
                ("user", "add", "root:pw"), ("role", "add", "root"),
                ("user", "grant-role", "root", "root"), ("auth", "enable"),
                (root, "role", "add", "r1"),
                (root, "role", "grant-permission", "r1", "read", "k", "--prefix"),
                (root, "user", "add", "u1:p1"), (root, "user", "grant-role", "u1", "r1"),
            ):  # fmt: skip
                done = await etcdctl(proxy, *args)
                self.assertEqual(done.code, 0, (cluster.label, args, done.err))
            denied = await etcdctl(proxy, "--user=u1:p1", "watch", "foo", timeout=5)
            self.assertNotEqual(denied.code, 0, cluster.label)
            self.assertIn("permission denied", denied.err, (cluster.label, denied))
            watch = spawn_etcdctl(self, proxy, "--user=u1:p1", "watch", "k1")
            await deferLater(reactor, 1.0, lambda: None)
            await etcdctl(proxy, root, "put", "k1", "v1")
            await watch.wait_output("PUT\nk1\nv1\n")
            await watch.stop()
            unauthenticated = await etcdctl(proxy, "get", "k1")
            self.assertIn("user name is empty", unauthenticated.err, cluster.label)


class ProxyTlsTests(TestCase):
    """TLS on both sides of the grpc-proxy, in front of a member of ours and of etcd."""

    timeout = 120

    async def test_tls_both_sides(self) -> None:
        """etcdctl speaks TLS to the proxy, which speaks TLS (ALPN h2) to an https member."""
        base = self.mktemp()
        cert, key = self_signed(os.path.join(base, "certs"))
        for ours in (True, False):
            client_port, peer_port, proxy_port = free_ports(3)
            name = "ours" if ours else "etcd"
            flags = [
                "--name", name, "--data-dir", os.path.join(base, f"{name}.etcd"),
                "--listen-client-urls", f"https://127.0.0.1:{client_port}",
                "--advertise-client-urls", f"https://127.0.0.1:{client_port}",
                "--listen-peer-urls", f"http://127.0.0.1:{peer_port}",
                "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer_port}",
                "--initial-cluster", f"{name}=http://127.0.0.1:{peer_port}",
                "--cert-file", cert, "--key-file", key,
            ]  # fmt: skip
            argv = (
                [binary("twistd"), "--nodaemon", "--pidfile=", "etcd", *flags]
                if ours
                else [binary("etcd"), *flags]
            )
            member = ServerProcess(argv, os.path.join(base, f"{name}.log"))
            member.start()
            self.addCleanup(member.stop)
            proxy = _proxy_process(
                "grpc-proxy",
                [f"--endpoints=https://127.0.0.1:{client_port}",
                 f"--listen-addr=127.0.0.1:{proxy_port}", f"--cacert={cert}",
                 f"--cert-file={cert}", f"--key-file={key}"],
                os.path.join(base, name),
            )  # fmt: skip
            os.makedirs(os.path.join(base, name), exist_ok=True)
            proxy.start()
            self.addCleanup(proxy.stop)
            endpoint = f"https://127.0.0.1:{proxy_port}"

            async def put_works(endpoint: str = endpoint, name: str = name) -> bool:
                result = await etcdctl(endpoint, f"--cacert={cert}", "put", "k", name, timeout=3)
                return result.code == 0

            await wait_until(put_works, 30, f"a put through the TLS proxy to {name}")
            got = await etcdctl(endpoint, f"--cacert={cert}", "get", "k", "--print-value-only")
            self.assertEqual(got.out.strip(), name)
            plain = await etcdctl(f"127.0.0.1:{proxy_port}", "get", "k", timeout=3)
            self.assertNotEqual(plain.code, 0)


class SrvBootstrapTests(TestCase):
    """Three members of ours bootstrap from DNS SRV (a twisted.names server on loopback)."""

    timeout = 120

    async def test_three_members_from_srv(self) -> None:
        """Each member finds its peers in _etcd-server._tcp records and the cluster forms."""
        base = self.mktemp()
        members = [new_member(base, f"m{i + 1}") for i in range(3)]
        records = {
            b"_etcd-server._tcp.cluster.test": [
                dns.Record_SRV(0, 0, m.peer_port, b"127.0.0.1") for m in members
            ]
        }
        factory = server.DNSServerFactory(authorities=[SrvRecords(records)])
        port = reactor.listenUDP(0, dns.DNSDatagramProtocol(factory), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        env = {"ETCD_TWISTED_DNS_SERVER": f"127.0.0.1:{port.getHost().port}"}
        processes = []
        for m in members:
            flags = m.flags()[:-2]  # everything but --initial-cluster
            argv = [binary("twistd"), "--nodaemon", "--pidfile=", "etcd", *flags,
                    "--discovery-srv", "cluster.test"]  # fmt: skip
            process = ServerProcess(argv, os.path.join(base, f"{m.name}.log"), env=env)
            process.start()
            self.addCleanup(process.stop)
            processes.append(process)
        for m, p in zip(members, processes, strict=True):
            await wait_healthy(m.client_url, p, 60)
        endpoints = ",".join(m.client_url for m in members)
        listed = await etcdctl(endpoints, "member", "list", "-w", "json")
        peer_urls = sorted(u for m in json.loads(listed.out)["members"] for u in m["peerURLs"])
        self.assertEqual(peer_urls, sorted(m.peer_url for m in members))
        put = await etcdctl(members[0].client_url, "put", "srv", "ok")
        self.assertEqual(put.code, 0, put.err)
        got = await etcdctl(members[2].client_url, "get", "srv", "--print-value-only")
        self.assertEqual(got.out.strip(), "ok")


class DiscoveryUrlTests(TestCase):
    """Three members of ours bootstrap from a v2 discovery URL served by real etcd 3.5.1
    (``--enable-v2``); a fourth finds the cluster full."""

    timeout = 120

    async def test_three_members_from_discovery_url(self) -> None:
        """The members register, wait for each other and form the cluster; one too many exits."""
        base = self.mktemp()
        service, _ = await start_member(
            self, real_etcd, os.path.join(base, "discovery"), extra=["--enable-v2=true"]
        )
        url = f"{service.client_url}/v2/keys/_etcd/registry/tok1"
        response = await treq.put(f"{url}/_config/size", data={"value": "3"}, persistent=False)
        self.assertEqual(response.code, 201, await response.text())
        members = [new_member(base, f"m{i + 1}") for i in range(4)]
        processes = []
        for m in members:
            argv = [binary("twistd"), "--nodaemon", "--pidfile=", "etcd", *m.flags()[:-2],
                    "--discovery", url, "--discovery-fallback=exit"]  # fmt: skip
            process = ServerProcess(argv, os.path.join(base, f"{m.name}.log"))
            processes.append(process)
            self.addCleanup(process.stop)
        for process in processes[:3]:
            process.start()
        for m, p in zip(members[:3], processes[:3], strict=True):
            await wait_healthy(m.client_url, p, 60)
        endpoints = ",".join(m.client_url for m in members[:3])
        listed = await etcdctl(endpoints, "member", "list", "-w", "json")
        names = sorted(m["name"] for m in json.loads(listed.out)["members"])
        self.assertEqual(names, ["m1", "m2", "m3"])
        put = await etcdctl(members[0].client_url, "put", "discovered", "yes")
        self.assertEqual(put.code, 0, put.err)
        processes[3].start()
        await wait_until(lambda: succeed(not processes[3].running), 60, "the fourth member to exit")
        self.assertEqual(processes[3].child.exit, 1)
        self.assertIn("etcd: discovery: cluster is full", processes[3].output())
