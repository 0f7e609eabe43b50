"""Serving the dashboard's files at ``/ui/``: from memory, with cache headers and a CSP.

Every file under ``static/`` is read once, when the resource is built, into a table
keyed by its relative path; a request is answered only by an exact match in that
table, so no request path ever reaches the file system. ``/ui/`` is ``index.html``
(revalidated on every load: ``no-cache`` with an ETag); the other files live under
``/ui/v/<version>/`` where the version is a digest of all the files, so they are
cached for a year as immutable and a new release changes their URLs. Each file is
gzipped once, up front, for clients that accept it.

The Content-Security-Policy lets the page run only its own scripts and styles, use
no inline code or string-to-DOM sinks (Trusted Types), and connect only to its own
origin and the origins of the cluster's client URLs (to show each member's status).
"""

from __future__ import annotations

import gzip
import hashlib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from importlib.abc import Traversable
from typing import Any
from urllib.parse import urlsplit

from twisted.web.iweb import IRequest
from twisted.web.resource import IResource, Resource

#: Where the dashboard is mounted on the client port.
MOUNT = b"/ui"

#: Content types by file suffix; a file of another kind is not served.
CONTENT_TYPES = {
    ".html": b"text/html; charset=utf-8",
    ".js": b"text/javascript; charset=utf-8",
    ".css": b"text/css; charset=utf-8",
    ".svg": b"image/svg+xml",
    ".txt": b"text/plain; charset=utf-8",
}

#: ``index.html`` names the versioned asset directory with this placeholder.
ASSETS_PLACEHOLDER = b"__ASSETS__"

INDEX_CACHE = b"no-cache"
ASSET_CACHE = b"public, max-age=31536000, immutable"

#: An origin we are willing to put in the CSP: scheme, host (name, IPv4 or [IPv6]), port.
_ORIGIN = re.compile(
    r"^https?://[A-Za-z0-9.\-]+(:\d{1,5})?$|^https?://\[[0-9A-Fa-f:.]+\](:\d{1,5})?$"
)


@dataclass(frozen=True)
class Asset:
    """One file as served: its bytes (and gzipped), content type and strong ETags."""

    body: bytes
    gzipped: bytes
    content_type: bytes
    etag: bytes

    @classmethod
    def of(cls, body: bytes, content_type: bytes) -> Asset:
        digest = hashlib.sha256(body).hexdigest()[:20]
        gzipped = gzip.compress(body, compresslevel=9, mtime=0)
        return cls(body, gzipped, content_type, b'"' + digest.encode() + b'"')

    def representation(self, accept_encoding: bytes | None) -> tuple[bytes, bytes, bool]:
        """(body, ETag, gzipped) for a request's ``Accept-Encoding``: gzip when it is
        accepted and smaller (each representation has its own ETag)."""
        if _accepts_gzip(accept_encoding) and len(self.gzipped) < len(self.body):
            return self.gzipped, self.etag[:-1] + b'-gz"', True
        return self.body, self.etag, False


def _accepts_gzip(header: bytes | None) -> bool:
    for part in (header or b"").split(b","):
        coding, _, params = part.strip().partition(b";")
        if coding.strip().lower() == b"gzip":
            return params.replace(b" ", b"") not in (b"q=0", b"q=0.0", b"q=0.00", b"q=0.000")
    return False


def read_files(directory: Traversable, prefix: str = "") -> dict[str, bytes]:
    """Every file under ``directory`` with a served suffix, keyed by its ``/``-joined path."""
    files: dict[str, bytes] = {}
    for entry in directory.iterdir():
        name = prefix + entry.name
        if entry.is_dir():
            files.update(read_files(entry, name + "/"))
        elif any(name.endswith(suffix) for suffix in CONTENT_TYPES):
            files[name] = entry.read_bytes()
    return files


def version_of(files: Mapping[str, bytes]) -> str:
    """A digest of every file's name and content: the versioned directory's name."""
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    return digest.hexdigest()[:12]


def content_type(name: str) -> bytes:
    return next(kind for suffix, kind in CONTENT_TYPES.items() if name.endswith(suffix))


