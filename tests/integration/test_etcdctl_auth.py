"""``etcdctl user/role/auth`` and ``--user`` (3.5.1) against our server and real etcd 3.5.1.

Each test starts a fresh real etcd and a fresh server of ours, runs the same etcdctl
commands against both, and requires the same exit code, stdout and stderr once ids,
addresses and timestamps are normalised (``test_etcdctl_kv.normalise``). Password
hashes are bcrypt on both (``test_auth_interop`` checks one of etcd's here) and never show.
"""

from __future__ import annotations

import re
import signal
from typing import Any

from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from tests.integration.test_etcdctl_kv import EtcdctlCase, normalise, without_client_logs
from tests.support.processes import (
    Completed,
    etcdctl,
    spawn_etcdctl,
    start_cluster,
    start_pair,
    wait_healthy,
)

ROOT = "--user=root:pw"
DENIED = "Error: etcdserver: permission denied\n"


class AuthCase(EtcdctlCase):
    """Real etcd and ours; helpers for the usual auth setup."""

    async def setUp(self) -> None:
        (etcd_member, etcd_proc), (ours_member, ours_proc) = await start_pair(self, self.mktemp())
        self.etcd, self.ours = etcd_member.client_url, ours_member.client_url
        self.processes = [etcd_proc, ours_proc]

    async def both(self, *args: str, stdin: bytes | None = None) -> tuple[Completed, Completed]:
        """As ``EtcdctlCase.both``, with the client's numeric log timestamps zeroed."""
        results = await super().both(*args, stdin=stdin)
        return tuple(  # type: ignore[return-value]
            Completed(r.code, r.out, re.sub(r'"ts":[0-9.]+', '"ts":"T"', r.err)) for r in results
        )

    async def ok(self, *args: str, stdin: bytes | None = None) -> Any:
        """``same``, requiring success; returns stdout."""
        code, out, err = await self.same(*args, stdin=stdin)
        self.assertEqual((code, err), (0, ""), (args, out))
        return out

    async def enable_root(self) -> None:
        """root:pw with role root, auth enabled."""
        self.assertEqual(await self.ok("user", "add", "root:pw"), "User root created\n")
        self.assertEqual(await self.ok("role", "add", "root"), "Role root created\n")
        await self.ok("user", "grant-role", "root", "root")
        self.assertEqual(await self.ok("auth", "enable"), "Authentication Enabled\n")

    async def add_reader(self) -> None:
        """u1:p1 with role r1: read on prefix k."""
        await self.ok(ROOT, "role", "add", "r1")
        await self.ok(ROOT, "role", "grant-permission", "r1", "read", "k", "--prefix")
        await self.ok(ROOT, "user", "add", "u1:p1")
        await self.ok(ROOT, "user", "grant-role", "u1", "r1")


