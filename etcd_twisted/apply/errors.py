"""Errors a request meets when it is checked or applied; ``api/errors.py`` maps them."""


class ApplyError(Exception):
    """Base class for request validation and apply errors."""


class KeyNotFoundError(ApplyError):
    """``ignore_value``/``ignore_lease`` on a key that does not exist."""


class ValueProvidedError(ApplyError):
    """A value was sent together with ``ignore_value``."""


class LeaseProvidedError(ApplyError):
    """A lease was sent together with ``ignore_lease``."""


class EmptyKeyError(ApplyError):
    """The request has no key."""


class TooManyOpsError(ApplyError):
    """A txn has more compares or ops than ``--max-txn-ops``."""


class DuplicateKeyError(ApplyError):
    """A txn branch writes one key twice."""


class NoSpaceError(ApplyError):
    """The backend quota is exhausted (the NOSPACE alarm is raised)."""


class InvalidSortOptionError(ApplyError):
    """A range asks for a sort order or target that does not exist."""


class CorruptClusterError(ApplyError):
    """The CORRUPT alarm is raised: data requests are refused until it is cleared."""
