"""A pure raft consensus core after etcd's raft package: no I/O, no clock, no global state.

The application owns a ``RawNode``, feeds it ticks, messages and proposals, and handles each
``Ready`` in order: persist, send, apply, ``advance``. See ``rawnode`` for the loop.
"""

from etcd_twisted.raft.errors import (
    CompactedError,
    ConfChangeError,
    ConfigError,
    ProposalDroppedError,
    RaftError,
    SnapOutOfDateError,
    SnapshotTemporarilyUnavailableError,
    StepLocalMessageError,
    StepPeerNotFoundError,
    UnavailableError,
)
from etcd_twisted.raft.progress import Progress, ProgressState
from etcd_twisted.raft.raft import Config, SoftState, StateType
from etcd_twisted.raft.rawnode import Peer, RawNode, Ready, Status
from etcd_twisted.raft.read_only import ReadState
from etcd_twisted.raft.storage import MemoryStorage, Storage
from etcd_twisted.raft.util import NO_LIMIT

__all__ = [
    "NO_LIMIT",
    "CompactedError",
    "ConfChangeError",
    "ConfigError",
    "Config",
    "MemoryStorage",
    "Peer",
    "Progress",
    "ProgressState",
    "ProposalDroppedError",
    "RaftError",
    "RawNode",
    "ReadState",
    "Ready",
    "SnapOutOfDateError",
    "SnapshotTemporarilyUnavailableError",
    "SoftState",
    "StateType",
    "Status",
    "StepLocalMessageError",
    "StepPeerNotFoundError",
    "Storage",
    "UnavailableError",
]
