"""``twistd etcd``: command-line options and ``makeService``.

Flags are parsed by :mod:`etcd_twisted.config` (Go-style, as etcd takes them) rather
than by ``usage.Options``, so ``--flag value``, ``--flag=value`` and bare boolean flags
all behave as they do for etcd. A bad flag prints one line and exits with status 1.
"""

from __future__ import annotations

import os
import sys

from twisted.application.service import IService
from twisted.python import usage
from twisted.python.failure import Failure

from etcd_twisted import ETCD_VERSION, __version__
from etcd_twisted.backend.errors import BackendError
from etcd_twisted.config import (
    Config,
    ConfigError,
    HelpRequested,
    VersionRequested,
    help_text,
    parse,
)
from etcd_twisted.embed import build_service
from etcd_twisted.listen import ListenError
from etcd_twisted.server.bootstrap import BootstrapError
from etcd_twisted.wal.errors import DataDirError, SnapError, WALError


class Options(usage.Options):
    """The ``etcd`` subcommand's options: every etcd flag (see ``--help``)."""

    config: Config

    def parseOptions(self, options: list[str] | None = None) -> None:
        args = sys.argv[1:] if options is None else options
        try:
            self.config = parse(args, os.environ)
        except HelpRequested as e:
            sys.stdout.write(str(e))
            raise SystemExit(0) from None
        except VersionRequested:
            sys.stdout.write(f"etcd-twisted Version: {__version__}\nAPI Version: {ETCD_VERSION}\n")
            raise SystemExit(0) from None
        except ConfigError as e:
            sys.stderr.write(f"etcd: {e}\n")
            raise SystemExit(1) from None

    def getUsage(self, width: int | None = None) -> str:
        return help_text()


def makeService(options: Options) -> IService:
    """Build the member's services; a data dir or listen URL that cannot be used exits 1."""
    # Imported here, not at the top: twistd installs the chosen reactor after loading plugins.
    from twisted.internet import reactor

    for warning in options.config.warnings:
        sys.stderr.write(f"etcd: warning: {warning}\n")
    try:
        return build_service(
            options.config, reactor, on_fatal=_exit_on_fatal, on_removed=reactor.stop
        )
    except STARTUP_ERRORS as e:
        sys.stderr.write(f"etcd: {e}\n")
        raise SystemExit(1) from None


#: Errors that stop a member from starting; each is reported as one line.
STARTUP_ERRORS = (
    BootstrapError,
    DataDirError,
    WALError,
    SnapError,
    BackendError,
    ListenError,
    OSError,
)


def _exit_on_fatal(failure: Failure) -> None:
    """A member that cannot go on (its WAL failed, a port cannot be bound) exits 1 at once."""
    sys.stderr.write(f"etcd: fatal: {failure.getErrorMessage() or failure.type.__name__}\n")
    sys.stderr.flush()
    os._exit(1)
