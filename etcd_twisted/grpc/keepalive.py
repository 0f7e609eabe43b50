"""gRPC keepalive on the server side, as grpc-go (v1.38, etcd 3.5.1's) does it.

Enforcement (``--grpc-keepalive-min-time``): each PING from the client is checked
against the previous one. With calls in flight it must come at least ``min_time``
after it; with none it must come two hours after it (clients are not to ping an idle
connection). Each ping that comes too soon is a strike, and the third strike past
the limit of two (the fourth early ping in a row) gets a GOAWAY ``ENHANCE_YOUR_CALM``
with debug data ``too_many_pings`` and the connection is closed. A ping that follows
a response the server wrote (headers or data) resets the strikes and is not checked.

Pings from the server (``--grpc-keepalive-interval``, ``--grpc-keepalive-timeout``):
when nothing has been read for ``interval``, the server sends a PING; if still nothing
has been read ``timeout`` later (the ACK is a read), it closes the connection.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable

from twisted.internet.interfaces import IDelayedCall, IReactorTime

#: grpc-go's ``maxPingStrikes``: strikes allowed before the GOAWAY.
MAX_PING_STRIKES = 2
#: grpc-go's ``defaultPingTimeout``: the least gap between pings on an idle connection.
IDLE_PING_GAP = 2 * 3600.0
TOO_MANY_PINGS = b"too_many_pings"


@dataclasses.dataclass(frozen=True)
class KeepalivePolicy:
    """``min_time`` 0 disables enforcement; ``interval`` or ``timeout`` 0 disables pinging."""

    min_time: float = 5.0
    interval: float = 2 * 3600.0
    timeout: float = 20.0

    @property
    def enforces(self) -> bool:
        return self.min_time > 0

    @property
    def pings(self) -> bool:
        return self.interval > 0 and self.timeout > 0


class Keepalive:
    """One connection's keepalive state; the protocol reports reads, writes and pings.

    ``send_ping(data)`` sends a PING (and flushes); ``too_many_pings()`` sends the
    GOAWAY and closes; ``dead()`` closes a connection that stopped answering.
    """

    def __init__(
        self,
        policy: KeepalivePolicy,
        clock: IReactorTime,
        send_ping: Callable[[bytes], None],
        too_many_pings: Callable[[], None],
        dead: Callable[[], None],
    ) -> None:
        self.policy = policy
        self._clock = clock
        self._send_ping = send_ping
        self._too_many_pings = too_many_pings
        self._dead = dead
        self.strikes = 0
        self._reset_strikes = False
        self._last_ping: float | None = None
        self._last_read = clock.seconds()
        self._checked_read = self._last_read
        self._outstanding = False
        self._timeout_left = 0.0
        self._timer: IDelayedCall | None = None
        #: PINGs sent by this side (for tests and metrics).
        self.pings_sent = 0

    def start(self) -> None:
        if self.policy.pings:
            self._timer = self._clock.callLater(self.policy.interval, self._tick)

    def stop(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def read(self) -> None:
        """Bytes arrived from the client."""
        self._last_read = self._clock.seconds()

    def wrote_response(self) -> None:
        """The server wrote response headers or data: the next ping is not checked."""
        self._reset_strikes = True

    def ping_received(self, active_calls: int) -> None:
        """A PING (not an ACK) from the client; h2 has answered it."""
        now = self._clock.seconds()
        last, self._last_ping = self._last_ping, now
        if not self.policy.enforces:
            return
        if self._reset_strikes:
            self._reset_strikes = False
            self.strikes = 0
            return
        gap = self.policy.min_time if active_calls else IDLE_PING_GAP
        if last is not None and last + gap > now:
            self.strikes += 1
        if self.strikes > MAX_PING_STRIKES:
            self.stop()
            self._too_many_pings()

    def _tick(self) -> None:
        self._timer = None
        now = self._clock.seconds()
        policy = self.policy
        if self._last_read > self._checked_read:
            # Read activity since the last check: the next check is ``interval`` after it.
            self._checked_read = self._last_read
            self._outstanding = False
            delay = max(self._last_read + policy.interval - now, 0.0)
            self._timer = self._clock.callLater(delay, self._tick)
            return
        if self._outstanding and self._timeout_left <= 0:
            self._dead()
            return
        if not self._outstanding:
            self._outstanding = True
            self._timeout_left = policy.timeout
            self.pings_sent += 1
            self._send_ping(os.urandom(8))
        sleep = min(policy.interval, self._timeout_left)
        self._timeout_left -= sleep
        self._timer = self._clock.callLater(sleep, self._tick)
