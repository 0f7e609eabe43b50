"""Keep one link open: dial, and after a failure or a loss dial again after a backoff.

Modelled on ``twisted.application.internet.ClientService``, with one difference:
a connection counts as made only once its handshake succeeds. ClientService's
``prepareConnection`` hook cannot survive a connection that drops mid-handshake
(its state machine has no transition for it), and counting a TCP connect as success
would reset the backoff on every refused handshake.
"""

from __future__ import annotations

from collections.abc import Callable
from random import Random

from twisted.application.internet import backoffPolicy
from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.python.failure import Failure

from etcd_twisted.peer.stream import OutboundStream


def default_policy(rng: Random | None = None) -> Callable[[int], float]:
    """0.1 s, doubling per consecutive failure up to 5 s, plus up to 10 ms of jitter."""
    rng = rng or Random()
    return backoffPolicy(0.1, 5.0, 2.0, jitter=lambda: rng.random() * 0.01)


class Redialer:
    """Keeps an ``OutboundStream`` open by calling ``dial`` whenever there is none.

    ``dial`` returns a Deferred that fires with a link whose handshake is done.
    ``on_open`` gets each such link; ``on_failure`` each failed attempt. After a
    loss the next dial waits ``policy(0)``; after n failures in a row, ``policy(n - 1)``.
    """

    def __init__(
        self,
        clock: IReactorTime,
        dial: Callable[[], Deferred[OutboundStream]],
        on_open: Callable[[OutboundStream], None],
        on_failure: Callable[[Failure], None],
        policy: Callable[[int], float],
    ) -> None:
        self._clock = clock
        self._dial = dial
        self._on_open = on_open
        self._on_failure = on_failure
        self._policy = policy
        self._failures = 0
        self._running = False
        self._attempt: Deferred[OutboundStream] | None = None
        self._retry: IDelayedCall | None = None
        self.link: OutboundStream | None = None

    def start(self) -> None:
        """Dial now."""
        self._running = True
        self._connect()

    def stop(self) -> Deferred[None]:
        """Stop dialing and close the link; fires once it is closed."""
        self._running = False
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        self._retry = None
        if self._attempt is not None:
            self._attempt.cancel()
        if self.link is not None:
            closed = self.link.closed
            self.link.close()
            return closed
        return succeed(None)

    def redial(self) -> None:
        """Drop the link (if any) so the next attempt starts now, e.g. after a URL change."""
        if self.link is not None:
            self.link.abort()
        elif self._retry is not None and self._retry.active():
            self._retry.reset(0)

    def dial_soon(self) -> None:
        """Cut a backoff wait short (the peer is back: it dialed us); no-op when linked."""
        if self._running and self._retry is not None and self._retry.active():
            self._retry.reset(0)

    def _connect(self) -> None:
        self._retry = None
        attempt = self._attempt = self._dial()
        attempt.addCallbacks(self._opened, self._failed)

    def _opened(self, link: OutboundStream) -> None:
        self._attempt = None
        if not self._running:
            link.close()
            return
        self._failures = 0
        self.link = link
        link.closed.addCallback(self._lost)
        self._on_open(link)

    def _failed(self, failure: Failure) -> None:
        self._attempt = None
        if not self._running or failure.check(CancelledError):
            return
        self._failures += 1
        self._on_failure(failure)
        self._schedule()

    def _lost(self, _: None) -> None:
        self.link = None
        if self._running:
            self._schedule()

    def _schedule(self) -> None:
        if self._running:
            delay = self._policy(max(self._failures - 1, 0))
            self._retry = self._clock.callLater(delay, self._connect)
