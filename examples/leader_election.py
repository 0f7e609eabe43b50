"""A small application to test: leader election on etcd through its JSON gateway.

Each :class:`Elector` holds a lease and keeps it alive; it is the leader while the
election key holds its name under its lease. It talks to every endpoint it is given
and moves on to the next when one fails, so it survives losing a member. Only the
standard library is used: the application is what is being tested, not a client.
"""

from __future__ import annotations

import base64
import json
import threading
import urllib.error
import urllib.request
from typing import Any


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


class Unavailable(Exception):
    """No endpoint answered."""


class Refused(Exception):
    """etcd answered with an error (its message is the exception's)."""


class Client:
    """POSTs JSON to ``/v3/...`` on the first endpoint that answers."""

    def __init__(self, endpoints: list[str], timeout: float = 1.0) -> None:
        self.endpoints = list(endpoints)
        self.timeout = timeout
        self._next = 0

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        for _ in range(len(self.endpoints)):
            url = self.endpoints[self._next % len(self.endpoints)] + "/v3/" + path
            request = urllib.request.Request(url, json.dumps(body).encode())
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    # Streaming calls (keepalive) answer one JSON object per line.
                    return json.loads(response.readline())
            except urllib.error.HTTPError as e:
                raise Refused(json.loads(e.read() or b"{}").get("message", str(e))) from None
            except (OSError, ValueError):
                self._next += 1  # that member is down, paused or cut off: try the next
        raise Unavailable(f"no endpoint answered {path}")


class Elector:
    """Campaigns for ``key``; ``is_leader`` tells whether this process leads right now."""

    def __init__(
        self, endpoints: list[str], name: str, key: str = "/app/leader", ttl: int = 2
    ) -> None:
        self.client = Client(endpoints)
        self.name = name
        self.key = key
        self.ttl = ttl
        self.lease = 0
        self.is_leader = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Elector:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop campaigning and resign (revoke the lease, so another can lead at once)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        lease, self.lease, self.is_leader = self.lease, 0, False
        if lease:
            try:
                self.client.post("lease/revoke", {"ID": lease})
            except (Unavailable, Refused):
                pass  # gone already: its key went with it

    def _run(self) -> None:
        while not self._stop.wait(self.ttl / 5):
            try:
                self._step()
            except (Unavailable, Refused):
                pass  # try again next round; the lease may still be alive

    def _step(self) -> None:
        if self.lease and not self._keep_alive():
            self.lease, self.is_leader = 0, False
        if not self.lease:
            self.lease = int(self.client.post("lease/grant", {"TTL": self.ttl})["ID"])
        if not self.is_leader:
            self.is_leader = self._campaign()

    def _keep_alive(self) -> bool:
        """Renew the lease; False once it is gone (expired or revoked)."""
        try:
            answer = self.client.post("lease/keepalive", {"ID": self.lease})
        except Refused:
            return False
        return int(answer.get("result", {}).get("TTL", 0)) > 0

    def _campaign(self) -> bool:
        """Take the key if nobody holds it; True if it holds our name under our lease."""
        key = _b64(self.key)
        self.client.post(
            "kv/txn",
            {
                "compare": [
                    {"key": key, "target": "CREATE", "result": "EQUAL", "create_revision": 0}
                ],
                "success": [
                    {"request_put": {"key": key, "value": _b64(self.name), "lease": self.lease}}
                ],
            },
        )
        return current_leader(self.client) == self.name


def current_leader(client: Client, key: str = "/app/leader") -> str | None:
    """The name in the election key, or None."""
    kvs = client.post("kv/range", {"key": _b64(key)}).get("kvs", [])
    return base64.b64decode(kvs[0]["value"]).decode() if kvs else None
