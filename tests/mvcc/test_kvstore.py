"""Tests for etcd_twisted.mvcc.kvstore: revisions, ranges, txns, compaction, restore."""

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted.mvcc.errors import CompactedError, FutureRevisionError
from etcd_twisted.mvcc.kvstore import KVStore
from tests.support.memory_backend import MemoryBackend


def put(store: KVStore, key: bytes, value: bytes, lease: int = 0) -> int:
    txn = store.write()
    txn.put(key, value, lease)
    return txn.end()


def delete(store: KVStore, key: bytes, end: bytes | None = None) -> tuple[int, int]:
    txn = store.write()
    n = txn.delete_range(key, end)
    return n, txn.end()


class RevisionTests(SynchronousTestCase):
    def test_new_store_is_at_revision_one(self) -> None:
        """A new store is at revision 1 with nothing in it."""
        store = KVStore(MemoryBackend())
        self.assertEqual(store.current_rev, 1)
        result = store.range(b"a", b"\0")
        self.assertEqual((result.kvs, result.count, result.rev), ([], 0, 1))

    def test_put_fields(self) -> None:
        """Puts set create/mod revision and version; version counts within a generation."""
        store = KVStore(MemoryBackend())
        self.assertEqual(put(store, b"k", b"v1"), 2)
        self.assertEqual(put(store, b"k", b"v2", lease=7), 3)
        kv = store.range(b"k").kvs[0]
        self.assertEqual(
            (kv.key, kv.value, kv.create_revision, kv.mod_revision, kv.version, kv.lease),
            (b"k", b"v2", 2, 3, 2, 7),
        )

    def test_delete_resets_version(self) -> None:
        """After a delete, a put starts a new generation: version 1, new create revision."""
        store = KVStore(MemoryBackend())
        put(store, b"k", b"v")
        self.assertEqual(delete(store, b"k"), (1, 3))
        put(store, b"k", b"w")
        kv = store.range(b"k").kvs[0]
        self.assertEqual((kv.create_revision, kv.mod_revision, kv.version), (4, 4, 1))

    def test_delete_of_nothing_keeps_revision(self) -> None:
        """Deleting a missing key changes nothing, so the revision stays."""
        store = KVStore(MemoryBackend())
        put(store, b"k", b"v")
        self.assertEqual(delete(store, b"nope"), (0, 2))
        self.assertEqual(delete(store, b"a", b"b"), (0, 2))

    def test_txn_shares_one_revision(self) -> None:
        """All changes of one write share a revision, and later ops see earlier ones."""
        store = KVStore(MemoryBackend())
        txn = store.write()
        txn.put(b"a", b"1")
        txn.put(b"a", b"2")
        txn.put(b"b", b"3")
        self.assertEqual([kv.value for kv in txn.range(b"a", b"c").kvs], [b"2", b"3"])
        self.assertEqual(txn.range(b"a").kvs[0].version, 2)
        self.assertEqual(txn.delete_range(b"b"), 1)
        self.assertEqual(txn.end(), 2)
        result = store.range(b"\0", b"\0")
        self.assertEqual([(kv.key, kv.value, kv.version) for kv in result.kvs], [(b"a", b"2", 2)])
        self.assertEqual([c.deleted for c in txn.changes], [False, False, False, True])


class RangeTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.store = KVStore(MemoryBackend())
        for key in (b"a", b"b", b"c", b"d"):
            put(self.store, key, key * 2)

    def test_range_forms(self) -> None:
        """Single key, [key, end), from-key and everything."""
        keys = lambda r: [kv.key for kv in r.kvs]  # noqa: E731
        self.assertEqual(keys(self.store.range(b"b")), [b"b"])
        self.assertEqual(keys(self.store.range(b"b", b"d")), [b"b", b"c"])
        self.assertEqual(keys(self.store.range(b"c", b"\0")), [b"c", b"d"])
        self.assertEqual(keys(self.store.range(b"\0", b"\0")), [b"a", b"b", b"c", b"d"])

    def test_limit_and_count(self) -> None:
        """A limit cuts the keys but count is the whole range; count_only returns no keys."""
        result = self.store.range(b"a", b"\0", limit=2)
        self.assertEqual(([kv.key for kv in result.kvs], result.count), ([b"a", b"b"], 4))
        result = self.store.range(b"a", b"\0", count_only=True)
        self.assertEqual((result.kvs, result.count), ([], 4))

    def test_historical_and_bad_revisions(self) -> None:
        """A past revision reads the past; a future one is refused."""
        put(self.store, b"a", b"new")
        self.assertEqual(self.store.range(b"a", rev=2).kvs[0].value, b"aa")
        self.assertEqual(self.store.range(b"a").kvs[0].value, b"new")
        self.assertEqual(self.store.range(b"d", rev=4).kvs, [])
        self.assertRaises(FutureRevisionError, self.store.range, b"a", None, 7)


