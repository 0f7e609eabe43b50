"""Tests for etcd_twisted.ui.dashboard: what /ui/ serves, with which headers, and what not."""

from __future__ import annotations

import gzip
import re
from importlib import resources

from treq.testing import StubTreq
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.test.requesthelper import DummyRequest

from etcd_twisted.api.http import HttpApi
from etcd_twisted.metrics import Metrics
from etcd_twisted.ui.dashboard import (
    ASSET_CACHE,
    INDEX_CACHE,
    Dashboard,
    content_security_policy,
    csp_origin,
    read_files,
)

MEMBERS = ["http://127.0.0.1:2379", "https://10.0.0.2:2379", "unix://sock:1"]
STATIC = resources.files("etcd_twisted.ui") / "static"


def render(dashboard: Dashboard, path: bytes, method: bytes = b"GET", **headers: bytes):
    """Render ``path`` exactly as given (no URL normalisation) and return the request."""
    request = DummyRequest(path.split(b"/")[1:])
    request.path = path
    request.uri = path
    request.method = method
    for name, value in headers.items():
        request.requestHeaders.setRawHeaders(name.replace("_", "-").encode(), [value])
    body = dashboard.render(request)
    request.written.append(body)
    if request.responseCode is None:  # DummyRequest leaves the implicit 200 unset
        request.responseCode = 200
    return request


def header(request: DummyRequest, name: bytes) -> bytes | None:
    return request.responseHeaders.getRawHeaders(name, [None])[0]


class DashboardTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.dashboard = Dashboard(lambda: MEMBERS)
        self.assets = "/ui/v/" + self.dashboard.version + "/"

    def get(self, path: str, **headers: bytes) -> DummyRequest:
        return render(self.dashboard, path.encode(), **headers)

    def test_index_at_ui_slash(self) -> None:
        """/ui/ is the HTML page, revalidated on every load, naming the versioned assets."""
        request = self.get("/ui/")
        self.assertEqual(request.responseCode, 200)
        self.assertEqual(header(request, b"content-type"), b"text/html; charset=utf-8")
        self.assertEqual(header(request, b"cache-control"), INDEX_CACHE)
        body = b"".join(request.written)
        self.assertIn(f'src="v/{self.dashboard.version}/app.js"'.encode(), body)
        self.assertNotIn(b"__ASSETS__", body)
        self.assertEqual(header(request, b"content-length"), str(len(body)).encode())

    def test_ui_without_slash_redirects(self) -> None:
        """/ui answers 301 to /ui/ (relative asset URLs need the slash)."""
        request = self.get("/ui")
        self.assertEqual(request.responseCode, 301)
        self.assertEqual(header(request, b"location"), b"/ui/")

    def test_assets_are_immutable_with_their_types(self) -> None:
        """Versioned files are cached for a year as immutable, with the right content type."""
        for name, kind in (("app.js", b"text/javascript"), ("app.css", b"text/css")):
            request = self.get(self.assets + name)
            self.assertEqual(request.responseCode, 200, name)
            self.assertTrue(header(request, b"content-type").startswith(kind), name)
            self.assertEqual(header(request, b"cache-control"), ASSET_CACHE)
            self.assertEqual(header(request, b"x-content-type-options"), b"nosniff")

    def test_every_module_import_resolves(self) -> None:
        """Each file the page or a module refers to is served (no missing import)."""
        index = b"".join(self.get("/ui/").written).decode()
        wanted = set(re.findall(r'(?:src|href)="v/[0-9a-f]+/([^"]+)"', index))
        for name, body in read_files(STATIC).items():
            if name.endswith(".js"):
                wanted |= set(re.findall(r"from '\./([^']+)'", body.decode()))
        self.assertGreaterEqual(len(wanted), 8)
        for name in wanted:
            self.assertEqual(self.get(self.assets + name).responseCode, 200, name)

    def test_csp_is_strict(self) -> None:
        """The page may run only its own code, no inline code, and fetch only cluster members."""
        csp = header(self.get("/ui/"), b"content-security-policy").decode()
        for directive in (
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "frame-ancestors 'none'",
            "base-uri 'none'",
            "require-trusted-types-for 'script'",
            "connect-src 'self' http://127.0.0.1:2379 https://10.0.0.2:2379;",
        ):
            self.assertIn(directive, csp)
        self.assertNotIn("unsafe", csp)
        self.assertNotIn("unix", csp)

    def test_csp_follows_membership(self) -> None:
        """connect-src is computed per page load from the current client URLs."""
        urls = ["http://127.0.0.1:1"]
        dashboard = Dashboard(lambda: urls)
        urls.append("http://127.0.0.1:2")
        csp = header(render(dashboard, b"/ui/"), b"content-security-policy")
        self.assertIn(b"connect-src 'self' http://127.0.0.1:1 http://127.0.0.1:2;", csp)

    def test_csp_origin_refuses_injection(self) -> None:
        """A client URL that is not a plain http(s) origin never reaches the policy."""
        self.assertEqual(csp_origin("https://[::1]:2379/"), "https://[::1]:2379")
        self.assertEqual(csp_origin("http://a.example:80"), "http://a.example:80")
        for bad in ("http://a; script-src *", "javascript:alert(1)", "unixs://s", "http://a b", ""):
            self.assertIsNone(csp_origin(bad), bad)
        policy = content_security_policy(["http://x;script-src *"])
        self.assertIn(b"connect-src 'self';", policy)

    def test_etag_gives_304(self) -> None:
        """A matching If-None-Match answers 304 with no body; a stale one gets the file."""
        first = self.get(self.assets + "app.js")
        etag = header(first, b"etag")
        again = self.get(self.assets + "app.js", if_none_match=b"W/" + etag)
        self.assertEqual(again.responseCode, 304)
        self.assertEqual(b"".join(again.written), b"")
        stale = self.get(self.assets + "app.js", if_none_match=b'"old"')
        self.assertEqual(stale.responseCode, 200)

    def test_paths_cannot_leave_the_static_files(self) -> None:
        """Traversal, encoded dots, other versions and package files are all 404."""
        bad = [
            "/ui/dashboard.py",
            "/ui/app.js",
            "/ui/index.html",
            "/ui/v/000000000000/app.js",
            self.assets + "../dashboard.py",
            self.assets + "../../ui/dashboard.py",
            self.assets + "%2e%2e/dashboard.py",
            self.assets + "..%2fdashboard.py",
            self.assets + "/etc/passwd",
            self.assets + "static/app.js",
            self.assets + "index.html",
            self.assets,
            "/ui/v/" + self.dashboard.version,
            "/ui//etc/passwd",
        ]
        for path in bad:
            request = self.get(path)
            self.assertEqual(request.responseCode, 404, path)
            self.assertEqual(b"".join(request.written), b"404 page not found\n")

    def test_only_static_files_are_served(self) -> None:
        """The served names are exactly the static directory's web files."""
        self.assertEqual(set(self.dashboard.assets) | {"index.html"}, set(read_files(STATIC)))
        self.assertFalse([n for n in self.dashboard.assets if not n.endswith((".js", ".css"))])

    def test_version_follows_content(self) -> None:
        """Changing any file changes the versioned path (so caches never serve a stale one)."""
        files = {"index.html": b"__ASSETS__/a.js", "a.js": b"1"}
        one = Dashboard(files=files)
        two = Dashboard(files={**files, "a.js": b"2"})
        self.assertNotEqual(one.version, two.version)
        self.assertEqual(b"".join(render(one, b"/ui/").written), f"v/{one.version}/a.js".encode())

    def test_gzip_when_accepted(self) -> None:
        """A client accepting gzip gets the file gzipped, with its own ETag; others plain."""
        plain = self.get(self.assets + "app.css")
        packed = self.get(self.assets + "app.css", accept_encoding=b"br, gzip;q=0.8")
        body = b"".join(packed.written)
        self.assertEqual(header(packed, b"content-encoding"), b"gzip")
        self.assertEqual(header(packed, b"vary"), b"Accept-Encoding")
        self.assertEqual(gzip.decompress(body), b"".join(plain.written))
        self.assertLess(len(body), len(b"".join(plain.written)))
        self.assertNotEqual(header(packed, b"etag"), header(plain, b"etag"))
        self.assertIsNone(header(plain, b"content-encoding"))
        refused = self.get(self.assets + "app.css", accept_encoding=b"gzip;q=0")
        self.assertIsNone(header(refused, b"content-encoding"))
        again = self.get(
            self.assets + "app.css",
            accept_encoding=b"gzip",
            if_none_match=header(packed, b"etag"),
        )
        self.assertEqual(again.responseCode, 304)

    def test_methods(self) -> None:
        """HEAD is served like GET; other methods get 405."""
        self.assertEqual(render(self.dashboard, b"/ui/", b"HEAD").responseCode, 200)
        request = render(self.dashboard, b"/ui/", b"POST")
        self.assertEqual(request.responseCode, 405)
        self.assertEqual(header(request, b"allow"), b"GET, HEAD")


class MountTests(SynchronousTestCase):
    def get(self, api: HttpApi, path: str) -> tuple[int, bytes]:
        treq = StubTreq(api.resource())
        response = self.successResultOf(treq.get("http://127.0.0.1" + path))
        return response.code, self.successResultOf(response.content())

    def test_enabled(self) -> None:
        """With a dashboard the client port serves /ui/ and still the other routes."""
        api = HttpApi(Metrics(), dashboard=Dashboard())
        code, body = self.get(api, "/ui/")
        self.assertEqual(code, 200)
        self.assertIn(b"<!doctype html>", body)
        self.assertEqual(self.get(api, "/livez"), (200, b"ok"))
        self.assertEqual(self.get(api, "/uix")[0], 404)

    def test_disabled_has_no_route(self) -> None:
        """Without a dashboard /ui/ and its files are Go's plain 404, as any unknown path."""
        enabled = Dashboard()
        api = HttpApi(Metrics())
        for path in ("/ui/", "/ui", f"/ui/v/{enabled.version}/app.js"):
            self.assertEqual(self.get(api, path), (404, b"404 page not found\n"), path)
