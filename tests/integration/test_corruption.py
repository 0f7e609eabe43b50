"""Corruption checks on three of our members on loopback, driven by the real etcdctl.

One follower's LMDB backend is changed on purpose while it is stopped (a value in its
``key`` bucket rewritten with the ``lmdb`` package). With ``--experimental-corrupt-check-time``
the leader finds the mismatch and raises CORRUPT within one check interval; the cluster
then refuses writes with etcd's "etcdserver: corrupt cluster" and ``etcdctl alarm list``
shows the alarm. With ``--experimental-initial-corrupt-check`` a healthy member starts,
and the corrupted one refuses to start.
"""

from __future__ import annotations

import os

import lmdb
from twisted.trial.unittest import TestCase

from etcd_twisted._pb import kv_pb2
from etcd_twisted.wal.data_dir import backend_path
from tests.support.processes import (
    endpoint_statuses,
    etcdctl,
    leader_of,
    our_server,
    start_cluster,
    wait_healthy,
    wait_until,
)

#: Seconds between the leader's checks.
CHECK_INTERVAL = 2.0


def corrupt_value(data_dir: str, key: bytes) -> None:
    """Rewrite the value of ``key``'s latest record in a stopped member's key bucket."""
    env = lmdb.open(backend_path(data_dir), subdir=False, max_dbs=16)
    try:
        db = env.open_db(b"key")
        with env.begin(write=True, db=db) as txn:
            latest = None
            for rev_key, raw in txn.cursor():
                if kv_pb2.KeyValue.FromString(raw).key == key:
                    latest = (rev_key, raw)
            assert latest is not None, f"no record of {key!r}"
            kv = kv_pb2.KeyValue.FromString(latest[1])
            kv.value = b"rotten"
            txn.put(latest[0], kv.SerializeToString())
    finally:
        env.close()


class CorruptionCheckTests(TestCase):
    timeout = 240

    async def test_corrupted_follower(self) -> None:
        """CORRUPT is raised within one interval, writes refused, the member cannot restart."""
        base = self.mktemp()
        extra = ["--experimental-corrupt-check-time", f"{CHECK_INTERVAL:g}s"]
        cluster = await start_cluster(self, 3, base, extra=extra)
        endpoints = cluster.endpoints
        for i in range(20):
            put = await etcdctl(endpoints, "put", f"k{i}", f"v{i}")
            self.assertEqual(put.code, 0, put.err)
        leader = await leader_of(endpoints.split(","))
        f = next(i for i, m in enumerate(cluster.members) if m.client_url != leader)
        member, process = cluster.members[f], cluster.processes[f]
        statuses = await endpoint_statuses([member.client_url])
        follower_id = statuses[member.client_url]["header"]["member_id"]

        # A healthy member passes the initial check and serves.
        await process.stop()
        checked_dir = os.path.join(base, "checked")
        os.makedirs(checked_dir)
        checking = our_server(
            member,
            checked_dir,
            [*extra, "--experimental-initial-corrupt-check"],
            initial_cluster=cluster.initial_cluster,
        )
        checking.start()
        self.addCleanup(checking.stop)
        await wait_healthy(member.client_url, checking)
        self.assertIn("initial corruption checking passed", checking.output())
        await checking.stop()

        # Its data changed behind its back: the leader raises CORRUPT within an interval.
        corrupt_value(member.data_dir, b"k7")
        cluster.restart(f)
        await wait_healthy(member.client_url, process)

        async def alarmed() -> bool:
            listed = await etcdctl(leader, "alarm", "list")
            return f"memberID:{follower_id} alarm:CORRUPT" in listed.out

        took = await wait_until(alarmed, CHECK_INTERVAL + 5.0, "the CORRUPT alarm")
        print(f"\n[corruption] CORRUPT raised {took:.2f}s after the member served")
        self.assertLess(took, CHECK_INTERVAL + 3.0)
        for url in endpoints.split(","):
            listed = await etcdctl(url, "alarm", "list")
            self.assertEqual(listed.out.strip(), f"memberID:{follower_id} alarm:CORRUPT")
        refused = await etcdctl(endpoints, "put", "after", "x")
        self.assertNotEqual(refused.code, 0)
        self.assertIn("etcdserver: corrupt cluster", refused.err)

        # With the initial check on, the corrupted member refuses to start.
        await process.stop()
        refusing = our_server(
            member,
            os.path.join(base, "checked"),
            ["--experimental-initial-corrupt-check"],
            initial_cluster=cluster.initial_cluster,
        )
        refusing.start()
        self.addCleanup(refusing.stop)

        async def exited() -> bool:
            return not refusing.running

        await wait_until(exited, 30.0, "the corrupted member to exit")
        self.assertEqual(refusing.child.exit, 1)
        self.assertIn(f"{follower_id:x} found data inconsistency with peers", refusing.output())
