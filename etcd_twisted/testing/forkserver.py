"""A fork server: members started by forking one warm process instead of a new interpreter.

Most of a child member's start is Python importing Twisted and the server (~0.5 s). The
fork server imports them once (:func:`serve`, in a process of its own), then for
each request forks a child that swaps in a fresh reactor and runs ``twistd`` with the
request's command line, in its own session, output appended to its log file. Requests
and replies are JSON lines on the server's stdin and stdout: ``{"id", "argv", "log",
"env"}`` in, ``{"id", "pid"}`` back, and ``{"pid", "exit"}`` when a child ends (the
server is their parent and reaps them). Environment that the server reads at import
(``ETCD_TWISTED_FAILPOINTS``) does not reach forked members: robustness runs spawn.
"""

from __future__ import annotations

import atexit
import json
import os
import select
import signal
import subprocess
import sys
import threading
import traceback
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from etcd_twisted.testing.children import Child

_server: ForkServer | None = None
_server_lock = threading.Lock()


class ForkServer:
    """The client side: a running fork server and the children it forked for us."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from etcd_twisted.testing.forkserver import serve; serve()"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            start_new_session=True,
        )
        self._lock = threading.Lock()
        self._next_id = 0
        self._replies: dict[int, Future[int]] = {}
        self._on_exit: dict[int, Callable[[int], None]] = {}
        self._early_exits: dict[int, int] = {}
        threading.Thread(target=self._read, name="etcd-forkserver", daemon=True).start()

    def spawn(
        self, argv: list[str], log_path: str, env: dict[str, str], on_exit: Callable[[int], None]
    ) -> int:
        """Fork a child running ``argv`` (a twistd command line); its pid."""
        reply: Future[int] = Future()
        with self._lock:
            self._next_id += 1
            request_id = self._next_id
            self._replies[request_id] = reply
            line = json.dumps({"id": request_id, "argv": argv, "log": log_path, "env": env})
            assert self.proc.stdin is not None
            self.proc.stdin.write(line.encode() + b"\n")
            self.proc.stdin.flush()
        pid = reply.result(timeout=30)
        with self._lock:
            early = self._early_exits.pop(pid, None)
            if early is None:
                self._on_exit[pid] = on_exit
        if early is not None:
            on_exit(early)
        return pid

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            message: dict[str, Any] = json.loads(line)
            if "id" in message:
                with self._lock:
                    reply = self._replies.pop(message["id"])
                reply.set_result(message["pid"])
                continue
            with self._lock:
                hook = self._on_exit.pop(message["pid"], None)
                if hook is None:
                    self._early_exits[message["pid"]] = message["exit"]
            if hook is not None:
                hook(message["exit"])

    def close(self) -> None:
        """Stop the server (its children are killed with it)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def fork_server() -> ForkServer:
    """The process's fork server, started on first use."""
    global _server
    with _server_lock:
        if _server is None or _server.proc.poll() is not None:
            _server = ForkServer()
            atexit.register(_server.close)
        return _server


class ForkedChild(Child):
    """A :class:`Child` forked by the fork server; ``argv`` must be a ``twistd`` command line."""

    def _launch(self) -> int:
        return fork_server().spawn(self.argv, self.log_path, self.env, self._exited)


# --- the server side


def _exit_code(status: int) -> int:
    return os.waitstatus_to_exitcode(status)


def _run_member(argv: list[str], log_path: str, env: dict[str, str]) -> None:
    """In the forked child: a session, the log as stdout/stderr, a new reactor, twistd."""
    os.setsid()
    log = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.environ.update(env)
    # The parent's reactor object was created at import; its epoll set would be shared.
    import twisted.internet
    from twisted.internet import epollreactor

    del sys.modules["twisted.internet.reactor"]
    del twisted.internet.reactor
    epollreactor.install()
    from twisted.scripts.twistd import run

    sys.argv = argv
    run()


def serve() -> None:
    """Read requests from stdin, fork a member per request, report exits on stdout."""
    import twisted.scripts.twistd  # noqa: F401

    import etcd_twisted.tap  # noqa: F401 - the point: import once, before any fork

    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)
    signal.set_wakeup_fd(wake_w)
    out = sys.stdout.buffer
    pending = b""
    children: set[int] = set()
    while True:
        readable, _, _ = select.select([0, wake_r], [], [])
        if wake_r in readable:
            os.read(wake_r, 4096)
            while children:
                pid, status = os.waitpid(-1, os.WNOHANG)
                if pid == 0:
                    break
                children.discard(pid)
                out.write(json.dumps({"pid": pid, "exit": _exit_code(status)}).encode() + b"\n")
            out.flush()
        if 0 in readable:
            chunk = os.read(0, 65536)
            if not chunk:  # the test process is gone: so are its members
                for pid in children:
                    os.kill(pid, signal.SIGKILL)
                return
            pending += chunk
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                request = json.loads(line)
                out.flush()
                pid = os.fork()
                if pid == 0:
                    signal.set_wakeup_fd(-1)
                    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                    os.close(wake_r)
                    os.close(wake_w)
                    code = 1
                    try:
                        _run_member(request["argv"], request["log"], request["env"])
                        code = 0
                    except SystemExit as e:
                        code = e.code if isinstance(e.code, int) else 1
                    except BaseException:  # noqa: BLE001 - reported in the member's log
                        traceback.print_exc()
                    finally:
                        sys.stdout.flush()
                        sys.stderr.flush()
                        os._exit(code)
                children.add(pid)
                out.write(json.dumps({"id": request["id"], "pid": pid}).encode() + b"\n")
                out.flush()
