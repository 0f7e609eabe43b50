"""Child processes that cannot outlive the test run.

A :class:`Child` is a process whose output is appended to a log file, in
its own session (the terminal's Ctrl-C reaches only the parent, which stops it). A
thread per child waits for the exit, so both blocking code (``wait``) and Twisted
code (``ended(reactor)``, a Deferred) learn of it without SIGCHLD handlers, which a
reactor running in a thread does not install. Every running child is killed at
interpreter exit.
"""

from __future__ import annotations

import atexit
import os
import signal
import subprocess
import threading
from collections.abc import Callable, Sequence
from typing import Any

from twisted.internet.defer import Deferred, succeed

#: Children started and not yet seen to exit (for the exit-time kill).
_LIVE: set[Child] = set()
_LOCK = threading.Lock()


def kill_all() -> None:
    """SIGCONT (a paused child cannot die otherwise) and SIGKILL every running child."""
    with _LOCK:
        live = list(_LIVE)
    for child in live:
        for signum in (signal.SIGCONT, signal.SIGKILL):
            child.signal(signum)


atexit.register(kill_all)


def stop_all(grace: float = 5.0) -> None:
    """Stop every running child gracefully (blocking), newest first."""
    with _LOCK:
        live = sorted(_LIVE, key=lambda child: -child.pid)
    for child in live:
        child.stop(grace)


class Child:
    """One run of a program: ``start``, then ``signal``/``stop``/``kill``; start again to rerun."""

    def __init__(
        self, argv: Sequence[str], log_path: str, env: dict[str, str] | None = None
    ) -> None:
        self.argv = list(argv)
        self.log_path = log_path
        self.env = dict(env or {})
        self.exit: int | None = None
        self.starts = 0
        self._pid: int | None = None
        self._done = threading.Event()
        self._exit_hooks: list[Callable[[int], None]] = []

    def start(self) -> None:
        """Spawn the program (again, after an exit); its log file is appended to."""
        if self.running:
            raise RuntimeError(f"{self.argv[0]} is already running")
        self.starts += 1
        self.exit = None
        self._done = threading.Event()
        if self.starts > 1:
            with open(self.log_path, "ab") as log:
                log.write(f"\n=== start {self.starts}\n".encode())
        pid = self._launch()
        with _LOCK:
            self._pid = pid
            if self.exit is None:  # else it has already exited and been reaped
                _LIVE.add(self)

    def _launch(self) -> int:
        """Start the process (output appended to the log, own session); its pid. Whoever
        reaps it calls ``_exited``."""
        with open(self.log_path, "ab") as log:
            proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **self.env},
                start_new_session=True,
            )
        threading.Thread(target=lambda: self._exited(proc.wait()), daemon=True).start()
        return proc.pid

    def _exited(self, code: int) -> None:
        with _LOCK:
            _LIVE.discard(self)
            self.exit = code
            hooks, self._exit_hooks = self._exit_hooks, []
            self._done.set()
        for hook in hooks:
            hook(code)

    @property
    def pid(self) -> int:
        assert self._pid is not None, "not started"
        return self._pid

    @property
    def running(self) -> bool:
        return self._pid is not None and self.exit is None

    def signal(self, signum: int) -> None:
        """Send ``signum`` if the program still runs."""
        if self.running:
            try:
                os.kill(self.pid, signum)
            except OSError:
                pass

    # --- blocking

    def wait(self, timeout: float | None = None) -> int | None:
        """Wait for the exit (blocking); the exit code, or None after ``timeout``."""
        if self._pid is None:
            return None
        self._done.wait(timeout)
        return self.exit

    def stop(self, grace: float = 10.0) -> int | None:
        """SIGCONT, SIGTERM, then SIGKILL after ``grace`` seconds (blocking); the exit code."""
        self.signal(signal.SIGCONT)
        self.signal(signal.SIGTERM)
        code = self.wait(grace)
        if code is None:
            self.signal(signal.SIGKILL)
            code = self.wait()
        return code

    # --- Twisted

    def ended(self, reactor: Any) -> Deferred[int | None]:
        """A Deferred that fires (in the reactor thread) with the exit code."""
        with _LOCK:
            if not self.running:
                return succeed(self.exit)
            d: Deferred[int | None] = Deferred()
            self._exit_hooks.append(lambda code: reactor.callFromThread(d.callback, code))
        return d

    async def stopped(self, reactor: Any, grace: float = 10.0) -> int | None:
        """SIGCONT, SIGTERM, then SIGKILL after ``grace`` seconds; the exit code."""
        if not self.running:
            return self.exit
        ended = self.ended(reactor)
        self.signal(signal.SIGCONT)
        self.signal(signal.SIGTERM)
        timer = reactor.callLater(grace, self.signal, signal.SIGKILL)
        code = await ended
        if timer.active():
            timer.cancel()
        return code

    async def killed(self, reactor: Any) -> int | None:
        """SIGKILL and wait for the exit."""
        ended = self.ended(reactor)
        self.signal(signal.SIGCONT)
        self.signal(signal.SIGKILL)
        return await ended

    # --- output

    def output(self) -> str:
        """Everything written to the log file so far."""
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def log_tail(self, chars: int = 3000) -> str:
        """The end of the log file."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(max(0, os.path.getsize(self.log_path) - chars))
                return f.read().decode(errors="replace")
        except OSError:
            return ""
