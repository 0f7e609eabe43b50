"""What a data directory holds, and where its parts live (etcd's ``identifyDataDirOrDie``).

Layout: ``DATA_DIR/member/wal/*.wal``, ``DATA_DIR/member/snap/*.snap`` and the
backend database ``DATA_DIR/member/snap/db``. ``proxy`` is etcd's v2 proxy
directory, recognised so that it can be refused clearly.
"""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass

from etcd_twisted.wal.errors import DataDirError

__all__ = [
    "DataDir",
    "DirType",
    "backend_path",
    "identify_data_dir",
    "member_dir",
    "snap_dir",
    "snapshot_db_path",
    "wal_dir",
]

#: Entries that do not make a data dir "not empty": the file system's, and the
#: certificates ``--auto-tls``/``--peer-auto-tls`` generate before the member exists.
_IGNORED = frozenset({"lost+found", "fixtures"})


class DirType(enum.Enum):
    """The kinds of data directory."""

    EMPTY = "empty"
    MEMBER = "member"
    PROXY = "proxy"


@dataclass(frozen=True)
class DataDir:
    """The kind of a data directory and the names found next to ``member`` (worth a warning)."""

    type: DirType
    unknown: tuple[str, ...] = ()


def member_dir(data_dir: str) -> str:
    """``DATA_DIR/member``."""
    return os.path.join(data_dir, "member")


def wal_dir(data_dir: str) -> str:
    """``DATA_DIR/member/wal``."""
    return os.path.join(member_dir(data_dir), "wal")


def snap_dir(data_dir: str) -> str:
    """``DATA_DIR/member/snap``."""
    return os.path.join(member_dir(data_dir), "snap")


def backend_path(data_dir: str) -> str:
    """``DATA_DIR/member/snap/db``, the backend database file."""
    return os.path.join(snap_dir(data_dir), "db")


def snapshot_db_path(snap_path: str, index: int) -> str:
    """``<snap dir>/<index:016x>.snap.db``: the database a leader sent with a snapshot."""
    return os.path.join(snap_path, f"{index:016x}.snap.db")


def identify_data_dir(data_dir: str) -> DataDir:
    """Classify ``data_dir``; raise DataDirError for a layout this server will not touch.

    Missing or empty (hidden files, ``lost+found`` and ``fixtures`` aside) is EMPTY; a
    ``member`` directory is MEMBER. Refused: a path that is not a directory,
    ``member`` or ``proxy`` that is not a directory, both at once, a ``proxy``
    directory (v2 proxy mode is not supported), and a non-empty directory with
    neither (most likely a wrong ``--data-dir``).
    """
    if not os.path.lexists(data_dir):
        return DataDir(DirType.EMPTY)
    if not os.path.isdir(data_dir):
        raise DataDirError(f"data dir {data_dir!r} is not a directory")
    names = sorted(n for n in os.listdir(data_dir) if not n.startswith(".") and n not in _IGNORED)
    found = {t for t in (DirType.MEMBER, DirType.PROXY) if t.value in names}
    for t in found:
        if not os.path.isdir(os.path.join(data_dir, t.value)):
            raise DataDirError(f"data dir {data_dir!r}: {t.value!r} is not a directory")
    if len(found) == 2:
        raise DataDirError(
            f"invalid data dir {data_dir!r}: both member and proxy directories exist"
        )
    if DirType.PROXY in found:
        raise DataDirError(
            f"data dir {data_dir!r} belongs to an etcd v2 proxy, which is not supported"
        )
    others = tuple(n for n in names if n != DirType.MEMBER.value)
    if DirType.MEMBER in found:
        return DataDir(DirType.MEMBER, others)
    if others:
        raise DataDirError(
            f"data dir {data_dir!r} is not empty and has no member directory"
            f" (found {', '.join(others)}); refusing an unknown layout"
        )
    return DataDir(DirType.EMPTY)
