"""``etcdctl watch`` (3.5.1) against our server, checked against real etcd 3.5.1.

Each test starts real etcd and ours side by side, starts the same long-running
``etcdctl watch`` processes against both, makes the same writes on both, stops the
watchers (SIGINT) and requires the same output once cluster and member ids are
normalised. Watches that must see every write start at an explicit ``--rev`` so
the writes need not wait for them; a plain watch (from "now") waits until real
etcd reports its watchers in ``/metrics`` and a little more.
"""

from __future__ import annotations

import re
import signal
from collections.abc import Coroutine
from typing import Any, TypeVar

import treq
from twisted.internet import reactor
from twisted.internet.defer import ensureDeferred, gatherResults
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from tests.support.processes import (
    ClientProcess,
    Completed,
    etcdctl,
    etcdctl_input,
    spawn_etcdctl,
    start_pair,
)

T = TypeVar("T")

#: Progress notifications every second (etcd's minimum is 100 ms), for ``--progress-notify``.
EXTRA = ["--experimental-watch-progress-notify-interval", "1s"]
#: What etcdctl prints when a watch is canceled for compaction.
COMPACTED = (
    "watch was canceled (etcdserver: mvcc: required revision has been compacted)\n"
    "Error: watch is canceled by the server\n"
)


async def gather(*coros: Coroutine[Any, Any, T]) -> list[T]:
    """Run coroutines concurrently; their results in order (the first failure fails all)."""
    return await gatherResults([ensureDeferred(c) for c in coros], consumeErrors=True)


def normalise(text: str) -> str:
    """Output with the ids that differ between two clusters zeroed."""
    text = re.sub(r'"(cluster_id|member_id)":\d+', r'"\1":0', text)
    return re.sub(r'"raft_term":\d+', '"raft_term":T', text)


async def metric(url: str, name: str) -> float:
    """One unlabelled metric from ``url/metrics`` (0 if absent)."""
    response = await treq.get(url + "/metrics", timeout=2, persistent=False)
    body = (await response.content()).decode()
    found = re.search(rf"^{name} (\S+)$", body, flags=re.M)
    return float(found.group(1)) if found else 0.0


class WatchCase(TestCase):
    """Real etcd and ours, with the same etcdctl runs against both."""

    timeout = 60
    maxDiff = None

    async def setUp(self) -> None:
        (etcd, _), (ours, _) = await start_pair(self, self.mktemp(), extra=EXTRA)
        self.urls = (etcd.client_url, ours.client_url)

    async def both(self, *args: str, stdin: bytes | None = None) -> tuple[Completed, Completed]:
        """A short etcdctl command against both servers (in parallel)."""
        if stdin is None:
            ds = [etcdctl(url, *args) for url in self.urls]
        else:
            ds = [etcdctl_input(url, stdin, *args) for url in self.urls]
        etcd, ours = await gather(*ds)
        return etcd, ours

    async def write(self, *args: str, stdin: bytes | None = None) -> None:
        """The same write on both servers; both must succeed alike."""
        etcd, ours = await self.both(*args, stdin=stdin)
        self.assertEqual((ours.code, ours.out), (etcd.code, etcd.out), args)
        self.assertEqual(etcd.code, 0, etcd.err)

    def watch(self, *args: str) -> tuple[ClientProcess, ClientProcess]:
        """Start ``etcdctl watch ARGS`` against both."""
        etcd, ours = (spawn_etcdctl(self, url, "watch", *args) for url in self.urls)
        return etcd, ours

    async def established(self, watchers: int) -> None:
        """Wait until both servers report ``watchers`` watchers."""
        deadline = reactor.seconds() + 10
        for url in self.urls:
            while await metric(url, "etcd_debugging_mvcc_watcher_total") < watchers:
                self.assertLess(reactor.seconds(), deadline, f"{url} never reported the watchers")
                await deferLater(reactor, 0.05, lambda: None)

    async def same_output(
        self, pair: tuple[ClientProcess, ClientProcess], until: str, stop: bool = True
    ) -> Completed:
        """Wait for ``until`` in both outputs, stop both (SIGINT), require the same output
        and exit; returns ours."""
        etcd, ours = pair
        await gather(etcd.wait_output(until), ours.wait_output(until))
        if stop:
            # A moment for anything that should not be there to show up too.
            await deferLater(reactor, 0.3, lambda: None)
        a, b = await gather(*[etcd.stop(signal.SIGINT), ours.stop(signal.SIGINT)])
        self.assertEqual(
            (b.code, normalise(b.out), normalise(b.err)),
            (a.code, normalise(a.out), normalise(a.err)),
            f"etcdctl {' '.join(etcd.argv[2:])}",
        )
        return b


