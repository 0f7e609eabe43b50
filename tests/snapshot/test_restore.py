"""Tests for etcd_twisted.snapshot.restore: a data dir our bootstrap starts from."""

from __future__ import annotations

import hashlib
import io
import os
from random import Random

from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted.backend import buckets
from etcd_twisted.config import parse
from etcd_twisted.membership.cluster import Member
from etcd_twisted.membership.ids import cluster_id, member_id
from etcd_twisted.server.bootstrap import bootstrap
from etcd_twisted.snapshot.restore import RestoreConfig, RestoreError, restore
from etcd_twisted.snapshot.status import HashMismatchError
from tests.backend.test_bbolt_write import bbolt_file
from tests.snapshot.helpers import snapshot_of_filled_backend

CLUSTER = {"m1": ["http://127.0.0.1:12380"], "m2": ["http://127.0.0.1:22380"]}


class RestoreTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.dir = self.mktemp()
        self.snapshot = snapshot_of_filled_backend(self.dir, keys=3000)
        self.data_dir = os.path.join(self.dir, "m1.etcd")

    def config(self, **changes: object) -> RestoreConfig:
        fields: dict[str, object] = {
            "snapshot_path": self.snapshot,
            "name": "m1",
            "data_dir": self.data_dir,
            "initial_cluster": CLUSTER,
            "initial_cluster_token": "tok",
            "peer_urls": ("http://127.0.0.1:12380",),
        }
        fields.update(changes)
        return RestoreConfig(**fields)  # type: ignore[arg-type]

    def test_bootstrap_starts_from_it(self) -> None:
        """Our bootstrap restarts from the restored dir: this member and the new cluster's
        ids, a raft snapshot at the last bootstrap entry with both members as voters, the
        data, the new members only, and the consistent index at that entry."""
        restore(self.config())
        argv = ["--name", "m1", "--data-dir", self.data_dir]
        boot = bootstrap(parse(argv, {}), Random(1))
        self.addCleanup(boot.backend.close)
        self.addCleanup(boot.wal.close)
        ids = {name: member_id(urls, "tok") for name, urls in CLUSTER.items()}
        self.assertEqual((boot.member_id, boot.cluster_id), (ids["m1"], cluster_id(ids.values())))
        self.assertFalse(boot.is_new)
        md = boot.snapshot.metadata
        self.assertEqual(
            (md.index, md.term, sorted(md.conf_state.voters)), (2, 1, sorted(ids.values()))
        )
        self.assertEqual(boot.backend.consistent_index(), (2, 1))
        tx = boot.backend.batch_tx
        self.assertEqual(len(list(tx.items(buckets.KEY))), 3000)
        self.assertEqual(tx.get(buckets.AUTH_USERS, b"alice"), b"\n\x05alice\x12\x04hash")
        self.assertEqual(tx.get(buckets.LEASE, (7).to_bytes(8, "big")), b"\x08\x07\x10\x3c")
        members = sorted(Member.from_context(v).name for _, v in tx.items(buckets.MEMBERS))
        self.assertEqual(members, ["m1", "m2"])
        self.assertEqual(list(tx.items(buckets.MEMBERS_REMOVED)), [])
        self.assertNotIn(b"confState", dict(tx.items(buckets.META)))

    def test_unknown_buckets_are_skipped(self) -> None:
        """A bucket etcd 3.5 does not have is left out, with a line saying so."""
        db = b"".join(
            bbolt_file({b"key": {b"k" * 17: b"v"}, b"meta": {}, b"zzz": {b"a": b"b"}}).chunks()
        )
        with open(self.snapshot, "wb") as f:
            f.write(db + hashlib.sha256(db).digest())
        log = io.StringIO()
        restore(self.config(), log)
        self.assertEqual(log.getvalue(), "skipping bucket 'zzz': not one of etcd 3.5's\n")
        boot = bootstrap(parse(["--name", "m1", "--data-dir", self.data_dir], {}), Random(1))
        self.addCleanup(boot.backend.close)
        self.addCleanup(boot.wal.close)
        self.assertEqual(list(boot.backend.batch_tx.items(buckets.KEY)), [(b"k" * 17, b"v")])

    def test_wal_dir(self) -> None:
        """``wal_dir`` puts the WAL elsewhere, and must not exist yet."""
        wal = os.path.join(self.dir, "wal")
        restore(self.config(wal_dir=wal))
        self.assertTrue(any(name.endswith(".wal") for name in os.listdir(wal)))
        self.assertFalse(os.path.exists(os.path.join(self.data_dir, "member", "wal")))
        with self.assertRaises(RestoreError) as caught:
            restore(self.config(wal_dir=wal, data_dir=os.path.join(self.dir, "other")))
        self.assertEqual(str(caught.exception), f'wal-dir "{wal}" exists')

    def test_refuses_a_used_data_dir(self) -> None:
        """A data dir that is not empty is left alone, with etcd's message."""
        os.makedirs(self.data_dir)
        with open(os.path.join(self.data_dir, "x"), "w"):
            pass
        with self.assertRaises(RestoreError) as caught:
            restore(self.config())
        self.assertEqual(
            str(caught.exception), f'data-dir "{self.data_dir}" not empty or could not be read'
        )

    def test_membership_flags_are_checked(self) -> None:
        """A name missing from the cluster, or peer URLs that differ, are refused as etcd does."""
        with self.assertRaises(RestoreError) as caught:
            restore(self.config(name="m3"))
        self.assertEqual(
            str(caught.exception),
            'couldn\'t find local name "m3" in the initial cluster configuration',
        )
        with self.assertRaises(RestoreError) as caught:
            restore(self.config(peer_urls=("http://127.0.0.1:9",)))
        self.assertEqual(
            str(caught.exception),
            "--initial-cluster has m1=http://127.0.0.1:12380 but missing from "
            "--initial-advertise-peer-urls=http://127.0.0.1:9",
        )
        self.assertFalse(os.path.exists(self.data_dir))

    def test_hash_is_checked_before_anything_is_written(self) -> None:
        """A damaged snapshot leaves no data dir behind."""
        with open(self.snapshot, "r+b") as f:
            f.seek(4096 * 3 + 100)
            f.write(b"!")
        self.assertRaises(HashMismatchError, restore, self.config())
        self.assertFalse(os.path.exists(self.data_dir))
