"""The ``gateway`` and ``grpc-proxy`` subcommands of ``twistd etcd``, as twistd Options.

Each is a command group with one command, ``start``, as in etcd: the group alone
(or an unknown command) prints the group's help; ``start`` parses its flags with
:func:`~etcd_twisted.proxy.flags.parse_command` and ``make_service`` builds the proxy.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

from twisted.application.service import IService
from twisted.python import usage

from etcd_twisted.listen import ListenError
from etcd_twisted.proxy.discovery import resolver_from_env
from etcd_twisted.proxy.flags import CommandError, CommandHelp, parse_command
from etcd_twisted.proxy.flags import usage as flag_usage
from etcd_twisted.proxy.gateway import (
    DiscoveringGateway,
    GatewayConfig,
    GatewayError,
    build_gateway,
)
from etcd_twisted.proxy.grpc_proxy import GrpcProxyConfig, build_grpc_proxy, refusals

__all__ = ["GatewayOptions", "GrpcProxyOptions", "ProxyCommandOptions"]

PROGRAM = "twistd etcd"


class ProxyCommandOptions(usage.Options):
    """A proxy command group: ``<group> start [flags]``."""

    group = ""
    group_short = ""
    start_short = ""
    config_cls: type = object
    config: Any

    def parseOptions(self, options: list[str] | None = None) -> None:
        args = list(options or [])
        if not args or args[0] != "start":
            sys.stdout.write(self.group_help())
            raise SystemExit(0)
        try:
            self.config = parse_command(self.config_cls, args[1:])
        except CommandHelp:
            sys.stdout.write(f"{self.start_short}\n\n{self.start_usage()}")
            raise SystemExit(0) from None
        except CommandError as e:
            sys.stderr.write(f"Error: {e}\n{self.start_usage()}")
            raise SystemExit(1) from None

    def start_usage(self) -> str:
        text = flag_usage(self.config_cls, f"{PROGRAM} {self.group} start", self.start_short)
        return text.split("\n", 2)[2]

    def group_help(self) -> str:
        name = f"{PROGRAM} {self.group}"
        return (
            f"{self.group_short}\n\nUsage:\n  {name} [command]\n\n"
            f"Available Commands:\n  start       {self.start_short}\n\n"
            f"Flags:\n  -h, --help   help for {self.group}\n\n"
            f'Use "{name} [command] --help" for more information about a command.\n'
        )

    def getUsage(self, width: int | None = None) -> str:
        return self.group_help()

    def make_service(self, reactor: Any) -> IService:
        raise NotImplementedError


class GatewayOptions(ProxyCommandOptions):
    """``twistd etcd gateway start``: etcd's L4 gateway."""

    group = "gateway"
    group_short = "gateway related command"
    start_short = "start the gateway"

    config_cls = GatewayConfig

    def make_service(self, reactor: Any) -> IService:
        if self.config.discovery_srv:
            return DiscoveringGateway(
                self.config, reactor, resolver_from_env(reactor), _exit_at_once
            )
        try:
            return build_gateway(self.config, reactor)
        except GatewayError as e:
            return _exit_with(str(e))


class GrpcProxyOptions(ProxyCommandOptions):
    """``twistd etcd grpc-proxy start``: the gRPC proxy."""

    group = "grpc-proxy"
    group_short = "grpc-proxy related command"
    start_short = "start the grpc proxy"
    config_cls = GrpcProxyConfig

    def make_service(self, reactor: Any) -> IService:
        refused = refusals(self.config)
        if refused:
            _exit_with(f"etcd grpc-proxy: {refused[0]}", sys.stderr.write)
        try:
            resolver = resolver_from_env(reactor) if self.config.discovery_srv else None
            return build_grpc_proxy(self.config, reactor, resolver, _exit_at_once)
        except (GatewayError, ListenError) as e:
            return _exit_with(str(e), sys.stderr.write)


def _exit_with(message: str, write: Callable[[str], Any] = sys.stdout.write) -> Any:
    """Print etcd's message (on stdout, where etcd's ``fmt.Println`` puts it) and exit 1."""
    write(message + "\n")
    raise SystemExit(1)


def _exit_at_once(message: str) -> None:
    """A proxy that cannot start once the reactor runs: etcd's line, then exit 1."""
    sys.stdout.write(message + "\n")
    sys.stdout.flush()
    os._exit(1)
