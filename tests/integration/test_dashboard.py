"""The dashboard (issue 21) in a real browser: headless Chromium driven by Selenium
against three of our members on loopback, checked against the real etcdctl 3.5.1.

Each test starts its own cluster and browser. The tests save screenshots of each view
under docs/ (shown in the README) and record the page weight on first load in
``ETCD_TWISTED_DASHBOARD_RESULTS`` (default ``dashboard-measurements.json``).
They are skipped only when Chromium or its driver is not installed.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from etcd_twisted.api.http import HttpApi
from etcd_twisted.metrics import Metrics
from etcd_twisted.ui.dashboard import Dashboard
from tests.peer.test_tls import self_signed
from tests.support.browser import Browser, console_errors, missing_reason
from tests.support.processes import (
    KV,
    Cluster,
    Member,
    ServerProcess,
    binary,
    etcdctl,
    leader_of,
    new_member,
    start_cluster,
    wait_until,
)

RESULTS_PATH = os.environ.get("ETCD_TWISTED_DASHBOARD_RESULTS", "dashboard-measurements.json")

#: The page weight on a cold first load: the HTML and every file it pulls from /ui/.
PAGE_WEIGHT_JS = """
const nav = performance.getEntriesByType('navigation')[0];
const files = performance.getEntriesByType('resource')
  .filter((e) => new URL(e.name).pathname.startsWith('/ui/'));
