"""Tests for etcd_twisted.logs: zap-style JSON lines, level filtering, twistd wiring."""

from __future__ import annotations

import io
import json
import os
import time

from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted import logs, tap


def _emit(observer: object, level: LogLevel = LogLevel.info, **fields: object) -> None:
    """Log one event through a Logger whose only observer is ``observer``."""
    log = Logger(namespace="etcd_twisted.test", observer=observer)  # type: ignore[arg-type]
    log.emit(level, "put {key} at {rev}", key=b"k", rev=5, **fields)


class JsonLineTests(SynchronousTestCase):
    def test_one_object_per_line_with_zap_keys(self) -> None:
        """Each event is one compact JSON line: level, ts, caller, msg, then the fields."""
        out = io.StringIO()
        _emit(logs.JsonLineObserver(out))
        _emit(logs.JsonLineObserver(out), LogLevel.warn)
        lines = out.getvalue().splitlines()
        self.assertEqual(len(lines), 2)
        first = json.loads(lines[0])
        self.assertEqual(list(first)[:4], ["level", "ts", "caller", "msg"])
        self.assertEqual(
            {k: first[k] for k in ("level", "caller", "msg", "key", "rev")},
            {
                "level": "info",
                "caller": "etcd_twisted.test",
                "msg": "put b'k' at 5",
                "key": "k",
                "rev": 5,
            },
        )
        self.assertFalse([k for k in first if k.startswith("log_")])
        self.assertEqual(json.loads(lines[1])["level"], "warn")
        self.assertNotIn(": ", lines[0])

    def test_failure_and_unserialisable_fields(self) -> None:
        """A failure adds error and stacktrace; objects JSON cannot carry become text."""
        out = io.StringIO()
        log = Logger(namespace="ns", observer=logs.JsonLineObserver(out))
        try:
            raise ValueError("disk on fire")
        except ValueError:
            log.failure("write failed for {thing}", Failure(), thing=object())
        record = json.loads(out.getvalue())
        self.assertEqual((record["level"], record["error"]), ("fatal", "disk on fire"))
        self.assertIn("ValueError", record["stacktrace"])
        self.assertTrue(record["thing"].startswith("<object object"))

    def test_zap_timestamp(self) -> None:
        """ts is local ISO 8601 with milliseconds and Z (UTC) or a +hhmm offset."""
        old = os.environ.get("TZ")
        self.addCleanup(self._restore_tz, old)
        os.environ["TZ"] = "UTC"
        time.tzset()
        self.assertEqual(logs.zap_timestamp(1637712519.6915), "2021-11-24T00:08:39.691Z")
        os.environ["TZ"] = "Etc/GMT-2"
        time.tzset()
        self.assertEqual(logs.zap_timestamp(1637712519.6915), "2021-11-24T02:08:39.691+0200")

    @staticmethod
    def _restore_tz(old: str | None) -> None:
        if old is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = old
        time.tzset()


class ObserverForTests(SynchronousTestCase):
    def test_level_filter(self) -> None:
        """--log-level drops events below it; panic and fatal keep only critical ones."""
        out = io.StringIO()
        observer = logs.observer_for("json", "warn", [out])
        for level in (LogLevel.debug, LogLevel.info, LogLevel.warn, LogLevel.error):
            _emit(observer, level)
        self.assertEqual(
            [json.loads(line)["level"] for line in out.getvalue().splitlines()], ["warn", "error"]
        )
        out = io.StringIO()
        observer = logs.observer_for("json", "fatal", [out])
        _emit(observer, LogLevel.error)
        _emit(observer, LogLevel.critical)
        self.assertEqual(len(out.getvalue().splitlines()), 1)

    def test_console_is_text(self) -> None:
        """console writes Twisted's text lines (not JSON), to every output."""
        outs = [io.StringIO(), io.StringIO()]
        _emit(logs.observer_for("console", "info", outs))
        for out in outs:
            line = out.getvalue()
            self.assertIn("[etcd_twisted.test#info] put b'k' at 5", line)
            self.assertFalse(line.startswith("{"))


class TwistdWiringTests(SynchronousTestCase):
    def _parse(self, *args: str, **twistd: object) -> dict[str, object]:
        options = tap.Options()
        parent: dict[str, object] = dict(twistd)
        options.parent = parent  # type: ignore[attr-defined]
        options.parseOptions(["--data-dir", self.mktemp(), *args])
        self.addCleanup(setattr, tap, "_log_settings", None)
        return parent

    def test_logger_named_for_twistd(self) -> None:
        """Parsing the flags names tap.log_observer as twistd's --logger; it follows the flags."""
        parent = self._parse("--log-format", "json", "--log-level", "error", nodaemon=True)
        self.assertEqual(parent["logger"], "etcd_twisted.tap.log_observer")
        observer = tap.log_observer()
        self.assertIsInstance(observer, logs.FilteringLogObserver)

    def test_twistd_logger_wins(self) -> None:
        """An explicit twistd --logger or --syslog is left alone."""
        mine = object()
        self.assertIs(self._parse(logger=mine)["logger"], mine)
        self.assertNotIn("logger", self._parse(syslog=True))

    def test_log_outputs(self) -> None:
        """stdout, stderr, files, and default (twistd's --logfile, else stdout with --nodaemon)."""
        path = self.mktemp()
        outputs = tap._log_outputs(f"stdout,stderr,{path}", {})
        self.assertEqual(outputs[:2], [tap.sys.stdout, tap.sys.stderr])
        outputs[2].close()
        self.assertTrue(os.path.exists(path))
        self.assertEqual(tap._log_outputs("default", {"nodaemon": True}), [tap.sys.stdout])
        other = self.mktemp()
        (log_file,) = tap._log_outputs("default", {"logfile": other})
        log_file.close()
        self.assertTrue(os.path.exists(other))

    def test_format_choices(self) -> None:
        """--log-format takes json and console (text is console); console is the default."""
        self.assertEqual(self._parse()["logger"], "etcd_twisted.tap.log_observer")
        self.assertEqual(tap._log_settings[0].log_format, "console")  # type: ignore[index]
        self._parse("--log-format", "text")
        self.patch(tap.sys, "stderr", io.StringIO())
        with self.assertRaises(SystemExit):
            self._parse("--log-format", "yaml")
