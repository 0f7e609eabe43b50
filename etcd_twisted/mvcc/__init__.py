"""Multi-version concurrency control: revisions, the key index, the KV store, watches."""

from .errors import CompactedError, FutureRevisionError, MvccError, RevisionNotFoundError
from .index import TreeIndex
from .key_index import Generation, KeyIndex
from .revision import Revision, bytes_to_rev, is_tombstone, rev_to_bytes

__all__ = [
    "CompactedError",
    "FutureRevisionError",
    "Generation",
    "KeyIndex",
    "MvccError",
    "Revision",
    "RevisionNotFoundError",
    "TreeIndex",
    "bytes_to_rev",
    "is_tombstone",
    "rev_to_bytes",
]
