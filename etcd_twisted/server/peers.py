"""The peer network as the server sees it, and keeping its peers equal to the members.

The server is given a factory that builds its :class:`PeerNetwork` (the peer
transport in a member; :class:`LoneNetwork` when there is nobody to talk to). The
network tells the server what arrives through the :class:`PeerInbox` calls, which
the server implements; the server tells the network which peers exist, following
every applied membership change and every snapshot that replaced the membership.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol

from etcd_twisted._pb import raft_pb2
from etcd_twisted.membership.cluster import Member


class PeerNetwork(Protocol):
    """Raft messages out, and the set of peers."""

    peers: dict[int, object]

    def send(self, messages: list[raft_pb2.Message]) -> None: ...
    def is_active(self, member_id: int) -> bool: ...
    def add_peer(self, member_id: int, urls: list[str]) -> None: ...
    def update_peer(self, member_id: int, urls: list[str]) -> None: ...
    def remove_peer(self, member_id: int) -> None: ...


class PeerInbox(Protocol):
    """What the network hands the server (the server implements these)."""

    member_id: int
    cluster_id: int

    def step(self, message: raft_pb2.Message) -> None: ...
    def report_unreachable(self, member_id: int) -> None: ...
    def report_snapshot(self, member_id: int, ok: bool) -> None: ...
    def snapshot_received(self, message: raft_pb2.Message, path: str) -> None: ...
    def is_removed(self, member_id: int) -> bool: ...
    def removed(self) -> None: ...


#: Builds the server's network, given the server as its inbox.
NetworkFactory = Callable[[PeerInbox], PeerNetwork]


class LoneNetwork:
    """The network of a member with no transport (tests, a member alone): sends nothing."""

    def __init__(self, inbox: PeerInbox) -> None:
        self._member_id = inbox.member_id
        self.peers: dict[int, object] = {}

    def send(self, messages: list[raft_pb2.Message]) -> None:
        """Nobody to send to."""

    def is_active(self, member_id: int) -> bool:
        return member_id == self._member_id

    def add_peer(self, member_id: int, urls: list[str]) -> None:
        self.peers[member_id] = urls

    def update_peer(self, member_id: int, urls: list[str]) -> None:
        self.peers[member_id] = urls

    def remove_peer(self, member_id: int) -> None:
        self.peers.pop(member_id, None)


def follow_conf_change(
    network: PeerNetwork, members: dict[int, Member], cc: raft_pb2.ConfChange
) -> None:
    """Follow an applied membership change in the network."""
    if cc.type == raft_pb2.ConfChangeRemoveNode:
        network.remove_peer(cc.node_id)
        return
    member = members.get(cc.node_id)
    if member is None:
        return
    if cc.type == raft_pb2.ConfChangeUpdateNode:
        network.update_peer(member.id, member.peer_urls)
    else:
        network.add_peer(member.id, member.peer_urls)


def sync_peers(network: PeerNetwork, members: dict[int, Member], initial: Iterable[Member]) -> None:
    """Make the network's peers the cluster's members (at start, after a snapshot); on a
    first start, when no membership is applied yet, the members we were told about."""
    for member in members.values():
        network.add_peer(member.id, member.peer_urls)
    if not members:
        for member in initial:
            network.add_peer(member.id, member.peer_urls)
        return
    for peer_id in list(network.peers):
        if peer_id not in members:
            network.remove_peer(peer_id)