class WatchOutputTests(WatchCase):
    async def test_key_prefix_range_prev_kv_json_exec(self) -> None:
        """Key, prefix, range, --prev-kv, -w json and -- exec watches print alike."""
        plain = self.watch("foo")
        rev = "--rev=2"
        prefix = self.watch(rev, "--prefix", "foo", "--prev-kv")
        ranged = self.watch(rev, "a", "c")
        js = self.watch(rev, "-w", "json", "foo")
        everything = self.watch(rev, "--prefix", "")
        script = (
            'echo "[$ETCD_WATCH_REVISION $ETCD_WATCH_EVENT_TYPE $ETCD_WATCH_KEY $ETCD_WATCH_VALUE]"'
        )
        exe = self.watch(rev, "foo", "--", "sh", "-c", script)
        await self.established(6)
        await self.write("put", "foo", "1")  # 2
        await self.write("put", "foo1", "x")  # 3
        await self.write("put", "foo", "2")  # 4
        await self.write("put", "b", "in-range")  # 5
        await self.write("put", "c", "out-of-range")  # 6
        await self.write("del", "foo")  # 7
        # One revision, two events: printed together, in key order.
        txn = b"\nput foo t1\nput foo2 t2\n\n\n"
        await self.write("txn", "-i", stdin=txn)  # 8
        await self.write("del", "--prefix", "foo")  # 9
        await self.write("put", "b", "end")  # 10

        out = await self.same_output(plain, "t1\nDELETE\nfoo\n\n")
        self.assertEqual(
            out.out, "PUT\nfoo\n1\nPUT\nfoo\n2\nDELETE\nfoo\n\nPUT\nfoo\nt1\nDELETE\nfoo\n\n"
        )
        out = await self.same_output(prefix, "DELETE\nfoo2\n")
        self.assertIn("PUT\nfoo\n1\nfoo\n2\n", out.out)  # prev kv, then kv
        self.assertIn("PUT\nfoo\nt1\nPUT\nfoo2\nt2\n", out.out)
        out = await self.same_output(ranged, "PUT\nb\nend\n")
        self.assertEqual(out.out, "PUT\nb\nin-range\nPUT\nb\nend\n")
        out = await self.same_output(js, '"mod_revision":9')
        self.assertEqual(len(out.out.splitlines()), 5, out.out)
        out = await self.same_output(everything, "PUT\nb\nend\n")
        self.assertEqual(out.out.count("PUT\n") + out.out.count("DELETE\n"), 12, out.out)
        out = await self.same_output(exe, '[9 "DELETE" "foo" ""]')
        self.assertIn('[2 "PUT" "foo" "1"]\n', out.out)
        self.assertIn('[7 "DELETE" "foo" ""]\n', out.out)

    async def test_rev_past_and_compacted(self) -> None:
        """--rev in the past replays history; below the compacted revision it is canceled."""
        for i in range(5):
            await self.write("put", "foo", f"v{i}")  # revisions 2..6
        await self.write("compact", "4")
        etcd, ours = await gather(
            *[spawn_etcdctl(self, url, "watch", "--rev=2", "foo").wait_exit() for url in self.urls]
        )
        self.assertEqual((ours.code, ours.out, ours.err), (etcd.code, etcd.out, etcd.err))
        self.assertEqual((ours.code, ours.out + ours.err), (5, COMPACTED))
        etcd, ours = await gather(
            *[
                spawn_etcdctl(
                    self, url, "watch", "--rev=1", "-w", "json", "--prefix", ""
                ).wait_exit()
                for url in self.urls
            ]
        )
        self.assertEqual(
            (ours.code, normalise(ours.out), ours.err), (etcd.code, normalise(etcd.out), etcd.err)
        )
        self.assertIn('"CompactRevision":4,"Canceled":true', ours.out)
        self.assertNotIn('"revision"', ours.out)  # etcd sends no revision in this header
        # At the compacted revision itself, history is still there.
        out = await self.same_output(self.watch("--rev=4", "foo"), "PUT\nfoo\nv4\n")
        self.assertEqual(out.out, "PUT\nfoo\nv2\nPUT\nfoo\nv3\nPUT\nfoo\nv4\n")
        # A future revision waits for it.
        future = self.watch("--rev=8", "foo")
        await self.write("put", "foo", "skipped")  # 7
        await self.write("put", "foo", "seen")  # 8
        out = await self.same_output(future, "PUT\nfoo\nseen\n")
        self.assertEqual(out.out, "PUT\nfoo\nseen\n")

    async def test_interactive(self) -> None:
        """-i reads watch commands from stdin; bad commands are reported, progress answered."""
        both = self.watch("-i")

        def send(line: str) -> None:
            for p in both:
                p.write(line.encode() + b"\n")

        send("watch foo --rev=2")
        send("watch --prefix zo --prev-kv --rev=2")
        send("cancel 0")
        send("bogus")
        send("watch")
        # Both watches start at revision 2; writing only once they exist keeps the two
        # streams' order fixed (a catch-up from history would race between them).
        await self.established(2)
        await self.write("put", "foo", "x")
        await self.write("put", "zoo", "y")
        await self.write("put", "zoo", "y2")
        for p in both:
            await p.wait_output("zoo\ny\nzoo\ny2\n")
        send("progress")
        for p in both:
            await p.wait_output("progress notify: 4\nprogress notify: 4\n")
        for p in both:
            p.close_stdin()
        a, b = await gather(*[p.wait_exit() for p in both])
        self.assertEqual((b.code, b.out, b.err), (a.code, a.out, a.err))
        self.assertEqual(
            b.err,
            "Invalid command cancel 0 (only support watch)\n"
            "Invalid command bogus (only support watch)\n"
            "Invalid command watch (command type or key is not provided)\n"
            "Error: error reading watch request line: EOF\n",
        )

    async def test_progress_notify(self) -> None:
        """--progress-notify prints the server's periodic progress (every 1 s here)."""
        pair = self.watch("--progress-notify", "foo")
        await self.established(1)
        await self.write("put", "foo", "1")
        await gather(*[p.wait_output("progress notify: 2\n", timeout=5) for p in pair])
        a, b = await gather(*[p.stop(signal.SIGINT) for p in pair])

        def squeeze(text: str) -> str:
            # How many notifications fit in the wait is timing, not behaviour.
            return re.sub(r"(progress notify: \d+\n)+", r"\1", text)

        self.assertEqual((b.code, squeeze(b.out), b.err), (a.code, squeeze(a.out), a.err))
        self.assertEqual(squeeze(b.out), "PUT\nfoo\n1\nprogress notify: 2\n")
