"""etcdctl 3.5.1's KV commands against our server, checked against real etcd 3.5.1.

Each test starts a fresh real etcd and a fresh server of ours, runs the same etcdctl
commands against both, and requires the same exit code, stdout and stderr once the
identities that must differ (cluster/member ids, raft term, endpoint addresses,
timings, the database file size) are normalised. Many tests also pin the literal
output, so a change in both servers would still be noticed.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any

from twisted.trial.unittest import TestCase

from tests.support.processes import Completed, etcdctl, etcdctl_input, start_pair

#: What ``etcdctl txn -i`` prints while it reads its input.
PROMPTS = "compares:\nsuccess requests (get, put, del):\nfailure requests (get, put, del):\n"


def _normalise_json(value: Any) -> Any:
    """Zero the fields that differ between two clusters by nature."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if k in ("cluster_id", "member_id", "raft_term", "ID", "leader", "raftTerm"):
                v = 0
            elif k in ("raftIndex", "raftAppliedIndex"):
                # etcd proposes its cluster version (ClusterVersionSet) a moment after
                # start; ours does not, so raft indexes differ by one or so.
                v = "index"
            elif k in ("dbSize", "dbSizeInUse"):
                v = "size"
            elif k == "took":
                v = "took"
            elif k in ("endpoint", "clientURLs", "peerURLs", "Endpoint"):
                v = "url"
            else:
                v = _normalise_json(v)
            out[k] = v
        return out
    if isinstance(value, list):
        return [_normalise_json(v) for v in value]
    return value


def normalise(result: Completed, urls: list[str]) -> tuple[int, Any, str]:
    """``(code, stdout, stderr)`` with addresses replaced and JSON normalised."""
    out, err = result.out, result.err
    for url in urls:
        host = url.removeprefix("http://")
        out, err = out.replace(url, "URL").replace(host, "URL"), err.replace(host, "URL")
    out = re.sub(r"took = [0-9.]+[µmn]?s", "took = T", out)
    out = re.sub(r'^"(ClusterID|MemberID|RaftTerm|ID)" : \d+$', r'"\1" : 0', out, flags=re.M)
    # etcd-client's log lines: a timestamp and the client's address in memory.
    err = re.sub(r'"ts":"[^"]*"', '"ts":"T"', err)
    err = re.sub(r"etcd-endpoints://0x[0-9a-f]+/", "etcd-endpoints://P/", err)
    stripped = out.removeprefix(PROMPTS).strip()
    if stripped.startswith(("{", "[")):
        try:
            return result.code, _normalise_json(json.loads(stripped)), err
        except ValueError:
            pass
    return result.code, out, err


def without_client_logs(err: str) -> str:
    """stderr without etcd-client's JSON log lines (its retry warnings)."""
    return "".join(line for line in err.splitlines(True) if not line.startswith('{"level"'))


class EtcdctlCase(TestCase):
    """Starts one real etcd and one server of ours for each test."""

    timeout = 120
    maxDiff = None

    async def setUp(self) -> None:
        (etcd_member, _), (ours_member, _) = await start_pair(self, self.mktemp())
        self.etcd = etcd_member.client_url
        self.ours = ours_member.client_url

    async def both(self, *args: str, stdin: bytes | None = None) -> tuple[Completed, Completed]:
        """Run one etcdctl command against both servers (etcd first, then ours)."""
        results = []
        for url in (self.etcd, self.ours):
            if stdin is None:
                results.append(await etcdctl(url, *args))
            else:
                results.append(await etcdctl_input(url, stdin, *args))
        return results[0], results[1]

    async def same(self, *args: str, stdin: bytes | None = None) -> tuple[int, Any, str]:
        """Run a command against both; assert identical normalised results; return ours."""
        etcd, ours = await self.both(*args, stdin=stdin)
        urls = [self.etcd, self.ours]
        want, got = normalise(etcd, urls), normalise(ours, urls)
        self.assertEqual(got, want, f"etcdctl {' '.join(args)}")
        return got[0], got[1], without_client_logs(got[2])

    async def json(self, *args: str) -> Any:
        """``same`` with ``-w json``, returning the parsed output."""
        code, out, err = await self.same("-w", "json", *args)
        self.assertEqual((code, err), (0, ""), out)
        return out

    async def seed(self) -> None:
        """The same keys on both servers: revisions 2..7."""
        for key, value in [
            ("foo", "bar"),
            ("foo1", "bar1"),
            ("foo2", "bar2"),
            ("zoo", "val"),
            ("foo1", "new1"),
            ("a", "zzz"),
        ]:
            code, out, err = await self.same("put", key, value)
            self.assertEqual((code, out, err), (0, "OK\n", ""))


