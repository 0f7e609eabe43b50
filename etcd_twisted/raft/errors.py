"""Exceptions raised by the raft package."""


class RaftError(Exception):
    """Base class of every raft error."""


class CompactedError(RaftError):
    """The requested index is older than the first entry kept: it was compacted away."""


class UnavailableError(RaftError):
    """The requested entry is not (yet) in storage."""


class SnapOutOfDateError(RaftError):
    """The snapshot is older than the one storage already holds."""


class SnapshotTemporarilyUnavailableError(RaftError):
    """Storage cannot produce a snapshot right now; raft retries later."""


class ProposalDroppedError(RaftError):
    """The proposal (or read request) was dropped: no leader, transfer in progress, or over a limit."""


class StepLocalMessageError(RaftError):
    """A local-only message type (such as MsgHup) was given to ``RawNode.step``."""


class StepPeerNotFoundError(RaftError):
    """A response came from a node that is not in the configuration."""


class ConfigError(RaftError):
    """The ``Config`` is invalid."""


class ConfChangeError(RaftError):
    """The configuration change cannot be applied (for example it removes every voter)."""
