"""``--force-new-cluster``, etcd's recovery after losing quorum, on real processes.

Three members take some keys and all stop; one restarts with ``--force-new-cluster``:
it must lead alone, list one member, have every key, and take writes. The same steps
run against real etcd 3.5.1 for comparison.
"""

from __future__ import annotations

import json

from twisted.trial.unittest import TestCase

from tests.support.processes import etcdctl, start_cluster, wait_healthy


class ForceNewClusterTests(TestCase):
    timeout = 240

    async def recover(self, ours: bool) -> None:
        cluster = await start_cluster(self, 3, self.mktemp(), ours=ours)
        for i in range(20):
            put = await etcdctl(cluster.endpoints, "put", f"k{i:02d}", f"v{i}")
            self.assertEqual(put.code, 0, put.err)
        for process in cluster.processes:
            await process.stop()
        member = cluster.members[1]
        survivor = cluster.factory(
            member,
            cluster.base_dir,
            ["--force-new-cluster"],
            initial_cluster=cluster.initial_cluster,
        )
        survivor.start()
        self.addCleanup(survivor.stop)
        await wait_healthy(member.client_url, survivor, 30.0)

        listed = await etcdctl(member.client_url, "member", "list", "-w", "json")
        members = json.loads(listed.out)["members"]
        self.assertEqual([m["name"] for m in members], [member.name])
        status = await etcdctl(member.client_url, "endpoint", "status", "-w", "json")
        (row,) = json.loads(status.out)
        self.assertEqual(row["Status"]["leader"], row["Status"]["header"]["member_id"])
        keys = await etcdctl(member.client_url, "get", "k", "--prefix", "--keys-only")
        self.assertEqual(keys.out.split(), [f"k{i:02d}" for i in range(20)])
        put = await etcdctl(member.client_url, "put", "after", "x")
        self.assertEqual(put.code, 0, put.err)
        got = await etcdctl(member.client_url, "get", "after", "--print-value-only")
        self.assertEqual(got.out.strip(), "x")

    async def test_ours(self) -> None:
        """Our member recovers alone with every key."""
        await self.recover(ours=True)

    async def test_etcd(self) -> None:
        """Real etcd 3.5.1 does the same (the behaviour ours matches)."""
        await self.recover(ours=False)