def _kvs(response: dict[str, Any]) -> list[tuple[str, str]]:
    """``(key, value)`` pairs of a JSON range response (base64 decoded)."""
    return [
        (base64.b64decode(kv["key"]).decode(), base64.b64decode(kv.get("value", "")).decode())
        for kv in response.get("kvs", [])
    ]


class GetTests(EtcdctlCase):
    """``etcdctl get`` and its flags."""

    async def test_simple_output(self) -> None:
        """Put answers OK; get prints key and value lines; a missing key prints nothing."""
        await self.seed()
        self.assertEqual(await self.same("get", "foo"), (0, "foo\nbar\n", ""))
        self.assertEqual(await self.same("get", "nope"), (0, "", ""))
        self.assertEqual(await self.same("get", "foo", "--print-value-only"), (0, "bar\n", ""))
        self.assertEqual(await self.same("get", "foo", "foo2"), (0, "foo\nbar\nfoo1\nnew1\n", ""))

    async def test_json_fields(self) -> None:
        """JSON output carries the header revision and every KeyValue field."""
        await self.seed()
        out = await self.json("get", "foo1")
        self.assertEqual(out["header"]["revision"], 7)
        self.assertEqual(out["count"], 1)
        kv = out["kvs"][0]
        self.assertEqual((kv["create_revision"], kv["mod_revision"], kv["version"]), (3, 6, 2))

    async def test_prefix_from_key_limit(self) -> None:
        """--prefix, --from-key and --limit select the same keys and set more/count."""
        await self.seed()
        out = await self.json("get", "foo", "--prefix")
        self.assertEqual(_kvs(out), [("foo", "bar"), ("foo1", "new1"), ("foo2", "bar2")])
        out = await self.json("get", "foo", "--prefix", "--limit", "2")
        self.assertEqual((out["count"], out.get("more")), (3, True))
        self.assertEqual(len(out["kvs"]), 2)
        out = await self.json("get", "foo1", "--from-key")
        self.assertEqual([k for k, _ in _kvs(out)], ["foo1", "foo2", "zoo"])
        out = await self.json("get", "", "--from-key", "--limit", "1")
        self.assertEqual((_kvs(out), out["count"]), ([("a", "zzz")], 5))
        self.assertEqual(
            await self.same("get", "", "--prefix", "--keys-only"),
            (0, "a\n\nfoo\n\nfoo1\n\nfoo2\n\nzoo\n\n", ""),
        )

    async def test_keys_only_count_only(self) -> None:
        """--keys-only drops values; --count-only returns only the count."""
        await self.seed()
        out = await self.json("get", "foo", "--prefix", "--keys-only")
        self.assertEqual(_kvs(out), [("foo", ""), ("foo1", ""), ("foo2", "")])
        for form in ("simple", "json"):
            self.assertEqual(
                await self.same("-w", form, "get", "foo", "--prefix", "--count-only"),
                (128, "", "Error: --count-only is only for `--write-out=fields`\n"),
            )
        code, out, err = await self.same("-w", "fields", "get", "foo", "--prefix", "--count-only")
        self.assertIn('"Count" : 3\n', out)

    async def test_sort(self) -> None:
        """--sort-by each target with each --order gives etcd's order."""
        await self.seed()
        for target in ("KEY", "VERSION", "CREATE", "MODIFY", "VALUE"):
            for order in ("", "ASCEND", "DESCEND"):
                args = ["get", "", "--from-key", "--sort-by", target]
                if order:
                    args += ["--order", order]
                await self.json(*args)
        out = await self.json("get", "", "--from-key", "--sort-by", "MODIFY", "--order", "DESCEND")
        self.assertEqual([k for k, _ in _kvs(out)], ["a", "foo1", "zoo", "foo2", "foo"])
        # No --order: etcdctl sends SortOrder NONE, so the server keeps the limit, takes
        # the first 3 keys by key order, sorts those by value and cuts to 2.
        out = await self.json("get", "", "--from-key", "--sort-by", "VALUE", "--limit", "2")
        self.assertEqual(_kvs(out), [("foo", "bar"), ("foo1", "new1")])
        out = await self.json(
            "get", "", "--from-key", "--sort-by", "VALUE", "--order", "ASCEND", "--limit", "2"
        )
        self.assertEqual(_kvs(out), [("foo", "bar"), ("foo2", "bar2")])
        out = await self.json("get", "", "--from-key", "--order", "DESCEND", "--limit", "2")
        self.assertEqual([k for k, _ in _kvs(out)], ["zoo", "foo2"])

    async def test_rev(self) -> None:
        """--rev reads history; a future revision is an error with etcd's text."""
        await self.seed()
        out = await self.json("get", "foo1", "--rev", "3")
        self.assertEqual((_kvs(out), out["header"]["revision"]), ([("foo1", "bar1")], 7))
        self.assertEqual(await self.same("get", "zoo", "--rev", "4"), (0, "", ""))
        code, out, err = await self.same("get", "foo", "--rev", "100")
        self.assertEqual(
            (code, err), (1, "Error: etcdserver: mvcc: required revision is a future revision\n")
        )

    async def test_consistency(self) -> None:
        """Serializable and linearizable reads give the same answer on one member."""
        await self.seed()
        for level in ("s", "l"):
            out = await self.json("get", "foo", "--prefix", f"--consistency={level}")
            self.assertEqual(out["count"], 3)
        code, _, err = await self.same("get", "foo", "--consistency=x")
        self.assertEqual((code, err), (4, 'Error: unknown consistency flag "x"\n'))