def csp_origin(url: str) -> str | None:
    """``scheme://host:port`` of an http(s) URL, or None if it is anything else."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return None
    origin = f"{parts.scheme}://{parts.netloc}"
    return origin if _ORIGIN.match(origin) else None


def content_security_policy(client_urls: Iterable[str]) -> bytes:
    """The page's CSP: its own scripts and styles only, and fetches to itself and to
    the members' client URLs (their origins)."""
    origins = sorted({o for o in map(csp_origin, client_urls) if o is not None})
    connect = " ".join(["'self'", *origins])
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        f"connect-src {connect}; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'; require-trusted-types-for 'script'; trusted-types 'none'"
    ).encode()


def not_found(request: IRequest) -> bytes:
    """Go's ``http.NotFound``, as every other unknown path on the client port answers."""
    request.setResponseCode(404)
    request.setHeader(b"content-type", b"text/plain; charset=utf-8")
    request.setHeader(b"x-content-type-options", b"nosniff")
    return b"404 page not found\n"


class Dashboard(Resource):
    """The dashboard's files under ``/ui/``.

    ``client_urls`` returns the cluster's client URLs when a page is served, for the
    CSP's ``connect-src``. ``files`` defaults to the package's ``static/`` directory.
    """

    isLeaf = True

    def __init__(
        self,
        client_urls: Callable[[], Iterable[str]] = tuple,
        files: Mapping[str, bytes] | None = None,
    ) -> None:
        super().__init__()
        if files is None:
            files = read_files(resources.files(__package__) / "static")
        self.client_urls = client_urls
        self.version = version_of(files)
        assets_path = b"v/" + self.version.encode()
        index = files["index.html"].replace(ASSETS_PLACEHOLDER, assets_path)
        self.index = Asset.of(index, content_type("index.html"))
        self.assets = {
            name: Asset.of(body, content_type(name))
            for name, body in files.items()
            if name != "index.html"
        }
        self.assets_prefix = MOUNT + b"/" + assets_path + b"/"

    def mounted_over(self, app: IResource) -> IResource:
        """``app`` with ``/ui`` and everything under it answered by this dashboard."""
        return _Mount(self, app)

    def render(self, request: IRequest) -> bytes:
        path = request.path
        if path == MOUNT:
            request.setResponseCode(301)
            request.setHeader(b"location", MOUNT + b"/")
            return b""
        if path == MOUNT + b"/":
            asset, cache = self.index, INDEX_CACHE
        elif path.startswith(self.assets_prefix):
            name = path[len(self.assets_prefix) :].decode("ascii", "replace")
            asset, cache = self.assets.get(name), ASSET_CACHE
        else:
            asset = None
        if asset is None:
            return not_found(request)
        if request.method not in (b"GET", b"HEAD"):
            request.setResponseCode(405)
            request.setHeader(b"allow", b"GET, HEAD")
            return b""
        body, etag, gzipped = asset.representation(request.getHeader(b"accept-encoding"))
        self._security_headers(request)
        request.setHeader(b"cache-control", cache)
        request.setHeader(b"vary", b"Accept-Encoding")
        request.setHeader(b"etag", etag)
        tags = _etags(request.getHeader(b"if-none-match"))
        if etag in tags or b"*" in tags:
            request.setResponseCode(304)
            return b""
        request.setHeader(b"content-type", asset.content_type)
        if gzipped:
            request.setHeader(b"content-encoding", b"gzip")
        request.setHeader(b"content-length", str(len(body)).encode())
        return body

    def _security_headers(self, request: IRequest) -> None:
        request.setHeader(b"content-security-policy", content_security_policy(self.client_urls()))
        request.setHeader(b"x-content-type-options", b"nosniff")
        request.setHeader(b"x-frame-options", b"DENY")
        request.setHeader(b"referrer-policy", b"no-referrer")
        request.setHeader(b"cross-origin-opener-policy", b"same-origin")


def _etags(header: bytes | None) -> set[bytes]:
    """The entity tags of an ``If-None-Match`` header (weak ones compared weakly)."""
    if not header:
        return set()
    return {tag.strip().removeprefix(b"W/") for tag in header.split(b",")}


class _Mount(Resource):
    """Sends ``/ui`` and ``/ui/...`` to the dashboard and everything else to the app."""

    isLeaf = True

    def __init__(self, dashboard: Dashboard, app: IResource) -> None:
        super().__init__()
        self.dashboard = dashboard
        self.app = app

    def render(self, request: IRequest) -> Any:
        path = request.path
        if path == MOUNT or path.startswith(MOUNT + b"/"):
            return self.dashboard.render(request)
        return self.app.render(request)
