"""``--discovery=<url>``: the v2 discovery protocol, as etcd 3.5's ``v2discovery``.

The URL names a directory of a v2 keys API (``http://host/v2/keys/_etcd/registry/TOKEN``)
whose ``_config/size`` says how many members the cluster has. A member registers itself
as the key ``<its id in hex>`` with the value ``name=peerURL,...`` (created only if
absent), then waits until ``size`` members are registered; the first ``size`` by
creation index are the cluster. A member not among them finds the cluster full. The
discovery URL is also the cluster token (member ids are computed with it).

Blocking HTTP (urllib), as this runs before the reactor; ``--discovery-proxy`` is the
HTTP proxy for these requests.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from typing import Any

from etcd_twisted.membership.ids import member_id

__all__ = ["ClusterFullError", "DiscoveryError", "join_cluster"]


class DiscoveryError(Exception):
    """Discovery failed; the message is etcd's line."""


class ClusterFullError(DiscoveryError):
    """Every place in the discovered cluster is taken."""

    def __init__(self) -> None:
        super().__init__("discovery: cluster is full")


#: ``fetch(method, url, form) -> (status, JSON body)``.
Fetch = Callable[[str, str, dict[str, str] | None], tuple[int, Any]]


def urllib_fetch(proxy: str = "", timeout: float = 60.0) -> Fetch:
    """HTTP through urllib (via ``proxy`` when given)."""
    handlers: list[Any] = [
        urllib.request.ProxyHandler({"http": proxy, "https": proxy} if proxy else {})
    ]
    opener = urllib.request.build_opener(*handlers)

    def fetch(method: str, url: str, form: dict[str, str] | None) -> tuple[int, Any]:
        data = urllib.parse.urlencode(form).encode() if form is not None else None
        request = urllib.request.Request(url, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/x-www-form-urlencoded")
        try:
            with opener.open(request, timeout=timeout) as response:
                return response.status, json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as e:
            try:
                return e.code, json.loads(e.read() or b"{}")
            except ValueError:
                return e.code, {}
        except (OSError, ValueError) as e:
            raise DiscoveryError(f"discovery: cannot reach {url}: {e}") from None

    return fetch


def _children(body: Any) -> list[dict[str, Any]]:
    nodes = body.get("node", {}).get("nodes", []) or []
    members = [n for n in nodes if not n["key"].endswith("/_config")]
    return sorted(members, key=lambda n: n.get("createdIndex", 0))


def join_cluster(
    url: str,
    name: str,
    peer_urls: Sequence[str],
    fetch: Fetch,
    deadline_seconds: float = 600.0,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, list[str]]:
    """Register this member at ``url`` and return the initial cluster once complete."""
    base = url.rstrip("/")
    status, body = fetch("GET", f"{base}/_config/size", None)
    if status == 404:
        raise DiscoveryError("discovery: size key not found")
    try:
        size = int(body["node"]["value"])
    except (KeyError, TypeError, ValueError):
        raise DiscoveryError("discovery: bad size key") from None
    own_id = member_id(peer_urls, url)
    value = ",".join(f"{name}={u}" for u in peer_urls)
    status, body = fetch("PUT", f"{base}/{own_id:x}?prevExist=false", {"value": value})
    if status == 412 or body.get("errorCode") == 105:
        raise DiscoveryError("discovery: found duplicate id")
    if status >= 300:
        raise DiscoveryError(f"discovery: cannot register: {body.get('message', status)}")
    deadline = clock() + deadline_seconds
    while True:
        status, body = fetch("GET", f"{base}?recursive=true", None)
        members = _children(body)
        if len(members) >= size:
            break
        if clock() > deadline:
            raise DiscoveryError(f"discovery: only {len(members)} of {size} members registered")
        index = max((n.get("modifiedIndex", 0) for n in members), default=0)
        try:
            fetch("GET", f"{base}?wait=true&recursive=true&waitIndex={index + 1}", None)
        except DiscoveryError:
            pass  # a long poll that timed out: look again until the deadline
    chosen = members[:size]
    if not any(n["key"].rsplit("/", 1)[-1] == f"{own_id:x}" for n in chosen):
        raise ClusterFullError()
    cluster: dict[str, list[str]] = {}
    for node in chosen:
        for part in node["value"].split(","):
            member, _, peer_url = part.partition("=")
            cluster.setdefault(member, []).append(peer_url)
    return cluster
