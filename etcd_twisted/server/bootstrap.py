"""Open a member's data dir: a new member's first start, or a restart from disk.

Like etcd's ``bootstrap.go``: a new member computes the member and cluster ids from
``--initial-cluster`` and ``--initial-cluster-token``, creates the WAL (its metadata
record names the member and cluster) and the backend, and bootstraps raft with one
ConfChange per initial member. A restarted member ignores the bootstrap flags: it
loads the newest snapshot the WAL knows, opens the WAL at it, and rebuilds raft's
storage from snapshot + WAL; the backend's consistent index says which committed
entries were already applied. A crash after a leader's snapshot was saved but before
its database replaced the backend leaves the backend behind the snapshot: the restart
installs the database kept beside it (``<index>.snap.db``), as etcd's
``recoverSnapshotBackend`` does. With ``--force-new-cluster`` a restart leaves the
member alone in its cluster (``standalone.py``).
"""

from __future__ import annotations

import glob
import json
import os
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from random import Random

from etcd_twisted._pb import raft_pb2, wal_pb2
from etcd_twisted._pb.raft_internal_pb2 import Metadata
from etcd_twisted.backend import Backend, restore_snapshot
from etcd_twisted.config import Config
from etcd_twisted.membership.cluster import Member
from etcd_twisted.membership.ids import cluster_id, member_id
from etcd_twisted.raft import Config as RaftConfig
from etcd_twisted.raft import MemoryStorage, Peer, RawNode
from etcd_twisted.server.standalone import restart_standalone
from etcd_twisted.wal import (
    WAL,
    DirType,
    NoSnapshotError,
    Snapshotter,
    backend_path,
    identify_data_dir,
    snap_dir,
    snapshot_db_path,
    valid_snapshot_entries,
)
from etcd_twisted.wal import exist as wal_exists
from etcd_twisted.wal.files import makedirs_durable

#: Raft messages are at most this large (etcd's ``maxSizePerMsg``).
MAX_SIZE_PER_MSG = 1024 * 1024
#: Unacknowledged append messages in flight per follower (etcd's ``maxInflightMsgs``).
MAX_INFLIGHT_MSGS = 4096 // 8


class BootstrapError(Exception):
    """The data dir and flags do not make a member (the message says why)."""


@dataclass
class Bootstrapped:
    """Everything a member needs from disk to start its server."""

    member_id: int
    cluster_id: int
    #: The members known at a first start (the bootstrap ones, or those a joining member
    #: fetched from its peers); empty on restart, where the backend has them.
    initial_members: list[Member]
    wal: WAL
    snapshotter: Snapshotter
    storage: MemoryStorage
    node: RawNode
    backend: Backend
    #: The snapshot the member restarted from, if any.
    snapshot: raft_pb2.Snapshot | None
    is_new: bool


def bootstrap(
    config: Config, rng: Random, on_sync: Callable[[float], None] | None = None
) -> Bootstrapped:
    """Open or create the member in ``config.data_dir``; ``on_sync`` hears each WAL
    fdatasync's duration in seconds (on the writer thread)."""
    kind = identify_data_dir(config.data_dir).type
    wal_path = config.wal_path
    if kind == DirType.EMPTY or not wal_exists(wal_path):
        return _new_member(config, rng, on_sync)
    return _restart(config, rng, on_sync)


def _open_backend(config: Config) -> Backend:
    makedirs_durable(snap_dir(config.data_dir))
    return Backend(
        backend_path(config.data_dir),
        quota_bytes=config.quota_bytes,
        batch_interval=config.backend_batch_interval,
        batch_limit=config.backend_batch_limit,
        sync_commits=not config.unsafe_no_fsync,
    )


def _snapshotter(config: Config) -> Snapshotter:
    return Snapshotter(snap_dir(config.data_dir), unsafe_no_fsync=config.unsafe_no_fsync)


def _raft_config(config: Config, node_id: int, storage: MemoryStorage, rng: Random) -> RaftConfig:
    return RaftConfig(
        id=node_id,
        storage=storage,
        election_tick=config.election_ticks,
        heartbeat_tick=1,
        max_size_per_msg=MAX_SIZE_PER_MSG,
        max_inflight_msgs=MAX_INFLIGHT_MSGS,
        max_uncommitted_entries_size=1 << 30,
        check_quorum=True,
        pre_vote=config.pre_vote,
        random=rng,
    )


def _new_member(
    config: Config, rng: Random, on_sync: Callable[[float], None] | None
) -> Bootstrapped:
    if config.initial_cluster_state == "existing":
        return _join(config, rng, on_sync)
    if config.name not in config.initial_cluster:
        raise BootstrapError(
            f"couldn't find local name {config.name!r} in the initial cluster configuration"
        )
    token = config.initial_cluster_token
    members = [
        Member(member_id(urls, token), name, list(urls))
        for name, urls in config.initial_cluster.items()
    ]
    ids = [m.id for m in members]
    if len(set(ids)) != len(ids):
        raise BootstrapError("--initial-cluster has two members with the same peer URLs")
    local = next(m for m in members if m.name == config.name)
    boot = _first_start(config, rng, on_sync, local.id, cluster_id(ids), members)
    boot.node.bootstrap([Peer(m.id, m.to_context()) for m in sorted(members, key=lambda m: m.id)])
    return boot


