"""Crash safety: kill -9 the member at random moments under acknowledged writes.

A client writes distinct keys one after another through the JSON gateway and
records each write the server acknowledged (with its revision). The member is
SIGKILLed at a random moment, restarted on the same data dir, and every
acknowledged write must be there, with the revision never below the highest
acknowledged one. ``ETCD_TWISTED_KILL9_ROUNDS`` runs more rounds than CI's default.
"""

from __future__ import annotations

import base64
import json
import os
import random

import treq.client
from twisted.internet import reactor
from twisted.internet.defer import ensureDeferred
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase
from twisted.web.client import Agent, HTTPConnectionPool

from tests.support.processes import new_member, our_server, wait_healthy

ROUNDS = int(os.environ.get("ETCD_TWISTED_KILL9_ROUNDS", "8"))


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class Kill9Tests(TestCase):
    timeout = 60 + 15 * ROUNDS

    def setUp(self) -> None:
        self.http = treq.client.HTTPClient(
            Agent(reactor, pool=HTTPConnectionPool(reactor, persistent=False))
        )

    async def post(self, url: str, path: str, body: dict) -> dict:
        response = await self.http.post(url + path, json.dumps(body).encode(), timeout=5)
        return json.loads(await response.content())

    async def test_acknowledged_writes_survive_kill9(self) -> None:
        """Every acknowledged write survives SIGKILL at random moments; revisions never go back."""
        rng = random.Random(int(os.environ.get("ETCD_TWISTED_KILL9_SEED", "7")))
        base = self.mktemp()
        member = new_member(base)
        acked: dict[str, int] = {}
        highest = 1
        counter = 0
        for _ in range(ROUNDS):
            process = our_server(member, base)
            process.start()
            self.addCleanup(process.kill)
            await wait_healthy(member.client_url, process)
            # Everything acknowledged before is there, at a revision no lower than before.
            found = await self.post(
                member.client_url, "/v3/kv/range", {"key": b64(b"k"), "range_end": b64(b"l")}
            )
            present = {base64.b64decode(kv["key"]).decode() for kv in found.get("kvs", [])}
            missing = set(acked) - present
            self.assertEqual(missing, set(), f"acknowledged writes lost: {sorted(missing)[:5]}")
            self.assertGreaterEqual(int(found["header"]["revision"]), highest)
            # Write until a random moment, then kill -9 with writes in flight.
            deadline = reactor.seconds() + rng.uniform(0.05, 0.8)
            writer = ensureDeferred(self._write_until_killed(member.client_url, acked, counter))
            await deferLater(reactor, max(0.0, deadline - reactor.seconds()), lambda: None)
            await process.kill()
            counter, round_highest = await writer
            highest = max(highest, round_highest)
        self.assertGreater(len(acked), ROUNDS)

    async def _write_until_killed(
        self, url: str, acked: dict[str, int], counter: int
    ) -> tuple[int, int]:
        highest = 0
        while True:
            key = f"k{counter:08d}"
            counter += 1
            try:
                body = await self.post(
                    url, "/v3/kv/put", {"key": b64(key.encode()), "value": "dg=="}
                )
            except Exception:  # noqa: BLE001 - the member died under this request
                return counter, highest
            revision = int(body["header"]["revision"])
            acked[key] = revision
            highest = max(highest, revision)
