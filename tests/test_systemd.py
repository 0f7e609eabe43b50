"""Tests for etcd_twisted.systemd: datagrams read from a socket the test binds."""

from __future__ import annotations

import os
import socket

from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted.systemd import SystemdNotifier, notify, socket_address


class NotifyTests(SynchronousTestCase):
    def bind(self, address: str) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.addCleanup(sock.close)
        sock.bind(address)
        sock.settimeout(5)
        return sock

    def test_path(self) -> None:
        """A state is one datagram to the socket at the path."""
        path = os.path.join(self.mktemp() + "-d", "notify")
        os.makedirs(os.path.dirname(path))
        sock = self.bind(path)
        notify(path, "READY=1")
        self.assertEqual(sock.recv(64), b"READY=1")

    def test_abstract(self) -> None:
        """``@name`` is the abstract namespace."""
        name = f"@etcd-twisted-test-{os.getpid()}"
        self.assertEqual(socket_address(name), "\0" + name[1:])
        sock = self.bind(socket_address(name))
        notify(name, "STOPPING=1")
        self.assertEqual(sock.recv(64), b"STOPPING=1")

    def test_without_notify_socket(self) -> None:
        """No ``NOTIFY_SOCKET``, no notifier."""
        self.assertIsNone(SystemdNotifier.from_environ({}, Deferred))
        self.assertIsNone(SystemdNotifier.from_environ({"NOTIFY_SOCKET": ""}, Deferred))

    def test_ready_then_stopping(self) -> None:
        """READY=1 waits for ``ready()``; stopping sends STOPPING=1."""
        name = f"@etcd-twisted-test2-{os.getpid()}"
        sock = self.bind(socket_address(name))
        ready: Deferred[None] = Deferred()
        notifier = SystemdNotifier.from_environ({"NOTIFY_SOCKET": name}, lambda: ready)
        assert notifier is not None
        notifier.startService()
        self.assertEqual(notifier.sent, [])
        ready.callback(None)
        self.assertEqual(sock.recv(64), b"READY=1")
        notifier.stopService()
        self.assertEqual(sock.recv(64), b"STOPPING=1")
        self.assertEqual(notifier.sent, ["READY=1", "STOPPING=1"])

    def test_unreachable_socket_is_logged(self) -> None:
        """A socket nobody listens on does not stop the member."""
        notifier = SystemdNotifier(os.path.join(self.mktemp(), "absent"), lambda: Deferred())
        notifier.stopService()
        self.assertEqual(notifier.sent, [])
        self.assertEqual(len(self.flushLoggedErrors()), 0)
