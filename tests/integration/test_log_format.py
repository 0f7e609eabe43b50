"""``twistd etcd --log-format json`` and ``--log-level``: what a real member process writes."""

from __future__ import annotations

import json
import signal

from twisted.internet.defer import ensureDeferred, gatherResults
from twisted.trial.unittest import TestCase

from tests.support.processes import etcdctl, our_server, start_member


class LogFormatTests(TestCase):
    timeout = 60

    async def test_json_lines_and_level(self) -> None:
        """With json every output line is a zap-style object; --log-level warn drops info."""
        base = self.mktemp()
        (member, json_proc), (_, quiet_proc) = await gatherResults(
            [
                ensureDeferred(
                    start_member(self, our_server, f"{base}/json", extra=["--log-format", "json"])
                ),
                ensureDeferred(
                    start_member(self, our_server, f"{base}/quiet", extra=["--log-level", "warn"])
                ),
            ],
            consumeErrors=True,
        )
        self.assertEqual((await etcdctl(member.client_url, "put", "k", "v")).code, 0)
        self.assertIn(await json_proc.stop(), (0, -signal.SIGTERM))
        self.assertIn(await quiet_proc.stop(), (0, -signal.SIGTERM))
        lines = json_proc.output().splitlines()
        self.assertGreater(len(lines), 3)
        records = [json.loads(line) for line in lines]
        for record in records:
            self.assertEqual(list(record)[:4], ["level", "ts", "caller", "msg"])
        self.assertIn("raft: leader is now", " ".join(r["msg"] for r in records))
        listening = [r for r in records if r.get("name") == "client"]
        self.assertTrue(listening, "the client listener's event keeps its fields")
        quiet = quiet_proc.output()
        self.assertNotIn("#info]", quiet)
        self.assertNotIn("leader is now", quiet)
