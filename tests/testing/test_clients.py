"""The test kit's members with the clients people use: python-etcd3 (gRPC), etcd3gw (the JSON
gateway) and aetcd (asyncio), each from a venv of its own (``tests/support/client_venvs``)."""

from __future__ import annotations

import os

from twisted.internet.threads import deferToThread
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import TestCase

from etcd_twisted.testing import EtcdTestMixin
from tests.support.client_venvs import check_argv

#: What each client's script prints when every check passed.
EXPECTED = {
    "etcd3": "ok put-get ok prefix ok lease ok watch ok txn ok lock ok delete",
    "etcd3gw": "ok put-get ok prefix ok lease ok watch ok txn ok delete",
    "aetcd": "ok put-get ok prefix ok lease ok watch ok delete",
}


class ClientTests(EtcdTestMixin, TestCase):
    timeout = 1200

    async def run_checks(self, name: str, endpoint: str) -> None:
        argv = await deferToThread(check_argv, name, endpoint)
        env = {"PATH": os.environ.get("PATH", "")}
        out, err, code = await getProcessOutputAndValue(argv[0], argv[1:], env=env)
        text = out.decode(errors="replace")
        self.assertEqual(
            code, 0, f"{name} at {endpoint}: {text}\n{err.decode(errors='replace')[-3000:]}"
        )
        self.assertEqual(" ".join(text.split()), EXPECTED[name])

    async def test_in_process_member(self) -> None:
        """Each client passes its checks against an in-process member."""
        member = await self.start_etcd()
        for name in EXPECTED:
            await self.run_checks(name, member.endpoint)

    async def test_cluster_members(self) -> None:
        """Each client passes against a different member of a 3-member child-process cluster
        (followers forward writes to the leader)."""
        cluster = await self.start_etcd_cluster(3)
        for name, member in zip(EXPECTED, cluster.members, strict=True):
            await self.run_checks(name, member.endpoint)

    async def test_shared_member(self) -> None:
        """Each client passes against the run's shared member, reset between clients."""
        for name in EXPECTED:
            shared = await self.shared_etcd()
            await self.run_checks(name, shared.members[0].endpoint)
