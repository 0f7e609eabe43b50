"""Tests for ``etcd_twisted.testing.forkserver``: members forked from the warm server."""

from __future__ import annotations

import os
import signal

from twisted.internet import reactor
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from etcd_twisted.testing import (
    FAST_FLAGS,
    Address,
    Gateway,
    GatewayError,
    free_ports,
    server_argv,
    wait_healthy,
)
from etcd_twisted.testing.forkserver import ForkedChild, fork_server


class ForkServerTests(TestCase):
    timeout = 120

    def member(self) -> tuple[Address, str]:
        base = os.path.abspath(self.mktemp())
        os.makedirs(base)
        client, peer = free_ports(2)
        return Address("default", client, peer, os.path.join(base, "m.etcd")), base

    async def test_forked_member_serves_with_its_own_environment(self) -> None:
        """A forked member is a real member (its own pid, not the fork server's), reads the
        environment of its request, and its exit (SIGKILL) is reported."""
        address, base = self.member()
        argv = server_argv("ours", [*address.flags(), *FAST_FLAGS])
        child = ForkedChild(argv, os.path.join(base, "log"), {"ETCD_MAX_TXN_OPS": "1"})
        child.start()
        self.addCleanup(child.stopped, reactor)
        self.assertNotEqual(child.pid, fork_server().proc.pid)
        gateway = Gateway(address.client_url)
        await wait_healthy(reactor, gateway, child, 60)
        ops = {"success": [{"request_put": {"key": "YQ==", "value": "YQ=="}}] * 2}
        error = await child_error(gateway, ops)
        self.assertIn("too many operations in txn request", error)
        self.assertEqual(await child.killed(reactor), -signal.SIGKILL)

    async def test_failed_start_is_reported_with_its_log(self) -> None:
        """A member that cannot start exits 1; its error line is in its log."""
        address, base = self.member()
        argv = server_argv("ours", [*address.flags(), "--snapshot-count", "lots"])
        child = ForkedChild(argv, os.path.join(base, "log"))
        child.start()
        self.assertEqual(await child.ended(reactor), 1)
        self.assertIn('invalid value "lots" for flag --snapshot-count', child.output())


async def child_error(gateway: Gateway, body: dict) -> str:
    """The error message the member answers ``kv/txn`` with ("" if it succeeds)."""
    try:
        await deferToThread(gateway.call, "kv/txn", body)
    except GatewayError as e:
        return e.message
    return ""
