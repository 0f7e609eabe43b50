"""The Auth service in a whole member (in-process), through the JSON gateway.

Covers what etcdctl cannot show: a wrong password costs no raft entry, tokens
through the ``Authorization`` header, an unknown token, admin-only maintenance, the
watch permission hook, auth state surviving a restart, bcrypt hashes as stored, JWT
tokens, and the holes of etcd 3.5.1 that later releases closed (lease keys, alarms,
compaction).
"""

from __future__ import annotations

import base64
import json

import treq.client
from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase
from twisted.web.client import Agent, HTTPConnectionPool

from etcd_twisted.auth import AuthInfo
from etcd_twisted.embed import EtcdService, build_service
from etcd_twisted.server.auth_frontend import AuthFrontend
from tests.test_embed import member_config


def b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


class AuthApiTests(TestCase):
    timeout = 60

    def setUp(self) -> None:
        self.http = treq.client.HTTPClient(
            Agent(reactor, pool=HTTPConnectionPool(reactor, persistent=False))
        )

    async def start(self, data_dir: str | None = None, *extra: str) -> EtcdService:
        self.data_dir = data_dir or self.mktemp()
        service = build_service(member_config(self.data_dir, "--bcrypt-cost", "4", *extra), reactor)
        service.startService()
        self.addCleanup(lambda: service.stopService() if service.running else None)
        self.port = (await service.client_ports())[0].getHost().port
        deadline = reactor.seconds() + 10
        while not service.server.leader_id and reactor.seconds() < deadline:
            await deferLater(reactor, 0.01, lambda: None)
        return service

    async def post(self, path: str, body: dict, token: str | None = None) -> tuple[int, dict]:
        headers = {"Authorization": token} if token else {}
        response = await self.http.post(
            f"http://127.0.0.1:{self.port}{path}", json.dumps(body).encode(), headers=headers
        )
        return response.code, json.loads(await response.content())

    async def enable(self) -> str:
        """Add root (with role root), enable auth, and return root's token."""
        for path, body in (
            ("/v3/auth/user/add", {"name": "root", "password": "pw"}),
            ("/v3/auth/role/add", {"name": "root"}),
            ("/v3/auth/user/grant", {"user": "root", "role": "root"}),
            ("/v3/auth/enable", {}),
        ):
            code, out = await self.post(path, body)
            self.assertEqual(code, 200, (path, out))
        code, out = await self.post("/v3/auth/authenticate", {"name": "root", "password": "pw"})
        self.assertEqual(code, 200, out)
        return out["token"]

    async def test_token_flow(self) -> None:
        """Without a token a read is "user name is empty"; with root's it works; a made-up
        token is UNAUTHENTICATED."""
        await self.start()
        token = await self.enable()
        prefix, index = token.split(".")
        self.assertEqual(len(prefix), 16)
        self.assertTrue(index.isdigit())
        code, out = await self.post("/v3/kv/range", {"key": b64("a")})
        self.assertEqual(
            (code, out["code"], out["error"]), (400, 3, "etcdserver: user name is empty")
        )
        code, out = await self.post("/v3/kv/put", {"key": b64("a"), "value": b64("1")}, token)
        self.assertEqual(code, 200, out)
        code, out = await self.post("/v3/kv/range", {"key": b64("a")}, token)
        self.assertEqual(out["kvs"][0]["value"], b64("1"))
        code, out = await self.post("/v3/kv/range", {"key": b64("a")}, "nope.1")
        self.assertEqual(
            (code, out["code"], out["error"]), (401, 16, "etcdserver: invalid auth token")
        )
        code, out = await self.post("/v3/kv/range", {"key": b64("a")}, "malformed")
        self.assertEqual(out["code"], 16)

    async def test_wrong_password_costs_no_entry(self) -> None:
        """A wrong password is refused before anything is proposed."""
        service = await self.start()
        await self.enable()
        before = service.server.applied.applied
        code, out = await self.post("/v3/auth/authenticate", {"name": "root", "password": "x"})
        self.assertEqual(
            (code, out["error"]),
            (400, "etcdserver: authentication failed, invalid user ID or password"),
        )
        self.assertEqual(service.server.applied.applied, before)
        code, out = await self.post("/v3/auth/authenticate", {"name": "root", "password": "pw"})
        self.assertEqual(code, 200)
        self.assertEqual(service.server.applied.applied, before + 1)
        self.assertTrue(out["token"].endswith(f".{before + 1}"))

    async def test_not_enabled(self) -> None:
        """Authenticate while auth is off is FAILED_PRECONDITION "not enabled"."""
        await self.start()
        code, out = await self.post("/v3/auth/authenticate", {"name": "root", "password": "pw"})
        self.assertEqual(
            (code, out["code"], out["error"]),
            (400, 9, "etcdserver: authentication is not enabled"),
        )

    async def test_admin_maintenance_and_watch(self) -> None:
        """Hash needs root (refused as etcd does: UNKNOWN); a watch needs read on its whole
        range, a "from key" watch on every key from its key on (etcd 3.5.1 checks only the key)."""
        service = await self.start()
        root = await self.enable()
        for path, body in (
            ("/v3/auth/user/add", {"name": "u", "password": "p"}),
            ("/v3/auth/role/add", {"name": "r"}),
            (
                "/v3/auth/role/grant",
                {"name": "r", "perm": {"key": b64("k"), "range_end": b64("l")}},
            ),
            ("/v3/auth/user/grant", {"user": "u", "role": "r"}),
        ):
            code, out = await self.post(path, body, root)
            self.assertEqual(code, 200, (path, out))
        code, user = await self.post("/v3/auth/authenticate", {"name": "u", "password": "p"})
        code, out = await self.post("/v3/maintenance/hash", {}, user["token"])
        # etcd 3.5.1's maintenance server does not convert its auth errors.
        self.assertEqual((code, out["code"], out["error"]), (500, 2, "auth: permission denied"))
        code, out = await self.post("/v3/maintenance/hash", {}, root)
        self.assertEqual(code, 200)
        permitted = service.server.auth_frontend.watch_permitted
        token = user["token"]
        self.assertTrue(permitted(token, b"k1", b""))
        self.assertTrue(permitted(token, b"k", b"l"))
        self.assertFalse(permitted(token, b"k", b"\x00"))
        self.assertFalse(permitted(token, b"k", b"m"))
        self.assertFalse(permitted(token, b"a", b""))
        self.assertFalse(permitted(None, b"k1", b""))
        self.assertFalse(permitted("bad.1", b"k1", b""))

    async def test_restart_keeps_auth(self) -> None:
        """Auth enabled, users and the auth revision survive a restart; tokens do not."""
        service = await self.start()
        token = await self.enable()
        revision = service.server.state.auth.revision
        await service.stopService()
        service = await self.start(self.data_dir)
        self.assertTrue(service.server.state.auth.enabled)
        self.assertEqual(service.server.state.auth.revision, revision)
        code, out = await self.post("/v3/kv/range", {"key": b64("a")}, token)
        self.assertEqual(out["code"], 16)
        code, out = await self.post("/v3/auth/authenticate", {"name": "root", "password": "pw"})
        code, out = await self.post("/v3/auth/user/list", {}, out["token"])
        self.assertEqual(out["users"], ["root"])

    async def add_reader(self, root: str) -> str:
        """User u (password p) with read on [k, l); returns u's token."""
        for path, body in (
            ("/v3/auth/user/add", {"name": "u", "password": "p"}),
            ("/v3/auth/role/add", {"name": "r"}),
            (
                "/v3/auth/role/grant",
                {"name": "r", "perm": {"key": b64("k"), "range_end": b64("l")}},
            ),
            ("/v3/auth/user/grant", {"user": "u", "role": "r"}),
        ):
            code, out = await self.post(path, body, root)
            self.assertEqual(code, 200, (path, out))
        code, out = await self.post("/v3/auth/authenticate", {"name": "u", "password": "p"})
        self.assertEqual(code, 200, out)
        return out["token"]

    async def test_bcrypt_stored(self) -> None:
        """A password is stored as etcd stores it: a $2a$ bcrypt hash at --bcrypt-cost."""
        service = await self.start()
        await self.enable()
        stored = service.server.state.auth._get_user("root").password
        self.assertTrue(stored.startswith(b"$2a$04$"), stored)
        self.assertEqual(len(stored), 60)

    async def test_jwt(self) -> None:
        """With --auth-token jwt a token is a JWT with etcd's claims, accepted until the
        auth revision moves on ("revision of auth store is old", as etcd)."""
        key = self.mktemp()
        with open(key, "wb") as f:
            f.write(b"0123456789abcdef0123456789abcdef")
        await self.start(None, "--auth-token", f"jwt,priv-key={key},sign-method=HS256,ttl=1h")
        root = await self.enable()
        claims = json.loads(base64.urlsafe_b64decode(root.split(".")[1] + "=="))
        self.assertEqual(sorted(claims), ["exp", "revision", "username"])
        self.assertEqual(claims["username"], "root")
        code, out = await self.post("/v3/kv/put", {"key": b64("a"), "value": b64("1")}, root)
        self.assertEqual(code, 200, out)
        code, out = await self.post("/v3/kv/put", {"key": b64("a")}, root + "x")
        self.assertEqual((code, out["error"]), (401, "etcdserver: invalid auth token"))
        await self.post("/v3/auth/role/add", {"name": "r2"}, root)
        code, out = await self.post("/v3/kv/put", {"key": b64("a"), "value": b64("2")}, root)
        self.assertEqual((code, out["error"]), (500, "auth: revision in header is old"))

    async def test_lease_keys_need_read(self) -> None:
        """TimeToLive with keys refuses a caller who may not read every key of the lease
        (etcd 3.5.9+, CVE-2023-32082); without keys, or for root, it answers."""
        await self.start()
        root = await self.enable()
        user = await self.add_reader(root)
        code, out = await self.post("/v3/lease/grant", {"TTL": 60}, root)
        lease = out["ID"]
        for key in ("k1", "secret"):
            body = {"key": b64(key), "value": b64("v"), "lease": lease}
            code, out = await self.post("/v3/kv/put", body, root)
            self.assertEqual(code, 200, out)
        code, out = await self.post("/v3/lease/timetolive", {"ID": lease, "keys": True}, user)
        self.assertEqual((code, out["error"]), (403, "etcdserver: permission denied"))
        code, out = await self.post("/v3/lease/timetolive", {"ID": lease, "keys": True})
        self.assertEqual((code, out["error"]), (400, "etcdserver: user name is empty"))
        code, out = await self.post("/v3/lease/timetolive", {"ID": lease}, user)
        self.assertEqual((code, "keys" in out), (200, False), out)
        code, out = await self.post("/v3/lease/timetolive", {"ID": lease, "keys": True}, root)
        self.assertEqual(sorted(out["keys"]), [b64("k1"), b64("secret")])

    async def test_alarm_needs_root(self) -> None:
        """Only root raises or clears an alarm (etcd 3.5.28+); anyone may list them."""
        await self.start()
        root = await self.enable()
        user = await self.add_reader(root)
        nospace = {"action": "ACTIVATE", "memberID": "0", "alarm": "NOSPACE"}
        code, out = await self.post("/v3/maintenance/alarm", nospace, user)
        self.assertEqual((code, out["error"]), (403, "etcdserver: permission denied"))
        code, out = await self.post("/v3/maintenance/alarm", nospace)
        self.assertEqual((code, out["error"]), (400, "etcdserver: user name is empty"))
        code, out = await self.post("/v3/maintenance/alarm", {"action": "GET"}, user)
        self.assertEqual((code, out.get("alarms")), (200, None))
        code, out = await self.post("/v3/maintenance/alarm", nospace, root)
        self.assertEqual(code, 200, out)
        code, out = await self.post("/v3/maintenance/alarm", {"action": "GET"}, user)
        self.assertEqual([a["alarm"] for a in out["alarms"]], ["NOSPACE"])
        clear = dict(nospace, action="DEACTIVATE")
        code, out = await self.post("/v3/maintenance/alarm", clear, user)
        self.assertEqual(code, 403)
        code, out = await self.post("/v3/maintenance/alarm", clear, root)
        self.assertEqual(code, 200, out)

    async def test_compact_needs_root(self) -> None:
        """Only root compacts while auth is on (etcd 3.5.28+)."""
        await self.start()
        root = await self.enable()
        user = await self.add_reader(root)
        for value in ("1", "2"):
            await self.post("/v3/kv/put", {"key": b64("k1"), "value": b64(value)}, root)
        code, out = await self.post("/v3/kv/compaction", {"revision": 2}, user)
        self.assertEqual((code, out["error"]), (403, "etcdserver: permission denied"))
        code, out = await self.post("/v3/kv/compaction", {"revision": 2}, root)
        self.assertEqual(code, 200, out)

    async def test_certificate_common_name(self) -> None:
        """With --client-cert-auth and no token, a certificate's CN is the user, at the
        current auth revision; a token wins; without --client-cert-auth the CN is
        ignored."""
        service = await self.start(None, "--client-cert-auth")
        frontend = service.server.auth_frontend
        await self.enable()
        revision = service.server.state.auth.revision
        self.assertEqual(frontend.auth_info(None, "alice"), AuthInfo("alice", revision))
        self.assertEqual(frontend.auth_info(None, ""), AuthInfo("", revision))
        self.assertIsNone(frontend.auth_info(None, None))
        server = service.server
        without = AuthFrontend(lambda: server.state.auth, server.proposer, reactor)
        self.assertIsNone(without.auth_info(None, "alice"))
