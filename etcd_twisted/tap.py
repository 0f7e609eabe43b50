"""``twistd etcd``: command-line options and ``makeService``.

Flags are parsed by :mod:`etcd_twisted.config` (Go-style, as etcd takes them) rather
than by ``usage.Options``, so ``--flag value``, ``--flag=value`` and bare boolean flags
all behave as they do for etcd. A bad flag prints one line and exits with status 1.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from typing import IO, Any

from twisted.application.service import IService
from twisted.logger import LogEvent
from twisted.python import usage
from twisted.python.failure import Failure
from twisted.python.logfile import LogFile

from etcd_twisted import ETCD_VERSION, __version__
from etcd_twisted.auth.errors import AuthError
from etcd_twisted.backend.errors import BackendError
from etcd_twisted.config import (
    Config,
    ConfigError,
    HelpRequested,
    VersionRequested,
    help_text,
    parse,
)
from etcd_twisted.discovery.srv import (
    SrvBootstrapError,
    initial_cluster_from_srv,
    name_server,
    query_srv,
)
from etcd_twisted.discovery.v2 import ClusterFullError, DiscoveryError, join_cluster, urllib_fetch
from etcd_twisted.embed import build_service
from etcd_twisted.listen import ListenError
from etcd_twisted.logs import observer_for
from etcd_twisted.proxy.command import GatewayOptions, GrpcProxyOptions, ProxyCommandOptions
from etcd_twisted.proxy.datadir import identify as identify_data_dir
from etcd_twisted.proxy.datadir import refusal as data_dir_refusal
from etcd_twisted.server.bootstrap import BootstrapError
from etcd_twisted.systemd import SystemdNotifier
from etcd_twisted.wal.errors import DataDirError, SnapError, WALError

#: ``twistd etcd <command> start ...``: the proxies etcd starts instead of a member.
PROXY_COMMANDS: dict[str, type[ProxyCommandOptions]] = {
    "gateway": GatewayOptions,
    "grpc-proxy": GrpcProxyOptions,
}


class Options(usage.Options):
    """The ``etcd`` subcommand's options: every etcd flag (see ``--help``), or a proxy
    command (``gateway``, ``grpc-proxy``) and its flags."""

    config: Config
    subCommands = [  # noqa: RUF012 - twistd's attribute
        (name, None, cls, cls.group_short) for name, cls in PROXY_COMMANDS.items()
    ]

    def parseOptions(self, options: list[str] | None = None) -> None:
        args = sys.argv[1:] if options is None else options
        if args and args[0] in PROXY_COMMANDS:
            self.subCommand = args[0]
            self.subOptions = PROXY_COMMANDS[args[0]]()
            self.subOptions.parseOptions(list(args[1:]))
            return
        try:
            self.config = parse(args, os.environ)
        except HelpRequested as e:
            sys.stdout.write(str(e) + _commands_help())
            raise SystemExit(0) from None
        except VersionRequested:
            sys.stdout.write(f"etcd-twisted Version: {__version__}\nAPI Version: {ETCD_VERSION}\n")
            raise SystemExit(0) from None
        except ConfigError as e:
            sys.stderr.write(f"etcd: {e}\n")
            raise SystemExit(1) from None
        self._install_log_observer()

    def _install_log_observer(self) -> None:
        """Make twistd log with ``--log-format``, ``--log-level`` and ``--log-outputs``,
        unless twistd was given its own ``--logger`` or ``--syslog``.

        twistd resolves ``--logger`` by name once every option is parsed and builds the
        observer before ``makeService``, so the name is :func:`log_observer`, which
        reads the flags kept here.
        """
        global _log_settings
        twistd = getattr(self, "parent", None)
        if twistd is None or twistd.get("logger") or twistd.get("syslog"):
            return
        _log_settings = (self.config, twistd)
        twistd["logger"] = f"{__name__}.log_observer"

    def getUsage(self, width: int | None = None) -> str:
        return help_text()


def _commands_help() -> str:
    """The proxy commands, after the member's flags in ``--help``."""
    lines = ["", "Commands (instead of a member):"]
    lines += [
        f"  twistd etcd {name} start [flags]    {cls.group_short}"
        for name, cls in PROXY_COMMANDS.items()
    ]
    return "\n".join(lines) + "\n"


#: The parsed flags and twistd's options, for :func:`log_observer`.
_log_settings: tuple[Config, Any] | None = None


