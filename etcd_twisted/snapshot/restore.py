"""``snapshot restore``: a new data dir for this server from an etcd v3 snapshot.

The snapshot may come from etcd or from this server (both write etcd's bbolt
file). As ``etcdutl snapshot restore`` does for etcd:

1. the trailing sha256 is checked (unless ``skip_hash_check``);
2. every bucket is copied into a new LMDB backend, in our encoding;
3. the old membership is dropped and the cluster named by the flags is written
   (member ids from the peer URLs and the token, so a restored cluster is new);
4. a WAL is created naming this member and the cluster, holding one
   ConfChangeAddNode per member (term 1, committed), then a raft snapshot at the
   last of them, whose conf state lists the members as voters;
5. the backend's consistent index is set to that index (term 1), so the server
   starts with everything applied and raft continues from the snapshot.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TextIO

from etcd_twisted._pb import raft_pb2, wal_pb2
from etcd_twisted._pb.raft_internal_pb2 import Metadata
from etcd_twisted.backend import Backend, buckets
from etcd_twisted.backend.bbolt_read import BboltReader
from etcd_twisted.backend.etcd_layout import from_etcd
from etcd_twisted.membership.cluster import Cluster, Member
from etcd_twisted.membership.ids import cluster_id, member_id
from etcd_twisted.snapshot.status import verify
from etcd_twisted.wal import WAL, Snapshotter, backend_path, snap_dir, wal_dir

__all__ = ["RestoreConfig", "RestoreError", "restore"]

#: Pairs written per backend commit while copying.
_BATCH = 10_000


class RestoreError(ValueError):
    """The flags or the target do not allow a restore (the message says why)."""


@dataclass(frozen=True)
class RestoreConfig:
    """``etcdutl snapshot restore``'s flags."""

    snapshot_path: str
    name: str = "default"
    data_dir: str = ""
    wal_dir: str = ""
    initial_cluster: Mapping[str, list[str]] | None = None
    initial_cluster_token: str = "etcd-cluster"
    peer_urls: tuple[str, ...] = ("http://localhost:2380",)
    skip_hash_check: bool = False


def _members(cfg: RestoreConfig) -> list[Member]:
    cluster = cfg.initial_cluster or {cfg.name: ["http://localhost:2380"]}
    if cfg.name not in cluster:
        raise RestoreError(
            f'couldn\'t find local name "{cfg.name}" in the initial cluster configuration'
        )
    mine, advertised = set(cluster[cfg.name]), set(cfg.peer_urls)
    if mine != advertised:
        missing = sorted(mine - advertised)
        if missing:
            raise RestoreError(
                f"--initial-cluster has {','.join(f'{cfg.name}={u}' for u in missing)} "
                f"but missing from --initial-advertise-peer-urls={','.join(sorted(advertised))}"
            )
        raise RestoreError(
            f"--initial-advertise-peer-urls has {','.join(sorted(advertised - mine))} "
            f"but missing from --initial-cluster={cfg.name}={','.join(sorted(mine))}"
        )
    urls = [u for peer in cluster.values() for u in peer]
    if len(set(urls)) != len(urls):
        raise RestoreError("initial cluster has duplicate url")
    token = cfg.initial_cluster_token
    return sorted(
        (Member(member_id(peer, token), name, list(peer)) for name, peer in cluster.items()),
        key=lambda m: m.id,
    )


def restore(cfg: RestoreConfig, log: TextIO = sys.stderr) -> str:
    """Make the data dir; its path. Unknown buckets are skipped with a line on ``log``."""
    members = _members(cfg)
    data_dir = cfg.data_dir or f"{cfg.name}.etcd"
    if os.path.exists(data_dir) and (not os.path.isdir(data_dir) or os.listdir(data_dir)):
        raise RestoreError(f'data-dir "{data_dir}" not empty or could not be read')
    walpath = cfg.wal_dir or wal_dir(data_dir)
    if cfg.wal_dir and os.path.exists(walpath):
        raise RestoreError(f'wal-dir "{walpath}" exists')
    verify(cfg.snapshot_path, cfg.skip_hash_check)
    local = next(m for m in members if m.name == cfg.name)
    cid = cluster_id(m.id for m in members)
    os.makedirs(snap_dir(data_dir), mode=0o700, exist_ok=True)
    with BboltReader(cfg.snapshot_path) as db:
        size = db.size
        backend = Backend(
            backend_path(data_dir), headroom_bytes=max(2 * size, 64 * 1024**2), batch_limit=_BATCH
        )
        try:
            _copy(backend, from_etcd(db.buckets()), log)
            _replace_membership(backend, members)
            index, term = len(members), 1
            backend.set_consistent_index(index, term)
            backend.force_commit()
            backend.sync()
        finally:
            backend.close()
    _write_wal_and_snapshot(walpath, snap_dir(data_dir), local.id, cid, members, index, term)
    return data_dir


def _copy(
    backend: Backend, theirs: Iterable[tuple[bytes, Iterable[tuple[bytes, bytes]]]], log: TextIO
) -> None:
    tx = backend.batch_tx
    for name, pairs in theirs:
        if name not in buckets.ALL:
            log.write(f"skipping bucket {name.decode(errors='replace')!r}: not one of etcd 3.5's\n")
            continue
        for key, value in pairs:
            tx.put(name, key, value)
            if backend.pending >= _BATCH:
                backend.force_commit()


def _replace_membership(backend: Backend, members: list[Member]) -> None:
    """etcd's ``TrimMembershipFromBackend``, then the new members."""
    tx = backend.batch_tx
    for bucket in (buckets.MEMBERS, buckets.MEMBERS_REMOVED):
        for key, _ in list(tx.items(bucket)):
            tx.delete(bucket, key)
    cluster = Cluster(0, tx)
    for m in members:
        cluster.add(m)


def _write_wal_and_snapshot(
    walpath: str,
    snappath: str,
    local_id: int,
    cid: int,
    members: list[Member],
    index: int,
    term: int,
) -> None:
    metadata = Metadata(NodeID=local_id, ClusterID=cid).SerializeToString()
    entries = [
        raft_pb2.Entry(
            type=raft_pb2.EntryConfChange,
            term=term,
            index=i,
            data=raft_pb2.ConfChange(
                type=raft_pb2.ConfChangeAddNode, node_id=m.id, context=m.to_context()
            ).SerializeToString(),
        )
        for i, m in enumerate(members, 1)
    ]
    conf_state = raft_pb2.ConfState(voters=[m.id for m in members])
    wal = WAL.create(walpath, metadata)
    try:
        wal.save(raft_pb2.HardState(term=term, vote=members[0].id, commit=index), entries)
        Snapshotter(snappath).save_snap(
            raft_pb2.Snapshot(
                metadata=raft_pb2.SnapshotMetadata(index=index, term=term, conf_state=conf_state)
            )
        )
        wal.save_snapshot(wal_pb2.Snapshot(index=index, term=term, conf_state=conf_state))
    finally:
        wal.close()
