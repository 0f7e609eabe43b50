"""Packaging: the ``twistd etcd`` plugin is found from a wheel install and from the default
(not ``compat``) editable install that ``bin/serve`` and ``bin/test`` make."""

from __future__ import annotations

import glob
import os
import sys
import sysconfig

from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import TestCase

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROBE = (
    "import etcd_twisted, twisted.plugin as p; "
    "from twisted.application.service import IServiceMaker; "
    "makers = {m.tapname: m for m in p.getPlugins(IServiceMaker)}; "
    "print(etcd_twisted.__file__); print(makers['etcd'].module)"
)


async def run(argv: list[str], cwd: str) -> str:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)  # trial's workers put the project on it
    out, err, code = await getProcessOutputAndValue(argv[0], argv[1:], env=env, path=cwd)
    text = (out + err).decode(errors="replace")
    if code != 0:
        raise AssertionError(f"{argv} exited {code}:\n{text[-3000:]}")
    return out.decode()


class PackagingTests(TestCase):
    timeout = 600

    async def test_wheel_carries_the_plugin(self) -> None:
        """A wheel installed into a new venv makes ``twistd`` find the ``etcd`` plugin there.

        The new venv gets the project's dependencies from this venv through a ``.pth`` line
        (no download); the project itself comes only from the wheel."""
        tmp = os.path.abspath(self.mktemp())
        wheels, venv = os.path.join(tmp, "wheels"), os.path.join(tmp, "venv")
        os.makedirs(tmp)
        pip_wheel = [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
        ]
        await run([*pip_wheel, "-w", wheels, ROOT], tmp)
        (wheel,) = glob.glob(os.path.join(wheels, "etcd_twisted-*.whl"))
        base = getattr(sys, "_base_executable", sys.executable)
        await run([base, "-m", "venv", venv], tmp)
        python = os.path.join(venv, "bin", "python")
        site = (
            await run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], tmp)
        ).strip()
        with open(os.path.join(site, "project-deps.pth"), "w") as f:
            f.write(sysconfig.get_path("purelib") + "\n")
        await run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", wheel], tmp)
        package, plugin = (await run([python, "-c", PROBE], tmp)).split()
        self.assertTrue(package.startswith(site), package)
        self.assertEqual(plugin, "etcd_twisted.tap")
        self.assertTrue(
            os.path.exists(os.path.join(site, "twisted", "plugins", "etcd_twisted_plugin.py"))
        )
        self.assertFalse(os.path.exists(os.path.join(site, "twisted", "plugins", "__init__.py")))

    async def test_default_editable_install_is_a_plain_path(self) -> None:
        """This venv's editable install (setuptools' default mode) is a ``.pth`` naming the
        project directory, so twistd's plugin scan of ``sys.path`` finds ``twisted/plugins``."""
        (pth,) = glob.glob(
            os.path.join(sysconfig.get_path("purelib"), "__editable__.etcd_twisted-*.pth")
        )
        with open(pth) as f:
            self.assertEqual(os.path.realpath(f.read().strip()), os.path.realpath(ROOT))
        package, plugin = (await run([sys.executable, "-c", PROBE], "/")).split()
        self.assertEqual(os.path.dirname(os.path.dirname(package)), ROOT)
        self.assertEqual(plugin, "etcd_twisted.tap")
        for script in ("serve", "test"):
            with open(os.path.join(ROOT, "bin", script)) as f:
                self.assertNotIn("compat", f.read())
