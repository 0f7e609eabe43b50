"""systemd's readiness protocol (``sd_notify``) for a member run as a ``Type=notify`` unit.

When ``NOTIFY_SOCKET`` names a unix datagram socket (a path, or ``@name`` in the
abstract namespace), the member sends ``READY=1`` once it serves: its client ports
listen and its own attributes are published through raft (etcd's ``ReadyNotify``).
It sends ``STOPPING=1`` when it begins to shut down. Without ``NOTIFY_SOCKET`` nothing
is sent, as with etcd. ``twistd etcd`` adds the notifier (``tap.py``); an embedding
application does not get one, as etcd's ``embed`` package does not notify.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Mapping
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.logger import Logger

log = Logger()


def socket_address(notify_socket: str) -> str:
    """The ``AF_UNIX`` address of ``$NOTIFY_SOCKET`` (``@name``: the abstract ``\\0name``)."""
    return "\0" + notify_socket[1:] if notify_socket.startswith("@") else notify_socket


def notify(notify_socket: str, state: str) -> None:
    """Send one state datagram (``READY=1``, ``STOPPING=1``, ...) to ``notify_socket``."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        sock.connect(socket_address(notify_socket))
        sock.sendall(state.encode())


class SystemdNotifier(Service):
    """The ``systemd`` child: ``READY=1`` once ``ready()`` fires, ``STOPPING=1`` on stop."""

    name = "systemd"

    def __init__(self, notify_socket: str, ready: Callable[[], Deferred[Any]]) -> None:
        self._socket = notify_socket
        self._ready = ready
        self.sent: list[str] = []

    @classmethod
    def from_environ(
        cls, environ: Mapping[str, str], ready: Callable[[], Deferred[Any]]
    ) -> SystemdNotifier | None:
        """A notifier if ``NOTIFY_SOCKET`` is set, else ``None``."""
        path = environ.get("NOTIFY_SOCKET", "")
        return cls(path, ready) if path else None

    def _send(self, state: str) -> None:
        try:
            notify(self._socket, state)
        except OSError as e:
            log.warn("failed to notify systemd ({state}): {error}", state=state, error=e)
            return
        self.sent.append(state)
        log.info("notified systemd: {state}", state=state)

    def startService(self) -> None:
        super().startService()

        def served(_: object) -> None:
            if self.running:
                self._send("READY=1")

        self._ready().addCallback(served)

    def stopService(self) -> None:
        super().stopService()
        self._send("STOPPING=1")
