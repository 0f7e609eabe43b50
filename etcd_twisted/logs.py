"""Log output as etcd's flags ask: ``--log-format``, ``--log-level``, ``--log-outputs``.

Components log through :class:`twisted.logger.Logger` with event fields; this
module only decides what reaches the output and how it looks:

- ``console`` (the default) is Twisted's text format, one line per event;
- ``json`` is one JSON object per line, after etcd's zap encoder: ``level``,
  ``ts`` (ISO 8601 with milliseconds), ``caller`` (the logger's namespace),
  ``msg`` (the formatted message), then the event's own fields;
- ``--log-level`` drops events below it (etcd's ``panic`` and ``fatal`` are
  Twisted's ``critical``).

``twistd etcd`` installs :func:`observer_for` as twistd's log observer factory
(see :mod:`etcd_twisted.tap`); an embedding application may do the same.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import IO, Any

from twisted.logger import (
    FilteringLogObserver,
    ILogObserver,
    LogEvent,
    LogLevel,
    LogLevelFilterPredicate,
    formatEvent,
    textFileLogObserver,
)
from twisted.python.failure import Failure
from zope.interface import implementer

#: etcd's ``--log-level`` names as Twisted levels.
LEVELS: dict[str, LogLevel] = {
    "debug": LogLevel.debug,
    "info": LogLevel.info,
    "warn": LogLevel.warn,
    "error": LogLevel.error,
    "panic": LogLevel.critical,
    "fatal": LogLevel.critical,
}

#: zap's level names for Twisted's levels.
_ZAP_LEVELS: dict[LogLevel, str] = {
    LogLevel.debug: "debug",
    LogLevel.info: "info",
    LogLevel.warn: "warn",
    LogLevel.error: "error",
    LogLevel.critical: "fatal",
}

#: Keys of legacy (``twisted.python.log``) events that are not the caller's fields.
_LEGACY_KEYS = frozenset({"message", "isError", "system", "time", "format", "why", "failure"})


def zap_timestamp(seconds: float) -> str:
    """``seconds`` as zap's ISO 8601 encoder writes local time: ``2021-11-24T00:08:39.691Z``
    (``Z`` for UTC, else ``+hhmm``)."""
    moment = datetime.fromtimestamp(seconds).astimezone()
    offset = moment.strftime("%z")
    if offset in ("+0000", "-0000", ""):
        offset = "Z"
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond // 1000:03d}{offset}"


def _json_value(value: Any) -> Any:
    """``value`` if JSON can carry it, else its text (bytes decoded when they are UTF-8)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    if isinstance(value, (list, tuple)):
        return [_json_value(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _json_value(v) for k, v in value.items()}
    return str(value)


def event_as_json(event: LogEvent) -> str:
    """One event as a zap-style JSON object (no newline)."""
    level = event.get("log_level", LogLevel.info)
    record: dict[str, Any] = {
        "level": _ZAP_LEVELS.get(level, "info"),
        "ts": zap_timestamp(event.get("log_time", 0.0)),
        "caller": _caller(event),
        "msg": formatEvent(event),
    }
    for key, value in event.items():
        if key.startswith("log_") or key in _LEGACY_KEYS or key in record:
            continue
        record[key] = _json_value(value)
    failure = event.get("log_failure") or event.get("failure")
    if isinstance(failure, Failure):
        record.setdefault("error", failure.getErrorMessage())
        record.setdefault("stacktrace", failure.getTraceback())
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"))


def _caller(event: LogEvent) -> str:
    """Where the event comes from: the logger's namespace (a legacy event's system)."""
    namespace = event.get("log_namespace", "-")
    if namespace == "log_legacy":
        return str(event.get("log_system") or event.get("system") or namespace)
    return str(namespace)


@implementer(ILogObserver)
class JsonLineObserver:
    """Writes each event to ``out`` as one JSON line (see :func:`event_as_json`)."""

    def __init__(self, out: IO[str]) -> None:
        self._out = out

    def __call__(self, event: LogEvent) -> None:
        try:
            line = event_as_json(event)
        except Exception as e:  # noqa: BLE001 - a log line must never break the caller
            line = json.dumps({"level": "error", "msg": f"unloggable event: {e!r}"})
        self._out.write(line + "\n")
        self._out.flush()


def observer_for(
    log_format: str, log_level: str, outputs: list[IO[str]]
) -> Callable[[LogEvent], None]:
    """The observer writing ``log_format`` lines at ``log_level`` and above to ``outputs``."""
    if log_format == "json":
        writers: list[Callable[[LogEvent], None]] = [JsonLineObserver(out) for out in outputs]
    else:
        writers = [textFileLogObserver(out) for out in outputs]
    predicate = LogLevelFilterPredicate(defaultLogLevel=LEVELS[log_level])

    @implementer(ILogObserver)
    def fan_out(event: LogEvent) -> None:
        for writer in writers:
            writer(event)

    return FilteringLogObserver(fan_out, [predicate])