class EtcdctlAuthTests(AuthCase):
    async def test_enable_needs_root(self) -> None:
        """auth enable without root, or with root lacking role root (etcdctl then adds
        the role and grants it itself), fails as etcd's does."""
        code, out, err = await self.same("auth", "enable")
        self.assertEqual((code, err), (1, "Error: etcdserver: root user does not exist\n"))
        await self.ok("user", "add", "root:pw")
        await self.ok("role", "add", "root")
        code, out, err = await self.same("auth", "enable")
        self.assertEqual((code, err), (1, "Error: etcdserver: role name already exists\n"))
        code, out, err = await self.same("user", "add", "root:pw")
        self.assertEqual((code, err), (1, "Error: etcdserver: user name already exists\n"))
        await self.ok("user", "grant-role", "root", "root")
        await self.ok("auth", "enable")
        code, out, err = await self.same("auth", "enable")
        self.assertEqual((code, err), (1, "Error: etcdserver: user name is empty\n"))
        await self.ok(ROOT, "auth", "enable")

    async def test_users_roles_and_permissions(self) -> None:
        """The usual session: root writes, a read-only user is denied writes and keys
        outside its prefix, a wrong password fails, users and roles read back."""
        await self.enable_root()
        code, out, err = await self.same("get", "foo")
        self.assertEqual((code, err), (1, "Error: etcdserver: user name is empty\n"))
        self.assertEqual(await self.ok(ROOT, "put", "foo", "bar"), "OK\n")
        self.assertEqual(await self.ok(ROOT, "get", "foo"), "foo\nbar\n")
        await self.ok(ROOT, "put", "k1", "v1")
        await self.add_reader()
        code, out, err = await self.same("--user=u1:p1", "put", "k1", "v")
        self.assertEqual((code, err), (1, DENIED))
        self.assertEqual(await self.ok("--user=u1:p1", "get", "k1"), "k1\nv1\n")
        self.assertEqual(await self.ok("--user=u1:p1", "get", "k", "--prefix"), "k1\nv1\n")
        code, out, err = await self.same("--user=u1:p1", "get", "foo")
        self.assertEqual((code, err), (1, DENIED))
        code, out, err = await self.same("--user=u1:p1", "del", "k1")
        self.assertEqual((code, err), (1, DENIED))
        code, out, err = await self.same("--user=u1:p1", "user", "list")
        self.assertEqual((code, err), (1, DENIED))
        code, out, err = await self.same("--user=root:bad", "get", "foo")
        self.assertEqual(
            (code, err),
            (2, "Error: etcdserver: authentication failed, invalid user ID or password\n"),
        )
        await self.same("--user=nobody:x", "get", "foo")
        self.assertEqual(await self.ok(ROOT, "user", "list"), "root\nu1\n")
        self.assertEqual(await self.ok(ROOT, "role", "list"), "r1\nroot\n")
        self.assertEqual(
            await self.ok(ROOT, "role", "get", "r1"),
            "Role r1\nKV Read:\n\t[k, l) (prefix k)\nKV Write:\n",
        )
        self.assertEqual(
            await self.ok("--user=u1:p1", "user", "get", "u1"), "User: u1\nRoles: r1\n"
        )
        await self.ok("--user=u1:p1", "role", "get", "r1")
        for args in (
            ("user", "get", "u1"),
            ("role", "get", "r1"),
            ("user", "list"),
            ("auth", "status"),
        ):
            await self.ok(ROOT, "-w", "json", *args)
        self.assertEqual(
            await self.ok(ROOT, "auth", "status"), "Authentication Status: true\nAuthRevision: 8\n"
        )
        await self.ok(ROOT, "role", "grant-permission", "r1", "readwrite", "a", "b")
        await self.ok(ROOT, "role", "grant-permission", "r1", "write", "c", "--from-key")
        await self.ok(ROOT, "role", "grant-permission", "r1", "read", "d")
        self.assertEqual(
            await self.ok(ROOT, "role", "get", "r1"),
            "Role r1\nKV Read:\n\t[a, b) (prefix a)\n\td\n\t[k, l) (prefix k)\n"
            "KV Write:\n\t[a, b) (prefix a)\n\t[c, <open ended>\n",
        )
        await self.ok("--user=u1:p1", "put", "zzz", "v")
        await self.ok(ROOT, "-w", "json", "role", "get", "r1")
        for args in (
            ("user", "get", "nobody"),
            ("role", "get", "nobody"),
            ("user", "grant-role", "u1", "nope"),
            ("user", "revoke-role", "u1", "root"),
            ("role", "revoke-permission", "r1", "zz"),
            ("user", "delete", "root"),
            ("role", "delete", "root"),
            ("user", "revoke-role", "root", "root"),
        ):
            code, out, err = await self.same(ROOT, *args)
            self.assertEqual(code, 1, args)

    async def test_passwd_and_disable(self) -> None:
        """A changed password replaces the old one; auth disable opens everything again."""
        await self.enable_root()
        await self.add_reader()
        self.assertEqual(
            await self.ok(ROOT, "user", "passwd", "u1", "--interactive=false", stdin=b"p2\n"),
            "Password updated\n",
        )
        code, out, err = await self.same("--user=u1:p1", "get", "k")
        self.assertEqual(code, 2)
        await self.ok("--user=u1:p2", "get", "k")
        self.assertEqual(await self.ok(ROOT, "auth", "disable"), "Authentication Disabled\n")
        await self.ok("put", "foo", "bar")
        await self.ok(ROOT, "get", "foo")
        self.assertEqual(
            await self.ok("auth", "status"), "Authentication Status: false\nAuthRevision: 10\n"
        )
        await self.ok("role", "revoke-permission", "r1", "k", "--prefix")
        await self.ok("user", "revoke-role", "root", "root")
        await self.ok("user", "delete", "root")
        await self.ok("role", "delete", "root")
        await self.ok("user", "add", "--no-password", "np")
        self.assertEqual(await self.ok("user", "get", "np"), "User: np\nRoles:\n")
        await self.ok("-w", "json", "user", "get", "np")
        self.assertEqual(await self.ok("user", "list"), "np\nu1\n")

    async def test_watch(self) -> None:
        """A watch with read permission sees root's writes; one without is canceled."""
        await self.enable_root()
        await self.add_reader()
        code, out, err = await self.same("--user=u1:p1", "watch", "foo")
        self.assertEqual(code, 5)
        self.assertEqual(
            err,
            "watch was canceled (rpc error: code = PermissionDenied desc = etcdserver: "
            "permission denied)\nError: watch is canceled by the server\n",
        )
        watchers = [
            spawn_etcdctl(self, url, "--user=u1:p1", "watch", "k1", "--rev=1")
            for url in (self.etcd, self.ours)
        ]
        await self.ok(ROOT, "put", "k1", "v1")
        await self.ok(ROOT, "put", "foo", "x")
        await self.ok(ROOT, "put", "k1", "v2")
        for w in watchers:
            await w.wait_output("v2\n")
        etcd, ours = [await w.stop(signal.SIGINT) for w in watchers]
        self.assertEqual(ours.out, etcd.out)
        self.assertEqual(ours.out, "PUT\nk1\nv1\nPUT\nk1\nv2\n")

    async def test_leases(self) -> None:
        """Revoking a lease, or attaching a key to it, needs write on every key already
        attached; root may revoke anything."""
        await self.enable_root()
        await self.ok(ROOT, "role", "add", "w")
        await self.ok(ROOT, "role", "grant-permission", "w", "readwrite", "k", "--prefix")
        await self.ok(ROOT, "user", "add", "u2:p2")
        await self.ok(ROOT, "user", "grant-role", "u2", "w")
        results = []
        for url in (self.etcd, self.ours):
            granted = await etcdctl(url, ROOT, "lease", "grant", "100")
            lease = granted.out.split()[1]
            steps = [
                await etcdctl(url, ROOT, "put", "--lease", lease, "secret", "s"),
                await etcdctl(url, "--user=u2:p2", "put", "--lease", lease, "k1", "v"),
                await etcdctl(url, "--user=u2:p2", "lease", "revoke", lease),
                await etcdctl(url, ROOT, "lease", "revoke", lease),
                await etcdctl(url, ROOT, "get", "secret"),
            ]
            results.append(
                [(r.code, r.out.replace(lease, "L"), without_client_logs(r.err)) for r in steps]
            )
        self.assertEqual(results[1], results[0])
        self.assertEqual([code for code, _, _ in results[1]], [0, 1, 1, 0, 0])
        self.assertEqual(
            results[1][2][2], "Error: failed to revoke lease (etcdserver: permission denied)\n"
        )

    async def test_endpoint_commands(self) -> None:
        """Health, status and member list need no user; hashkv and defrag need root."""
        await self.enable_root()
        await self.add_reader()
        await self.same("endpoint", "health")
        await self.same("-w", "json", "endpoint", "status")
        await self.same("-w", "json", "member", "list")
        code, out, err = await self.same("--user=u1:p1", "endpoint", "hashkv")
        # etcd 3.5.1's maintenance server returns the auth store's error unconverted.
        self.assertEqual(code, 1)
        self.assertIn("rpc error: code = Unknown desc = auth: permission denied", err)
        await self.same("--user=u1:p1", "defrag")
        await self.same(ROOT, "defrag")
        code, out, err = await self.same(
            "--user=u1:p1", "member", "add", "x", "--peer-urls=http://127.0.0.1:1"
        )
        self.assertEqual((code, err), (1, DENIED))

    async def test_survives_restart(self) -> None:
        """Auth enabled, users, roles and the auth revision are durable; tokens are not."""
        await self.enable_root()
        await self.add_reader()
        await self.ok(ROOT, "put", "foo", "bar")
        for process in self.processes:
            await process.stop()
        for process, url in zip(self.processes, (self.etcd, self.ours), strict=True):
            process.start()
            await wait_healthy(url, process)
        await deferLater(reactor, 0.5, lambda: None)  # etcd serves once it has a leader
        code, out, err = await self.same("get", "foo")
        self.assertEqual((code, err), (1, "Error: etcdserver: user name is empty\n"))
        self.assertEqual(await self.ok(ROOT, "get", "foo"), "foo\nbar\n")
        self.assertEqual(
            await self.ok(ROOT, "auth", "status"), "Authentication Status: true\nAuthRevision: 8\n"
        )
        self.assertEqual(await self.ok(ROOT, "user", "list"), "root\nu1\n")
        code, out, err = await self.same("--user=u1:p1", "put", "k1", "v")
        self.assertEqual((code, err), (1, DENIED))