const sum = (field) => files.reduce((n, e) => n + e[field], nav[field]);
return {files: files.length + 1, transferred: sum('transferSize'), body: sum('decodedBodySize')};
"""


def by_id(driver: Any, element_id: str) -> Any:
    return driver.find_element("id", element_id)


def css(driver: Any, selector: str) -> list[Any]:
    return driver.find_elements("css selector", selector)


def type_into(driver: Any, element_id: str, text: str) -> None:
    field = by_id(driver, element_id)
    field.clear()
    field.send_keys(text)


def member_roles(driver: Any) -> dict[str, str]:
    """Member name → role as the cluster table shows it (read at once: it is redrawn)."""
    return driver.execute_script(
        "return Object.fromEntries([...document.querySelectorAll('#members tbody tr')]"
        ".map((r) => [r.dataset.memberName, r.dataset.role]));"
    )


def visible_text(driver: Any) -> str:
    return driver.find_element("tag name", "body").text


def record(name: str, value: Any) -> None:
    """Print a measurement and add it to the results file."""
    print(f"\n[dashboard measurement] {name}: {value}")
    try:
        with open(RESULTS_PATH) as f:
            results = json.load(f)
    except (OSError, ValueError):
        results = {}
    results[name] = value
    with open(RESULTS_PATH, "w") as f:
        json.dump(results, f, indent=2, sort_keys=True)


class DashboardBrowserTests(TestCase):
    timeout = 180
    skip = missing_reason()

    async def cluster_and_browser(self, extra: list[str] | None = None) -> tuple[Cluster, Browser]:
        cluster = await start_cluster(self, 3, self.mktemp(), extra=extra or [])
        browser = await Browser.open(self, self.mktemp())
        return cluster, browser

    async def open(self, browser: Browser, member: Member, view: str) -> None:
        await browser.do(lambda d: d.get(f"{member.client_url}/ui/#{view}"))
        await browser.wait(
            lambda d: d.execute_script("return document.body.dataset.view"), "the page to start"
        )

    async def test_cluster_view_shows_members_and_leader(self) -> None:
        """Three members, the leader etcdctl reports, a chart with data, and no CSP errors."""
        cluster, browser = await self.cluster_and_browser()
        leader_url = await leader_of([m.client_url for m in cluster.members])
        leader = cluster.members[cluster.index(leader_url)].name
        await self.open(browser, cluster.members[0], "cluster")
        weight = await browser.do(lambda d: d.execute_script(PAGE_WEIGHT_JS))
        record("first load", weight)
        roles = await browser.wait(
            lambda d: (r := member_roles(d)) and "unreachable" not in r.values() and r,
            "three reachable members",
        )
        self.assertEqual(sorted(roles), ["m1", "m2", "m3"])
        self.assertEqual([n for n, r in roles.items() if r == "leader"], [leader])
        self.assertEqual(sorted(r for r in roles.values() if r != "leader"), ["follower"] * 2)
        text = await browser.do(visible_text)
        self.assertIn(f"leader {leader}", text)
        self.assertIn("3.5.1", text)
        client = KV(cluster.members[0].client_url)
        self.addCleanup(client.close)
        for i in range(40):  # some traffic for the writes/s chart
            await client.put(b"load/%d" % i, b"x" * 512)
            if i % 10 == 9:
                await deferLater(reactor, 1.5, lambda: None)
        await browser.wait(
            lambda d: len(css(d, "#charts path.chart-line")) == 3, "three charts with lines"
        )
        writes = await browser.do(lambda d: css(d, "#charts figcaption")[0].text)
        self.assertRegex(writes, r"^Writes/s: \d+\.\d$")
        self.assertEqual(await browser.do(console_errors), [])
        record("screenshot cluster", await browser.screenshot("dashboard-cluster.png"))
        self.assertLess(weight["transferred"], 64 * 1024)

    async def test_leader_change_after_leader_is_killed(self) -> None:
        """Killing the leader shows it unreachable and another member as the new leader."""
        cluster, browser = await self.cluster_and_browser()
        urls = [m.client_url for m in cluster.members]
        old = cluster.index(await leader_of(urls))
        page = next(i for i in range(3) if i != old)
        await self.open(browser, cluster.members[page], "cluster")
        old_name = cluster.members[old].name
        await browser.wait(lambda d: member_roles(d).get(old_name) == "leader", "the old leader")
        await cluster.processes[old].kill()
        roles = await browser.wait(
            lambda d: (
                (r := member_roles(d)).get(old_name) == "unreachable"
                and "leader" in r.values()
                and r
            ),
            "a new leader",
            timeout=30,
        )
        new_leader = next(name for name, role in roles.items() if role == "leader")
        survivors = [u for i, u in enumerate(urls) if i != old]
        agreed = cluster.members[cluster.index(await leader_of(survivors))].name
        self.assertNotEqual(new_leader, old_name)
        self.assertEqual(new_leader, agreed)

    async def test_put_from_page_is_readable_with_etcdctl(self) -> None:
        """A put from the page (with a lease) reads back with etcdctl; detail, history
        (cut at a compaction), binary keys and delete work."""
        cluster, browser = await self.cluster_and_browser()
        endpoints = cluster.endpoints
        granted = await etcdctl(endpoints, "lease", "grant", "600")
        lease = re.search(r"lease ([0-9a-f]+) granted", granted.out).group(1)
        client = KV(cluster.members[1].client_url)
        self.addCleanup(client.close)
        await client.put(b"app/config/bin\xff\x00", b"\x00\x01\x02")
        for key in (b"app/config/timeout", b"app/feature/x", b"app/name"):
            await client.put(key, b"v1")
        await self.open(browser, cluster.members[1], "keys")

        def put(driver: Any, key: str, value: str, lease_id: str) -> None:
            type_into(driver, "put-key", key)
            type_into(driver, "put-value", value)
            type_into(driver, "put-lease", lease_id)
            by_id(driver, "put").click()

        await browser.do(put, "app/greeting", "hello", "")
        await browser.wait(lambda d: by_id(d, "detail-version").text == "1", "version 1")
        await browser.do(put, "app/greeting", "hello from the page", lease)
        await browser.wait(lambda d: by_id(d, "detail-version").text == "2", "version 2")
        got = await etcdctl(endpoints, "get", "app/greeting", "--print-value-only")
        self.assertEqual(got.out.strip(), "hello from the page")
        detail = await browser.wait(
            lambda d: "left of 600s" in (t := by_id(d, "key-detail").text) and t, "the lease TTL"
        )
        self.assertIn(f"lease\n{lease}", detail)
        history = await browser.wait(
            lambda d: len(rows := css(d, "#history tbody tr")) == 2 and [r.text for r in rows],
            "two versions in the history",
        )
        self.assertTrue(history[0].endswith("hello from the page"), history)
        self.assertTrue(history[1].endswith("hello"), history)

        def open_tree(driver: Any) -> list[str] | None:
            """Open app/ and app/config/ (again, if a refresh redrew the tree); their keys."""
            for prefix in ("app/", "app/config/"):
                node = css(driver, f'button.dir[data-prefix="{prefix}"]')
                if not node:
                    return None
                if "open" not in node[0].get_attribute("class"):
                    node[0].click()
            keys = [b.text for b in css(driver, "#tree button.key")]
            return keys if len(keys) >= 4 else None

        keys = await browser.wait(open_tree, "the keys under app/ and app/config/")
        self.assertIn("0x62696eff00", keys)  # not UTF-8: shown as hex
        self.assertIn("greeting", keys)
        record("screenshot keys", await browser.screenshot("dashboard-keys.png"))
        mod = await browser.do(lambda d: by_id(d, "detail-mod").text)
        self.assertEqual((await etcdctl(endpoints, "compact", mod)).code, 0)
        await browser.do(lambda d: css(d, '#tree button.key[data-key="app/greeting"]')[0].click())
        await browser.wait(
            lambda d: (
                "older revisions are compacted" in by_id(d, "history-box").text
                and len(css(d, "#history tbody tr")) == 1
            ),
            "the history cut at the compaction",
        )
        await browser.do(lambda d: by_id(d, "delete").click())
        await browser.do(lambda d: by_id(d, "delete").click())
        await browser.wait(lambda d: "does not exist" in by_id(d, "key-detail").text, "deleted")
        got = await etcdctl(endpoints, "get", "app/greeting", "--print-value-only")
        self.assertEqual((got.code, got.out), (0, ""))

    async def test_watch_tail_shows_etcdctl_put(self) -> None:
        """A put and a delete made with etcdctl appear in the tail; pause holds them and
        the filter hides what does not match."""
        cluster, browser = await self.cluster_and_browser()
        await self.open(browser, cluster.members[2], "watch")

        def start(driver: Any) -> None:
            type_into(driver, "watch-prefix", "jobs/")
            by_id(driver, "watch-start").click()

        await browser.do(start)
        await browser.wait(lambda d: "Watching" in by_id(d, "watch-state").text, "the watch")
        await etcdctl(cluster.endpoints, "put", "other/x", "not watched")
        await etcdctl(cluster.endpoints, "put", "jobs/build-1", "queued")
        await etcdctl(cluster.endpoints, "put", "jobs/build-2", "running")
        rows = await browser.wait(
            lambda d: len(r := [e.text for e in css(d, "#events tbody tr")]) == 2 and r,
            "two events",
        )
        self.assertRegex(rows[0], r"^\d+ PUT jobs/build-2 running$")
        self.assertRegex(rows[1], r"^\d+ PUT jobs/build-1 queued$")
        await browser.do(lambda d: by_id(d, "watch-pause").click())
        await etcdctl(cluster.endpoints, "del", "jobs/build-1")
        await browser.wait(
            lambda d: by_id(d, "watch-pause").text == "Resume (1 new)", "one held event"
        )
        self.assertEqual(len(await browser.do(lambda d: css(d, "#events tbody tr"))), 2)
        await browser.do(lambda d: by_id(d, "watch-pause").click())
        await browser.wait(lambda d: len(css(d, "#events tbody tr")) == 3, "the held event")
        record("screenshot watch", await browser.screenshot("dashboard-watch.png"))
        await browser.do(lambda d: by_id(d, "watch-filter").send_keys("build-2"))
        shown = await browser.wait(
            lambda d: (
                len(r := [e.text for e in css(d, "#events tbody tr") if e.is_displayed()]) == 1
                and r
            ),
            "the filtered tail",
        )
        self.assertIn("jobs/build-2", shown[0])

    async def test_user_without_permission_sees_no_forbidden_key(self) -> None:
        """With auth on the page asks for a login; a user who may read only public/ never
        sees secret/ keys, while root sees them."""
        cluster, browser = await self.cluster_and_browser()
        e = cluster.endpoints
        for args in (
            ("put", "secret/db-password", "hunter2"),
            ("put", "public/motd", "hello"),
            ("user", "add", "root:rootpw"),
            ("user", "grant-role", "root", "root"),
            ("role", "add", "reader"),
            ("role", "grant-permission", "reader", "read", "public/", "--prefix=true"),
            ("user", "add", "alice:alicepw"),
            ("user", "grant-role", "alice", "reader"),
            ("auth", "enable"),
        ):
            result = await etcdctl(e, *args)
            self.assertEqual(result.code, 0, result.err)
        await self.open(browser, cluster.members[0], "keys")
        await browser.wait(lambda d: by_id(d, "view-login").is_displayed(), "the login form")
        record("screenshot login", await browser.screenshot("dashboard-login.png"))

        def log_in(driver: Any, user: str, password: str) -> None:
            type_into(driver, "login-user", user)
            type_into(driver, "login-password", password)
            by_id(driver, "login-submit").click()

        await browser.do(log_in, "alice", "wrong")
        await browser.wait(
            lambda d: "authentication failed" in by_id(d, "login-error").text, "a refused login"
        )
        await browser.do(log_in, "alice", "alicepw")
        denied = await browser.wait(
            lambda d: (t := by_id(d, "tree").text) and "permission denied" in t and t,
            "the refused root listing",
        )
        self.assertNotIn("secret", denied)

        def browse(driver: Any, prefix: str) -> None:
            type_into(driver, "browse-prefix", prefix)
            by_id(driver, "browse").click()

        await browser.do(browse, "public/")
        await browser.wait(
            lambda d: [b.text for b in css(d, "#tree button.key")] == ["motd"], "motd"
        )
        await browser.do(browse, "secret/")
        await browser.wait(lambda d: "permission denied" in by_id(d, "tree").text, "a refusal")
        await browser.do(lambda d: d.get(f"{cluster.members[0].client_url}/ui/#watch"))
        await browser.wait(lambda d: by_id(d, "view-watch").is_displayed(), "the watch view")
        await browser.do(lambda d: by_id(d, "watch-start").click())
        await browser.wait(
            lambda d: "permission denied" in by_id(d, "watch-state").text, "a refused watch"
        )
        await etcdctl(e, "--user", "root:rootpw", "put", "secret/db-password", "hunter3")
        await deferLater(reactor, 1.0, lambda: None)
        page = await browser.do(lambda d: visible_text(d) + d.page_source)
        self.assertNotIn("db-password", page)
        self.assertNotIn("hunter", page)
        await browser.wait(lambda d: by_id(d, "watch-start").text == "Watch", "the watch ended")
        # The same page shows the key to a user who may read it.
        await browser.do(lambda d: by_id(d, "logout").click())
        await browser.do(lambda d: d.get(f"{cluster.members[0].client_url}/ui/#keys"))
        await browser.wait(lambda d: by_id(d, "view-login").is_displayed(), "the login form")
        await browser.do(log_in, "root", "rootpw")
        await browser.wait(lambda d: not by_id(d, "browse-prefix").get_attribute("value"), "reset")
        await browser.wait(
            lambda d: css(d, 'button.dir[data-prefix="secret/"]'), "secret/ for root"
        )

    async def test_byte_helpers_in_the_browser(self) -> None:
        """The page's byte helpers: prefix ends, printable text or hex, base64 both ways."""
        dashboard = Dashboard()
        port = reactor.listenTCP(
            0, HttpApi(Metrics(), dashboard=dashboard).site(), interface="127.0.0.1"
        )
        self.addCleanup(port.stopListening)
        base = f"http://127.0.0.1:{port.getHost().port}/ui/"
        browser = await Browser.open(self, self.mktemp())
        await browser.do(lambda d: d.get(base))
        results = await browser.do(
            lambda d: d.execute_async_script(
                """
const done = arguments[arguments.length - 1];
import(arguments[0]).then((b) => {
  const hex = (bytes) => b.toHex(bytes);
  done({
    end: [[], [0x61], [0x61, 0xff], [0xff, 0xff], [0x61, 0x2f]].map((p) => hex(b.prefixEnd(Uint8Array.from(p)))),
    shown: [b.show(b.utf8('héllo/wörld')), b.show(Uint8Array.from([0x62, 0xff, 0x00])), b.show(b.utf8('a\u0001'))],
    roundTrip: hex(b.fromBase64(b.toBase64(Uint8Array.from([0, 1, 254, 255])))),
    empty: b.fromBase64(undefined).length,
    sizes: [b.formatBytes(512), b.formatBytes(1536), b.formatBytes(3 * 1024 * 1024)],
  });
}, (e) => done({error: String(e)}));
""",
                f"{base}v/{dashboard.version}/bytes.js",
            )
        )
        self.assertEqual(
            results,
            {
                "end": ["00", "62", "62", "00", "6130"],
                "shown": ["héllo/wörld", "0x62ff00", "0x6101"],
                "roundTrip": "0001feff",
                "empty": 0,
                "sizes": ["512 B", "1.5 KiB", "3.0 MiB"],
            },
        )

    async def test_works_over_tls(self) -> None:
        """With https client URLs the page loads, reads every member's status, and puts."""
        base = self.mktemp()
        cert, key = self_signed(os.path.join(base, "tls"))
        members = [new_member(base, f"m{i + 1}") for i in range(3)]
        initial = ",".join(f"{m.name}={m.peer_url}" for m in members)
        processes = []
        for m in members:
            https = f"https://127.0.0.1:{m.client_port}"
            argv = m.flags(initial) + ["--cert-file", cert, "--key-file", key]
            argv[argv.index("--listen-client-urls") + 1] = https
            argv[argv.index("--advertise-client-urls") + 1] = https
            process = ServerProcess(
                [binary("twistd"), "--nodaemon", "--pidfile=", "etcd", *argv],
                os.path.join(base, f"ours-{m.name}.log"),
            )
            process.start()
            self.addCleanup(process.stop)
            processes.append(process)
        endpoints = ",".join(f"https://127.0.0.1:{m.client_port}" for m in members)

        async def healthy() -> bool:
            result = await etcdctl(endpoints, "--cacert", cert, "endpoint", "health", timeout=3)
            return result.code == 0

        await wait_until(healthy, 60, "three healthy https members", interval=0.5)
        browser = await Browser.open(self, self.mktemp(), insecure_tls=True)
        await browser.do(lambda d: d.get(f"https://127.0.0.1:{members[0].client_port}/ui/#keys"))
        await browser.wait(lambda d: by_id(d, "view-keys").is_displayed(), "the keys view")
        await browser.do(lambda d: (type_into(d, "put-key", "tls/k"), by_id(d, "put").click()))
        await browser.wait(lambda d: by_id(d, "detail-version").text == "1", "the put")
        got = await etcdctl(endpoints, "--cacert", cert, "get", "tls/k", "-w", "json")
        self.assertEqual(json.loads(got.out)["count"], 1)
        await browser.do(lambda d: d.get(f"https://127.0.0.1:{members[0].client_port}/ui/#cluster"))
        roles = await browser.wait(
            lambda d: len(r := member_roles(d)) == 3 and "unreachable" not in r.values() and r,
            "three members' status over https",
        )
        self.assertEqual(sorted(roles.values()), ["follower", "follower", "leader"])