class CompactionTests(SynchronousTestCase):
    def test_compaction_rules(self) -> None:
        """Reads below the compacted revision fail; at it they work; compacting again fails."""
        store = KVStore(MemoryBackend())
        for i in range(5):
            put(store, b"k", b"%d" % i)
        store.compact(4)
        self.assertRaises(CompactedError, store.range, b"k", None, 3)
        self.assertEqual(store.range(b"k", rev=4).kvs[0].value, b"2")
        self.assertRaises(CompactedError, store.compact, 4)
        self.assertRaises(CompactedError, store.compact, 2)
        self.assertRaises(FutureRevisionError, store.compact, 7)

    def test_physical_compaction_frees_records_in_steps(self) -> None:
        """Compaction deletes superseded records in bounded steps and keeps what reads need."""
        backend = MemoryBackend()
        store = KVStore(backend)
        for i in range(50):
            put(store, b"k%d" % (i % 5), b"v%d" % i)
        delete(store, b"k0")
        before = len(backend.batch_tx.buckets[b"key"])
        store.compact(store.current_rev)
        steps = 0
        while not store.compaction_step(limit=7):
            steps += 1
        self.assertGreater(steps, 3)
        self.assertEqual(len(backend.batch_tx.buckets[b"key"]), 4)
        self.assertLess(4, before)
        self.assertEqual(
            [kv.key for kv in store.range(b"\0", b"\0").kvs], [b"k1", b"k2", b"k3", b"k4"]
        )

    def test_hash_kv_ignores_pending_physical_compaction(self) -> None:
        """HashKV is the same before and after the physical compaction finishes."""
        store = KVStore(MemoryBackend())
        for i in range(20):
            put(store, b"k%d" % (i % 3), b"v%d" % i)
        store.compact(15)
        before = store.hash_kv()
        while not store.compaction_step(limit=2):
            pass
        self.assertEqual(store.hash_kv(), before)
        self.assertEqual(before[1:], (21, 15))


class RestoreTests(SynchronousTestCase):
    def test_restore_rebuilds_everything(self) -> None:
        """A store reopened on the same backend has the same keys, revisions and compaction."""
        backend = MemoryBackend()
        store = KVStore(backend)
        for i in range(10):
            put(store, b"k%d" % (i % 4), b"v%d" % i)
        delete(store, b"k1")
        store.compact(8)
        reopened = KVStore(backend)
        self.assertEqual(reopened.current_rev, store.current_rev)
        self.assertEqual(reopened.compact_main_rev, 8)
        self.assertTrue(reopened.compacting)
        self.assertEqual(reopened.range(b"\0", b"\0").kvs, store.range(b"\0", b"\0").kvs)
        self.assertEqual(reopened.hash_kv(), store.hash_kv())

    def test_restore_reattaches_leases(self) -> None:
        """Live keys with a lease are attached to it on restore."""
        backend = MemoryBackend()
        store = KVStore(backend)
        put(store, b"a", b"1", lease=5)
        put(store, b"b", b"2", lease=5)
        delete(store, b"b")

        class Hooks:
            def __init__(self) -> None:
                self.attached: list[tuple[int, bytes]] = []

            def attach(self, lease_id: int, key: bytes) -> None:
                self.attached.append((lease_id, key))

            def detach(self, lease_id: int, key: bytes) -> None:
                raise AssertionError("no detach on restore")

            def get_lease(self, key: bytes) -> int:
                raise AssertionError("no lookups on restore")

        hooks = Hooks()
        KVStore(backend, hooks)
        self.assertEqual(hooks.attached, [(5, b"a")])


# --- a model check: random writes, deletes and compactions against a list of snapshots.

keys = st.sampled_from([b"a", b"b", b"c", b"d"])
ops = st.lists(
    st.one_of(
        st.tuples(st.just("put"), keys, st.binary(max_size=3)),
        st.tuples(st.just("del"), keys, st.sampled_from([None, b"c", b"\0"])),
        st.tuples(st.just("compact"), st.integers(0, 6), st.just(None)),
    ),
    max_size=40,
)


class ModelTests(SynchronousTestCase):
    @settings(max_examples=200, deadline=None)
    @given(ops)
    def test_reads_match_model(self, program: list[tuple]) -> None:
        """Every readable revision returns exactly the model's snapshot, also after restore."""
        backend = MemoryBackend()
        store = KVStore(backend)
        snapshots = {1: {}}  # rev -> {key: (value, create, mod, version)}
        state: dict[bytes, tuple[bytes, int, int, int]] = {}
        for op, a, b in program:
            if op == "put":
                rev = put(store, a, b)
                old = state.get(a)
                state[a] = (b, old[1] if old else rev, rev, old[3] + 1 if old else 1)
                snapshots[rev] = dict(state)
            elif op == "del":
                end = b
                doomed = [
                    k for k in state
                    if (k == a if end is None else (k >= a and (end == b"\0" or k < end)))
                ]  # fmt: skip
                n, rev = delete(store, a, end)
                self.assertEqual(n, len(doomed))
                for k in doomed:
                    del state[k]
                if doomed:
                    snapshots[rev] = dict(state)
            elif store.compact_main_rev < a <= store.current_rev:
                store.compact(a)
                store.compaction_step(limit=3)
        for reader in (store, KVStore(backend)):
            current = reader.current_rev
            self.assertEqual(current, max(snapshots))
            for rev in range(max(reader.compact_main_rev, 1), current + 1):
                expected = snapshots[max(r for r in snapshots if r <= rev)]
                got = reader.range(b"\0", b"\0", rev=rev).kvs
                self.assertEqual(
                    {
                        kv.key: (kv.value, kv.create_revision, kv.mod_revision, kv.version)
                        for kv in got
                    },
                    expected,
                )
