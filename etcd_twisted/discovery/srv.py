"""A member's ``--discovery-srv``: the initial cluster from DNS SRV records, before start.

As etcd's ``srv.GetCluster``: the records ``_etcd-server-ssl[-NAME]._tcp.DOMAIN`` (https
peers) and ``_etcd-server[-NAME]._tcp.DOMAIN`` (http peers) are looked up; a record
whose address is one of this member's ``--initial-advertise-peer-urls`` gets this
member's name, the others numbered names (``0``, ``1``, ...: member ids come from the
peer URLs and the cluster token, not from names). The member must find itself.

This runs in ``makeService``, before the reactor, so the queries are plain blocking UDP
exchanges of ``twisted.names`` messages with the system's name server (the first
``nameserver`` of ``/etc/resolv.conf``), or ``ETCD_TWISTED_DNS_SERVER`` (``host:port``).
"""

from __future__ import annotations

import os
import random
import socket
from collections.abc import Callable, Mapping, Sequence
from urllib.parse import urlsplit

from twisted.names import dns

__all__ = ["SrvBootstrapError", "initial_cluster_from_srv", "name_server", "query_srv"]


class SrvBootstrapError(Exception):
    """The cluster cannot be found in DNS; the message is etcd's line."""


def name_server(environ: Mapping[str, str] | None = None) -> tuple[str, int]:
    """``ETCD_TWISTED_DNS_SERVER``, else the first name server of /etc/resolv.conf."""
    env = os.environ if environ is None else environ
    override = env.get("ETCD_TWISTED_DNS_SERVER", "")
    if override:
        host, _, port = override.rpartition(":")
        return host, int(port)
    try:
        with open("/etc/resolv.conf") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 2 and parts[0] == "nameserver":
                    return parts[1], 53
    except OSError:
        pass
    return "127.0.0.1", 53


def query_srv(name: str, server: tuple[str, int], timeout: float = 3.0) -> list[dns.Record_SRV]:
    """The SRV records of ``name``; LookupError if there are none."""
    query = dns.Message(id=random.randrange(1, 0xFFFF), recDes=1)
    query.queries = [dns.Query(name, dns.SRV, dns.IN)]
    family = socket.AF_INET6 if ":" in server[0] else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.sendto(query.toStr(), server)
            while True:
                data, _ = sock.recvfrom(65535)
                answer = dns.Message()
                answer.fromStr(data)
                if answer.id == query.id:
                    break
        except OSError as e:
            raise LookupError(f"lookup {name} on {server[0]}:{server[1]}: {e}") from None
    records = [a.payload for a in answer.answers if a.type == dns.SRV]
    if answer.rCode != dns.OK or not records:
        raise LookupError(f"lookup {name} on {server[0]}:{server[1]}: no such host")
    return records


def _service(scheme: str, service_name: str) -> str:
    service = "etcd-server-ssl" if scheme == "https" else "etcd-server"
    return f"{service}-{service_name}" if service_name else service


def _tcp_address(host: str, port: int) -> str:
    info = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)[0][4]
    return f"{info[0]}:{info[1]}"


def initial_cluster_from_srv(
    name: str,
    domain: str,
    service_name: str,
    advertise_peer_urls: Sequence[str],
    lookup: Callable[[str], list[dns.Record_SRV]],
) -> dict[str, list[str]]:
    """``{member name: [peer URLs]}`` for the cluster the SRV records of ``domain`` name."""
    own: dict[str, str] = {}
    for url in advertise_peer_urls:
        parts = urlsplit(url)
        own[_tcp_address(parts.hostname or "", parts.port or 2380)] = url
    members: dict[str, list[str]] = {}
    numbered = 0
    errors: list[str] = []
    for scheme in ("https", "http"):
        service = f"_{_service(scheme, service_name)}._tcp.{domain}"
        try:
            records = lookup(service)
        except LookupError as e:
            errors.append(str(e))
            continue
        for record in records:
            target = record.target.name.decode().rstrip(".")
            try:
                address = _tcp_address(target, record.port)
            except OSError as e:
                errors.append(f"lookup {target}: {e}")
                continue
            url = f"{scheme}://{target}:{record.port}"
            mine = own.get(address)
            if mine is not None and urlsplit(mine).scheme != scheme:
                raise SrvBootstrapError(
                    f"bootstrap at {url} from DNS for {service} has scheme mismatch with "
                    f"expected peer {mine}"
                )
            member = name if mine is not None else str(numbered)
            if mine is None:
                numbered += 1
            members.setdefault(member, []).append(url)
    if not members:
        raise SrvBootstrapError(
            "error querying DNS SRV records for _etcd-server " + " ".join(errors)
        )
    if name not in members:
        raise SrvBootstrapError(f'cannot find local etcd member "{name}" in SRV records')
    return members