class PutTests(EtcdctlCase):
    """``etcdctl put`` and its flags."""

    async def test_prev_kv(self) -> None:
        """--prev-kv prints the previous pair (nothing for a new key)."""
        await self.seed()
        self.assertEqual(
            await self.same("put", "foo", "baz", "--prev-kv"), (0, "OK\nfoo\nbar\n", "")
        )
        self.assertEqual(await self.same("put", "new", "v", "--prev-kv"), (0, "OK\n", ""))
        out = await self.json("put", "foo", "qux", "--prev-kv")
        self.assertEqual(out["header"]["revision"], 10)
        self.assertEqual(out["prev_kv"]["version"], 2)

    async def test_ignore_value(self) -> None:
        """--ignore-value keeps the value; on a missing key it is "key not found"."""
        await self.seed()
        self.assertEqual(await self.same("put", "foo", "--ignore-value"), (0, "OK\n", ""))
        self.assertEqual(await self.same("get", "foo"), (0, "foo\nbar\n", ""))
        self.assertEqual(
            await self.same("put", "missing", "--ignore-value"),
            (1, "", "Error: etcdserver: key not found\n"),
        )
        # etcdctl refuses a value with --ignore-value itself ("value is provided" is
        # the server's answer to such a request: see test_differential).
        self.assertEqual(
            await self.same("put", "foo", "v", "--ignore-value"),
            (128, "", "Error: put command needs only 1 argument when 'ignore-value' is set\n"),
        )

    async def test_ignore_lease_and_unknown_lease(self) -> None:
        """--ignore-lease keeps the (absent) lease; an unknown --lease is refused."""
        await self.seed()
        self.assertEqual(await self.same("put", "foo", "v2", "--ignore-lease"), (0, "OK\n", ""))
        out = await self.json("get", "foo")
        self.assertEqual(out["kvs"][0].get("lease"), None)
        self.assertEqual(
            await self.same("put", "missing", "v", "--ignore-lease"),
            (1, "", "Error: etcdserver: key not found\n"),
        )
        self.assertEqual(
            await self.same("put", "foo", "v", "--lease", "1234abcd"),
            (1, "", "Error: etcdserver: requested lease not found\n"),
        )
        self.assertEqual(
            await self.same("put", "foo", "v", "--lease", "zz"),
            (
                128,
                "",
                'Error: bad lease ID (strconv.ParseInt: parsing "zz": invalid syntax), expecting ID in Hex\n',
            ),
        )

    async def test_missing_arguments(self) -> None:
        """etcdctl's own argument errors (the server never sees them)."""
        code, out, err = await self.same("put")
        self.assertEqual(code, 128)
        self.assertIn("put command needs 1 argument and input from stdin or 2 arguments", err)
        code, out, err = await self.same("get")
        self.assertIn("get command needs one argument as key", err)


class DelTests(EtcdctlCase):
    """``etcdctl del`` and its flags."""

    async def test_delete_forms(self) -> None:
        """del prints the count; --prefix, --from-key, ranges and --prev-kv as etcd."""
        await self.seed()
        self.assertEqual(await self.same("del", "nope"), (0, "0\n", ""))
        self.assertEqual(await self.same("del", "foo", "--prev-kv"), (0, "1\nfoo\nbar\n", ""))
        out = await self.json("del", "foo", "--prefix", "--prev-kv")
        self.assertEqual((out["deleted"], out["header"]["revision"]), (2, 9))
        self.assertEqual([k for k, _ in _kvs({"kvs": out["prev_kvs"]})], ["foo1", "foo2"])
        self.assertEqual(await self.same("del", "b", "--from-key"), (0, "1\n", ""))
        self.assertEqual(await self.same("get", "", "--from-key"), (0, "a\nzzz\n", ""))
        self.assertEqual(await self.same("del", "a", "b"), (0, "1\n", ""))
        out = await self.json("del", "", "--from-key")
        self.assertEqual((out.get("deleted"), out["header"]["revision"]), (None, 11))