def log_observer() -> Callable[[LogEvent], None]:
    """twistd's log observer factory for the ``etcd`` subcommand (see ``Options``)."""
    if _log_settings is None:
        raise RuntimeError("the etcd flags are not parsed yet")
    config, twistd = _log_settings
    return observer_for(
        config.log_format, config.log_level, _log_outputs(config.log_outputs, twistd)
    )


def _log_outputs(spec: str, twistd: Any) -> list[IO[str]]:
    """The streams ``--log-outputs`` names: ``stdout``, ``stderr``, file paths, and
    ``default``, twistd's own choice (``--logfile``; stdout with ``--nodaemon``)."""
    outputs: list[IO[str]] = []
    for name in filter(None, (part.strip() for part in spec.split(","))):
        if name == "stdout":
            outputs.append(sys.stdout)
        elif name == "stderr":
            outputs.append(sys.stderr)
        elif name == "default":
            logfile = twistd.get("logfile") or ""
            if logfile == "-" or (not logfile and twistd.get("nodaemon")):
                outputs.append(sys.stdout)
            else:
                outputs.append(_open_log(logfile or "twistd.log"))
        else:
            outputs.append(_open_log(name))
    return outputs or [sys.stdout]


def _open_log(path: str) -> IO[str]:
    return LogFile.fromFullPath(path)  # type: ignore[return-value]


def makeService(options: Options) -> IService:
    """Build the member's services; a data dir or listen URL that cannot be used exits 1."""
    # Imported here, not at the top: twistd installs the chosen reactor after loading plugins.
    from twisted.internet import reactor

    if options.subCommand is not None:
        return options.subOptions.make_service(reactor)
    handle_ignored_sigint()
    for warning in options.config.warnings:
        sys.stderr.write(f"etcd: warning: {warning}\n")
    refused = data_dir_refusal(options.config.data_dir)
    if refused is not None:
        sys.stderr.write(f"etcd: {refused}\n")
        raise SystemExit(1)
    config = options.config
    try:
        config = _discovered(config)
    except (SrvBootstrapError, DiscoveryError) as e:
        sys.stderr.write(f"etcd: {e}\n")
        raise SystemExit(1) from None
    try:
        service = build_service(config, reactor, on_fatal=_exit_on_fatal, on_removed=reactor.stop)
    except STARTUP_ERRORS as e:
        sys.stderr.write(f"etcd: {e}\n")
        raise SystemExit(1) from None
    notifier = SystemdNotifier.from_environ(os.environ, service.serving)
    if notifier is not None:  # as etcd's main (not its embed package) notifies systemd
        notifier.setServiceParent(service)
    return service


def handle_ignored_sigint() -> None:
    """Stop gracefully on SIGINT even when it was started ignoring it, as etcd does.

    A shell starts a background job (``etcd &`` in a script) with SIGINT ignored, and
    Twisted installs its SIGINT handler only over Python's default one; restoring that
    default before the reactor runs lets Twisted stop the member on SIGINT (and end by
    the signal, exit status 130, as etcd does).
    """
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def _discovered(config: Config) -> Config:
    """The initial cluster from ``--discovery-srv`` or ``--discovery``, for a member
    not initialized yet (etcd looks neither up for a member that has data)."""
    if identify_data_dir(config.data_dir) != "empty":
        return config
    if config.discovery_srv:
        server = name_server()
        cluster = initial_cluster_from_srv(
            config.name,
            config.discovery_srv,
            config.discovery_srv_name,
            config.initial_advertise_peer_urls,
            lambda name: query_srv(name, server),
        )
        return config.replace(initial_cluster=cluster)
    if config.discovery:
        try:
            cluster = join_cluster(
                config.discovery,
                config.name,
                config.initial_advertise_peer_urls,
                urllib_fetch(config.discovery_proxy),
            )
        except ClusterFullError as e:
            if config.discovery_fallback == "proxy":
                raise DiscoveryError(
                    f"{e}; --discovery-fallback=proxy would start a v2 proxy, which is not "
                    "provided (give --discovery-fallback=exit)"
                ) from None
            raise
        # etcd uses the discovery URL as the cluster token.
        return config.replace(initial_cluster=cluster, initial_cluster_token=config.discovery)
    return config


#: Errors that stop a member from starting; each is reported as one line.
STARTUP_ERRORS = (
    AuthError,  # --auth-token cannot be served (unknown type, bad JWT key)
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
