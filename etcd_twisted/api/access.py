"""etcd's access controller in front of the client port's HTTP handlers.

On a plain (non-TLS) connection the request's ``Host`` must be in ``--host-whitelist``
(``*`` or empty allows any), else 421 Misdirected Request with etcd's DNS-rebinding text
(CVE-2018-5702). Over TLS with ``--client-cert-auth`` and auth enabled, a gateway request
(``/v3/...``) from a client certificate with a CN is refused with 400, since the gateway
cannot pass the CN on as the user (as etcd 3.5 refuses it). Then the CORS headers:
``Access-Control-Allow-Origin: *`` when ``--cors`` allows any origin, else the request's
``Origin`` when listed; an ``OPTIONS`` request is answered 200 with no body.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from OpenSSL import crypto
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource, Resource

from etcd_twisted.tls.context import common_name

#: What ``http.Error`` answers a Host outside ``--host-whitelist`` with (etcd 3.5.1).
_REBINDING = """
etcd received your request, but the Host header was unrecognized.

To fix this, choose one of the following options:
- Enable TLS, then any HTTPS request will be allowed.
- Add the hostname you want to use to the whitelist in settings.
  - e.g. etcd --host-whitelist "{host}"

This requirement has been added to help prevent "DNS Rebinding" attacks (CVE-2018-5702).
"""
GATEWAY_CN_REFUSED = (
    "CommonName of client sending a request against gateway will be ignored "
    "and not used as expected"
)


@dataclasses.dataclass(frozen=True)
class AccessPolicy:
    """``--cors`` and ``--host-whitelist`` (each ``{"*"}`` by default), and whether a
    gateway request with a client certificate CN must be refused."""

    cors: frozenset[str] = frozenset({"*"})
    host_whitelist: frozenset[str] = frozenset({"*"})
    client_cert_auth: bool = False
    auth_enabled: Callable[[], bool] = lambda: False

    def origin_allowed(self, origin: str) -> bool:
        return not self.cors or "*" in self.cors or origin in self.cors

    def host_allowed(self, host: str) -> bool:
        return not self.host_whitelist or "*" in self.host_whitelist or host in self.host_whitelist


#: etcd's defaults: any host, any origin.
ALLOW_ALL = AccessPolicy()


def hostname(host_header: str) -> str:
    """The host of a ``Host`` header without its port (Go's ``httputil.GetHostname``)."""
    if host_header.startswith("["):
        end = host_header.find("]")
        if end > 0 and (end + 1 == len(host_header) or host_header[end + 1] == ":"):
            return host_header[1:end] if end + 1 < len(host_header) else host_header
        return host_header
    host, sep, port = host_header.rpartition(":")
    if sep and ":" not in host and host:
        return host
    return host_header


def _client_cn(request: IRequest) -> str:
    transport = request.transport or request.channel
    get = getattr(transport, "getPeerCertificate", None)
    cert = get() if get is not None else None
    return common_name(crypto.X509.to_cryptography(cert)) if cert is not None else ""


#: Reason phrases Twisted does not know.
_REASONS = {421: b"Misdirected Request"}


def _plain_error(request: IRequest, code: int, text: str) -> bytes:
    request.setResponseCode(code, _REASONS.get(code))
    request.setHeader(b"content-type", b"text/plain; charset=utf-8")
    request.setHeader(b"x-content-type-options", b"nosniff")
    return text.encode() + b"\n"


class AccessController(Resource):
    """Wraps the client port's HTTP app with etcd's host, CN and CORS rules."""

    isLeaf = True

    def __init__(self, inner: IResource, policy: AccessPolicy) -> None:
        super().__init__()
        self.inner = inner
        self.policy = policy

    def render(self, request: IRequest) -> Any:
        policy = self.policy
        if not request.isSecure():
            raw = request.getHeader(b"host") or b""
            host = hostname(raw.decode("latin-1"))
            if not policy.host_allowed(host):
                return _plain_error(request, 421, _REBINDING.format(host=host))
        elif (
            policy.client_cert_auth
            and request.path.startswith(b"/v3/")
            and policy.auth_enabled()
            and _client_cn(request)
        ):
            return _plain_error(request, 400, GATEWAY_CN_REFUSED)
        if policy.origin_allowed("*"):
            self._cors(request, b"*")
        else:
            origin = (request.getHeader(b"origin") or b"").decode("latin-1")
            if policy.origin_allowed(origin):
                self._cors(request, origin.encode("latin-1"))
        if request.method == b"OPTIONS":
            return b""
        return self.inner.render(request)

    @staticmethod
    def _cors(request: IRequest, origin: bytes) -> None:
        # In Go's order (sorted), as etcd writes them.
        request.setHeader(b"access-control-allow-headers", b"accept, content-type, authorization")
        request.setHeader(b"access-control-allow-methods", b"POST, GET, OPTIONS, PUT, DELETE")
        request.setHeader(b"access-control-allow-origin", origin)