class TxnTests(EtcdctlCase):
    """``etcdctl txn -i`` with guards on value, version, create and mod revisions."""

    async def test_success_branch(self) -> None:
        """All compares hold: the success ops run at one revision."""
        await self.seed()
        stdin = (
            b'value("foo") = "bar"\nversion("foo1") = "2"\ncreate("foo1") = "3"\n'
            b'mod("foo1") > "5"\n\nput k1 v1\nget foo1\ndel zoo\n\nput k2 v2\n\n'
        )
        code, out, err = await self.same("txn", "-i", stdin=stdin)
        self.assertEqual((code, out, err), (0, PROMPTS + "SUCCESS\n\nOK\n\nfoo1\nnew1\n\n1\n", ""))
        out = await self.json("get", "k1")
        self.assertEqual(out["kvs"][0]["mod_revision"], 8)

    async def test_failure_branch(self) -> None:
        """One compare fails: the failure ops run; JSON shows each response."""
        await self.seed()
        stdin = b'value("foo") = "bar"\nversion("foo1") < "2"\n\nput k1 v1\n\nput k2 v2\nget k2\n\n'
        code, out, err = await self.same("txn", "-i", stdin=stdin)
        self.assertEqual((code, out, err), (0, PROMPTS + "FAILURE\n\nOK\n\nk2\nv2\n", ""))
        stdin = b'mod("missing") = "0"\ncreate("foo") != "0"\n\nget foo\n\n\n'
        code, out, err = await self.same("-w", "json", "txn", "-i", stdin=stdin)
        self.assertEqual((code, out["succeeded"], err), (0, True, ""))
        rng = out["responses"][0]["Response"]["response_range"]
        self.assertEqual((rng["header"], rng["count"]), ({"revision": 8}, 1))

    async def test_guard_errors(self) -> None:
        """Duplicate keys in a branch and bad compare syntax are refused as etcd does."""
        await self.seed()
        code, out, err = await self.same("txn", "-i", stdin=b"\nput a 1\nput a 2\n\n\n")
        self.assertEqual(
            (code, err), (1, "Error: etcdserver: duplicate key given in txn request\n")
        )
        code, out, err = await self.same("txn", "-i", stdin=b'bogus("a") = "1"\n\n\n\n')
        self.assertEqual(
            (code, err),
            (3, 'Error: malformed comparison: bogus("a") = "1" (unknown target bogus)\n'),
        )
        code, out, err = await self.same("txn", "-i", stdin=b"\nput x --ignore-value\n\n\n")
        self.assertEqual((code, err), (1, "Error: etcdserver: key not found\n"))


class CompactionTests(EtcdctlCase):
    """``etcdctl compaction`` and reads below the compacted revision."""

    async def test_compaction(self) -> None:
        """Compaction prints its revision; older reads, repeats and the future are errors."""
        await self.seed()
        self.assertEqual(await self.same("compaction", "4"), (0, "compacted revision 4\n", ""))
        self.assertEqual(
            await self.same("get", "foo1", "--rev", "3"),
            (1, "", "Error: etcdserver: mvcc: required revision has been compacted\n"),
        )
        out = await self.json("get", "foo1", "--rev", "4")
        self.assertEqual(_kvs(out), [("foo1", "bar1")])
        self.assertEqual(
            await self.same("compaction", "4"),
            (1, "", "Error: etcdserver: mvcc: required revision has been compacted\n"),
        )
        self.assertEqual(
            await self.same("compaction", "100"),
            (1, "", "Error: etcdserver: mvcc: required revision is a future revision\n"),
        )
        self.assertEqual(
            await self.same("compaction", "--physical", "6"), (0, "compacted revision 6\n", "")
        )
        code, out, err = await self.same("compaction", "x")
        self.assertEqual(code, 1)


class ClusterCommandTests(EtcdctlCase):
    """``endpoint status``, ``endpoint health`` and ``member list``."""

    async def test_endpoint_status(self) -> None:
        """Status: version, revision, leadership and raft indexes as etcd reports them."""
        await self.seed()
        out = await self.json("endpoint", "status")
        status = out[0]["Status"]
        self.assertEqual(status["version"], "3.5.1")
        self.assertEqual(status["header"]["revision"], 7)

    async def test_endpoint_health(self) -> None:
        """Health: "is healthy: successfully committed proposal"."""
        code, out, err = await self.same("endpoint", "health")
        self.assertEqual(code, 0)
        self.assertEqual(out, "URL is healthy: successfully committed proposal: took = T\n")
        out = await self.json("endpoint", "health")
        self.assertEqual(out[0]["health"], True)

    async def test_member_list(self) -> None:
        """Member list: one started member named default with its URLs."""
        out = await self.json("member", "list")
        self.assertEqual(out["members"][0]["name"], "default")
        etcd, ours = await self.both("member", "list")
        pattern = r"^[0-9a-f]+, started, default, http://127\.0\.0\.1:\d+, http://127\.0\.0\.1:\d+, false\n$"
        self.assertRegex(etcd.out, pattern)
        self.assertRegex(ours.out, pattern)
