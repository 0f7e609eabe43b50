"""Virtual environments for third-party etcd clients that cannot live beside the project.

python-etcd3 0.12.0 needs protobuf 3 (the project needs 7), and etcd3gw and aetcd bring
their own dependencies; each gets a venv under ``~/.cache/etcd-twisted/client-venvs``
(``ETCD_TWISTED_CLIENT_VENVS`` overrides), built with pip on first use and reused.
A lock file keeps parallel test processes from building the same venv twice.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import subprocess
import sys

from twisted.trial.unittest import SkipTest

CLIENTS: dict[str, tuple[str, ...]] = {
    "etcd3": ("etcd3==0.12.0", "protobuf<4"),
    "etcd3gw": ("etcd3gw",),
    "aetcd": ("aetcd",),
}
CHECKS_DIR = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "testing", "clients"
)


def cache_dir() -> str:
    default = os.path.join(os.path.expanduser("~"), ".cache", "etcd-twisted", "client-venvs")
    return os.environ.get("ETCD_TWISTED_CLIENT_VENVS", default)


def client_python(name: str) -> str:
    """The python of ``name``'s venv, built if missing; SkipTest if pip cannot install it
    (no package index reachable)."""
    requirements = CLIENTS[name]
    tag = hashlib.sha256(" ".join(requirements).encode()).hexdigest()[:10]
    venv = os.path.join(cache_dir(), f"{name}-{tag}")
    python = os.path.join(venv, "bin", "python")
    done = os.path.join(venv, ".installed")
    os.makedirs(cache_dir(), exist_ok=True)
    with open(os.path.join(cache_dir(), f"{name}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not os.path.exists(done):
            base = getattr(sys, "_base_executable", sys.executable)
            subprocess.run([base, "-m", "venv", "--clear", venv], check=True, timeout=300)
            pip = subprocess.run(
                [python, "-m", "pip", "install", "-q", "--disable-pip-version-check", *requirements],
                capture_output=True, text=True, timeout=900,
            )  # fmt: skip
            if pip.returncode != 0:
                raise SkipTest(
                    f"cannot install {name} ({' '.join(requirements)}): {pip.stderr[-500:]}"
                )
            with open(done, "w") as f:
                f.write(" ".join(requirements) + "\n")
    return python


def check_argv(name: str, endpoint: str) -> list[str]:
    """The command that runs ``clients/<name>_checks.py`` against ``endpoint`` (host:port)."""
    # -I: nothing from this project's environment (PYTHONPATH: trial's workers set it).
    return [client_python(name), "-I", os.path.join(CHECKS_DIR, f"{name}_checks.py"), endpoint]
