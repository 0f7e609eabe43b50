"""A small blocking client of a member's JSON gateway, for the test kit's own operations.

Readiness, status, reset between tests, revoking every lease, compaction and filling the
quota all go through ``/v3/...`` with the standard library only, so the kit works in any
test suite (no gRPC client needed). Twisted callers run these calls on a thread.
"""

from __future__ import annotations

import base64
import http.client
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

#: etcd's error for a write refused by the NOSPACE alarm.
NOSPACE = "etcdserver: mvcc: database space exceeded"
#: The key range that holds every key (``"\0"`` to ``"\0"``).
ALL_KEYS = {"key": "AA==", "range_end": "AA=="}


class GatewayError(Exception):
    """A request the member answered with an error (``code`` is the gRPC code)."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(f"HTTP {status}, gRPC code {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


def b64(data: bytes | str) -> str:
    """Base64 of ``data`` (str as UTF-8), as the gateway wants keys and values."""
    raw = data.encode() if isinstance(data, str) else data
    return base64.b64encode(raw).decode()


def unb64(text: str) -> bytes:
    return base64.b64decode(text)


class Gateway:
    """Calls to one member's client URL; each call opens its own connection (thread-safe)."""

    def __init__(self, client_url: str, timeout: float = 5.0) -> None:
        parts = urlsplit(client_url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 2379
        self.timeout = timeout
        self._executor: ThreadPoolExecutor | None = None

    def _request(
        self, method: str, path: str, body: dict[str, Any] | None = None,
        token: str | None = None, timeout: float | None = None,
    ) -> tuple[int, Any]:  # fmt: skip
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout or self.timeout)
        try:
            headers = {"Content-Type": "application/json"}
            if token:
                headers["Authorization"] = token
            data = json.dumps(body).encode() if body is not None else None
            conn.request(method, path, data, headers)
            response = conn.getresponse()
            raw = response.read()
        finally:
            conn.close()
        try:
            return response.status, json.loads(raw) if raw else {}
        except ValueError:
            return response.status, {"message": raw.decode(errors="replace")}

    def call(
        self, path: str, body: dict[str, Any] | None = None, token: str | None = None,
        timeout: float | None = None,
    ) -> Any:  # fmt: skip
        """POST ``body`` to ``/v3/<path>``; the decoded answer, or GatewayError."""
        status, answer = self._request("POST", "/v3/" + path, body or {}, token, timeout)
        if status != 200:
            raise GatewayError(
                status, int(answer.get("code", 2)), answer.get("message", answer.get("error", ""))
            )
        return answer

    def healthy(self, timeout: float = 1.0) -> bool:
        """Whether ``GET /health`` answers ``{"health": "true"}`` (a leader is known)."""
        try:
            status, answer = self._request("GET", "/health", timeout=timeout)
        except OSError:
            return False
        return status == 200 and answer.get("health") == "true"

    def ready_status(self, timeout: float = 1.0) -> dict[str, Any] | None:
        """Maintenance.Status once the member is ready, else None: it knows a leader and has
        published its client URLs to the cluster (etcd's ReadyNotify), so member lists show
        it started. A member under the NOSPACE alarm is ready too, though
        ``/health`` calls it unhealthy."""
        try:
            status = self.call("maintenance/status", timeout=timeout)
            if not int(status.get("leader", 0)):
                return None
            if status.get("isLearner"):
                return status  # a learner serves once it follows a leader
            me = status["header"]["member_id"]
            members = self.call("cluster/member/list", timeout=timeout).get("members", [])
        except (OSError, GatewayError, KeyError):
            return None
        published = any(m.get("ID") == me and m.get("clientURLs") for m in members)
        return status if published else None

    # --- keys

    def put(self, key: bytes | str, value: bytes | str, lease: int = 0) -> int:
        """Put ``key``; the revision of the write."""
        body: dict[str, Any] = {"key": b64(key), "value": b64(value)}
        if lease:
            body["lease"] = str(lease)
        return int(self.call("kv/put", body)["header"]["revision"])

    def get(self, key: bytes | str) -> bytes | None:
        """The value of ``key`` (linearizable), or None."""
        kvs = self.call("kv/range", {"key": b64(key)}).get("kvs", [])
        return unb64(kvs[0].get("value", "")) if kvs else None

    def status(self) -> dict[str, Any]:
        """Maintenance.Status: ``header`` (member_id, revision), ``leader``, ``dbSize``, …"""
        return self.call("maintenance/status")

    def revision(self) -> int:
        return int(self.call("kv/range", {"key": "AA==", "limit": 1})["header"]["revision"])

    def compact(self, revision: int | None = None, physical: bool = True) -> int:
        """Compact at ``revision`` (default: the current one); the revision compacted at."""
        revision = revision or self.revision()
        self.call("kv/compaction", {"revision": str(revision), "physical": physical})
        return revision

    # --- leases

    def lease_ids(self) -> list[int]:
        return [int(lease["ID"]) for lease in self.call("lease/leases").get("leases", [])]

    def revoke_all_leases(self) -> int:
        """Revoke every lease (their keys are deleted, as on expiry); how many there were."""
        ids = self.lease_ids()
        for lease_id in ids:
            self._revoke(lease_id)
        return len(ids)

    # --- state between tests

    def reset(self, root_password: str | None = None) -> None:
        """Back to an empty member: auth off (as root with ``root_password``), no users or
        roles, no leases, no keys, no alarms. Revisions keep counting, as etcd's do.

        Independent requests go out together (a few round trips, not one per request)."""
        pool = self._pool()
        enabled_f = pool.submit(self._auth_enabled)
        leases_f = pool.submit(self.lease_ids)
        alarms_f = pool.submit(self.call, "maintenance/alarm", {"action": "GET"})
        if enabled_f.result():
            if root_password is None:
                raise GatewayError(0, 7, "auth is enabled: reset needs root_password")
            auth = {"name": "root", "password": root_password}
            self.call("auth/disable", token=self.call("auth/authenticate", auth)["token"])
        users_f = pool.submit(self.call, "auth/user/list")
        roles_f = pool.submit(self.call, "auth/role/list")
        work = [pool.submit(self.call, "kv/deleterange", ALL_KEYS)]
        work += [pool.submit(self._revoke, lease_id) for lease_id in leases_f.result()]
        work += [
            pool.submit(self.call, "maintenance/alarm",
                        {"action": "DEACTIVATE", "memberID": alarm.get("memberID", "0"),
                         "alarm": alarm.get("alarm", "NONE")})
            for alarm in alarms_f.result().get("alarms", [])
        ]  # fmt: skip
        work += [
            pool.submit(self.call, "auth/user/delete", {"name": user})
            for user in users_f.result().get("users", [])
        ]
        work += [
            pool.submit(self.call, "auth/role/delete", {"role": role})
            for role in roles_f.result().get("roles", [])
        ]
        for done in work:
            done.result()

    def _pool(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(4, thread_name_prefix="etcd-gateway")
        return self._executor

    def _auth_enabled(self) -> bool:
        try:
            return bool(self.call("auth/status").get("enabled"))
        except GatewayError as e:
            if e.message != "etcdserver: user name is empty":
                raise
            return True  # with auth on, even the status needs a user

    def _revoke(self, lease_id: int) -> None:
        try:
            self.call("lease/revoke", {"ID": str(lease_id)})
        except GatewayError as e:
            if "lease not found" not in e.message:
                raise

    def fill_quota(self, value_bytes: int = 256 * 1024, limit: int = 16384) -> int:
        """Write ``value_bytes`` values under ``__fill_quota/`` until the member answers
        NOSPACE (the alarm is then raised); how many writes it took. Gives up (RuntimeError)
        after ``limit`` writes: start the member with a small ``--quota-backend-bytes``."""
        value = b"q" * value_bytes
        for i in range(limit):
            try:
                self.put(f"__fill_quota/{i:06d}", value)
            except GatewayError as e:
                if e.message == NOSPACE:
                    return i
                raise
        raise RuntimeError(f"no NOSPACE after {limit} writes of {value_bytes} bytes")