def _first_start(
    config: Config,
    rng: Random,
    on_sync: Callable[[float], None] | None,
    local_id: int,
    cid: int,
    members: list[Member],
) -> Bootstrapped:
    """Create a member's data dir, WAL (naming member and cluster) and backend, and an
    empty raft node: what a new cluster's member and a joining member both start from."""
    makedirs_durable(config.data_dir)
    makedirs_durable(snap_dir(config.data_dir))
    metadata = Metadata(NodeID=local_id, ClusterID=cid).SerializeToString()
    wal = WAL.create(
        config.wal_path, metadata, on_sync=on_sync, unsafe_no_fsync=config.unsafe_no_fsync
    )
    backend = _open_backend(config)
    storage = MemoryStorage()
    node = RawNode(_raft_config(config, local_id, storage, rng))
    return Bootstrapped(
        local_id, cid, members, wal, _snapshotter(config), storage, node,
        backend, None, True,
    )  # fmt: skip


def fetch_cluster(peer_urls: list[str], timeout: float = 2.0) -> tuple[int, list[Member]]:
    """Ask running members (``GET /members`` on their peer URLs) for the cluster id and members."""
    errors = []
    for url in peer_urls:
        try:
            with urllib.request.urlopen(url.rstrip("/") + "/members", timeout=timeout) as resp:
                cluster_id = int(resp.headers["X-Etcd-Cluster-Id"], 16)
                body = json.load(resp)
        except (OSError, ValueError, KeyError, TypeError) as e:
            errors.append(f"{url}: {e}")
            continue
        members = [
            Member(
                int(m["id"]),
                m.get("name", ""),
                list(m.get("peerURLs", [])),
                list(m.get("clientURLs", [])),
                bool(m.get("isLearner", False)),
            )
            for m in body
        ]
        return cluster_id, members
    raise BootstrapError(f"cannot fetch cluster info from peer urls: {'; '.join(errors)}")


def _join(config: Config, rng: Random, on_sync: Callable[[float], None] | None) -> Bootstrapped:
    """A member added with ``member add`` starting for the first time: it learns the
    cluster from its peers and waits for the leader to send it the log."""
    own = sorted(config.initial_advertise_peer_urls)
    remote = [
        url for name, urls in config.initial_cluster.items() if sorted(urls) != own for url in urls
    ]
    cid, members = fetch_cluster(remote)
    local = next((m for m in members if sorted(m.peer_urls) == own), None)
    if local is None:
        raise BootstrapError(
            f"this member's peer URLs {','.join(own)} are not in the cluster: "
            "add it with `etcdctl member add` first"
        )
    return _first_start(config, rng, on_sync, local.id, cid, members)


def _restart(config: Config, rng: Random, on_sync: Callable[[float], None] | None) -> Bootstrapped:
    snapshotter = _snapshotter(config)
    walsnaps = valid_snapshot_entries(config.wal_path)
    snapshot: raft_pb2.Snapshot | None
    try:
        snapshot = snapshotter.load_newest_available(walsnaps)
    except NoSnapshotError:
        snapshot = None
    walsnap = wal_pb2.Snapshot()
    if snapshot is not None:
        md = snapshot.metadata
        walsnap = wal_pb2.Snapshot(index=md.index, term=md.term, conf_state=md.conf_state)
    wal = WAL.open(
        config.wal_path, walsnap, on_sync=on_sync, unsafe_no_fsync=config.unsafe_no_fsync
    )
    raw_metadata, hard_state, entries = wal.read_all()
    metadata = Metadata.FromString(raw_metadata)
    if config.force_new_cluster:
        entries = restart_standalone(wal, metadata.NodeID, snapshot, hard_state, entries)
    backend = _open_backend(config)
    if snapshot is not None:
        backend = _catch_up_backend(config, backend, snapshot.metadata.index)
    _remove_received_leftovers(config)
    storage = MemoryStorage()
    if snapshot is not None:
        storage.apply_snapshot(snapshot)
    storage.set_hard_state(hard_state)
    storage.append(entries)
    node = RawNode(_raft_config(config, metadata.NodeID, storage, rng))
    return Bootstrapped(
        metadata.NodeID, metadata.ClusterID, [], wal, snapshotter, storage, node, backend,
        snapshot, False,
    )  # fmt: skip


def _catch_up_backend(config: Config, backend: Backend, index: int) -> Backend:
    """The backend, or, when it is behind the snapshot at ``index`` (the member stopped
    before the database received with that snapshot replaced it), that database."""
    applied = backend.consistent_index()[0]
    if applied >= index:
        return backend
    received = snapshot_db_path(snap_dir(config.data_dir), index)
    if not os.path.exists(received):
        backend.close()
        raise BootstrapError(
            f"the backend has applied up to index {applied}, behind the snapshot at index "
            f"{index}, and the database received with it ({received}) is missing"
        )
    map_size = backend.map_size
    backend.close()
    with open(received, "rb") as f:
        restore_snapshot(
            backend_path(config.data_dir), iter(lambda: f.read(1 << 20), b""), map_size=map_size
        )
    os.unlink(received)
    return _open_backend(config)


def _remove_received_leftovers(config: Config) -> None:
    """Delete received snapshot databases and half-built backends that nothing will use."""
    directory = snap_dir(config.data_dir)
    for pattern in ("*.snap.db", "*.snap.db.part", "db.incoming", "db.incoming-lock"):
        for path in glob.glob(os.path.join(directory, pattern)):
            os.unlink(path)