__all__ = ["normalise"]


class ClusterAuthTests(TestCase):
    """Auth in a cluster of three of ours: every member knows the users, and a token
    issued through any member works on it."""

    timeout = 120

    async def test_each_member(self) -> None:
        """Enable through one member; authenticate and write/read through each."""
        cluster = await start_cluster(self, 3, self.mktemp())
        first = cluster.members[0].client_url
        for args in (
            ("user", "add", "root:pw"),
            ("user", "grant-role", "root", "root"),
            ("auth", "enable"),
        ):
            result = await etcdctl(first, *args)
            self.assertEqual(result.code, 0, result)
        for i, member in enumerate(cluster.members):
            url = member.client_url
            put = await etcdctl(url, ROOT, "put", f"k{i}", f"v{i}")
            self.assertEqual((put.code, put.out), (0, "OK\n"), put)
            got = await etcdctl(url, ROOT, "get", "k", "--prefix", "--print-value-only")
            self.assertEqual(got.out, "".join(f"v{j}\n" for j in range(i + 1)), got)
            denied = await etcdctl(url, "get", "k0")
            self.assertEqual(
                without_client_logs(denied.err), "Error: etcdserver: user name is empty\n"
            )
        listed = await etcdctl(cluster.endpoints, ROOT, "user", "list")
        self.assertEqual(listed.out, "root\n")
