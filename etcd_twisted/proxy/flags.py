"""The proxy subcommands' flags, parsed as etcd's cobra/pflag commands parse them.

``etcd gateway start`` and ``etcd grpc-proxy start`` take POSIX-style flags
(``--flag=value``, ``--flag value``, a bare ``--bool``); a bad one prints
``Error: ...`` and the usage, and exits 1. Each flag is declared once, as a field
of its command's config dataclass made by :func:`etcd_twisted.config.flag` with a
:class:`GoValue` parser that knows its Go type name (for the help) and Go's error text.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from etcd_twisted.config import FALSE_WORDS, TRUE_WORDS, Flag, parse_duration

__all__ = [
    "CommandError",
    "CommandHelp",
    "GoValue",
    "command_flags",
    "go_bool",
    "go_duration",
    "go_int",
    "go_string",
    "go_strings",
    "go_uint",
    "parse_command",
    "usage",
]


class CommandError(Exception):
    """A bad flag; ``str()`` is pflag's message (printed after ``Error: ``)."""


class CommandHelp(Exception):  # noqa: N818 - a request, not an error
    """``-h``/``--help`` was given."""


@dataclasses.dataclass(frozen=True)
class GoValue:
    """A flag value parser: the Go type name the help shows, and the parse function
    (raising ValueError with Go's reason, e.g. ``time: invalid duration "x"``)."""

    type_name: str
    parse_fn: Callable[[str], Any]
    is_bool: bool = False
    is_slice: bool = False

    def __call__(self, raw: str) -> Any:
        return self.parse_fn(raw)


def _duration(raw: str) -> float:
    try:
        return parse_duration(raw)
    except ValueError:
        raise ValueError(f'time: invalid duration "{raw}"') from None


def _integer(name: str, minimum: int | None) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw, 0)
        except ValueError:
            raise ValueError(f'strconv.{name}: parsing "{raw}": invalid syntax') from None
        if minimum is not None and value < minimum:
            raise ValueError(f'strconv.{name}: parsing "{raw}": invalid syntax')
        return value

    return parse


def _bool(raw: str) -> bool:
    if raw in TRUE_WORDS:
        return True
    if raw in FALSE_WORDS:
        return False
    raise ValueError(f'strconv.ParseBool: parsing "{raw}": invalid syntax')


def _strings(raw: str) -> list[str]:
    return [part.strip() for part in raw.split(",")] if raw else []


go_string = GoValue("string", str)
go_strings = GoValue("strings", _strings, is_slice=True)
go_bool = GoValue("", _bool, is_bool=True)
go_duration = GoValue("duration", _duration)
go_int = GoValue("int", _integer("ParseInt", None))
go_uint = GoValue("uint", _integer("ParseUint", 0))

C = TypeVar("C")


def command_flags(cls: type) -> tuple[Flag, ...]:
    """The flags a command config dataclass declares, in declaration order."""
    return tuple(
        Flag(field.name.replace("_", "-"), *field.metadata["flag"])
        for field in dataclasses.fields(cls)
        if "flag" in field.metadata
    )


def parse_command(cls: type[C], argv: Sequence[str]) -> C:
    """Parse ``argv`` (the words after ``start``) into ``cls``.

    Raises :class:`CommandHelp` for ``-h``/``--help`` and :class:`CommandError`
    for an unknown flag, a missing argument or a bad value. Words that are not
    flags are ignored, as cobra does for these commands.
    """
    flags = {f.name: f for f in command_flags(cls)}
    raw: dict[str, list[str]] = {}
    args = list(argv)
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg == "--":
            break
        if not arg.startswith("-") or arg == "-":
            continue
        if not arg.startswith("--"):
            short = arg[1:2]
            if short == "h":
                raise CommandHelp()
            raise CommandError(f"unknown shorthand flag: '{short}' in {arg}")
        name, has_value, value = arg[2:].partition("=")
        if name == "help":
            raise CommandHelp()
        spec = flags.get(name)
        if spec is None:
            raise CommandError(f"unknown flag: --{name}")
        kind: GoValue = spec.parse  # type: ignore[assignment]
        if not has_value:
            if kind.is_bool:
                value = "true"
            elif i < len(args):
                value = args[i]
                i += 1
            else:
                raise CommandError(f"flag needs an argument: --{name}")
        raw.setdefault(name, []).append(value)
    values: dict[str, Any] = {}
    for spec in flags.values():
        kind = spec.parse  # type: ignore[assignment]
        given = raw.get(spec.name)
        if given is None:
            values[spec.attr] = _default(kind, spec.default)
            continue
        parsed: list[Any] = []
        for value in given:
            try:
                parsed.append(kind(value))
            except ValueError as e:
                raise CommandError(
                    f'invalid argument "{value}" for "--{spec.name}" flag: {e}'
                ) from None
        # A slice flag given twice appends; any other flag keeps its last value.
        values[spec.attr] = [v for part in parsed for v in part] if kind.is_slice else parsed[-1]
    return cls(**values)


def _default(kind: GoValue, default: str) -> Any:
    if kind.is_slice:
        return _strings(default.strip("[]").replace(" ", ","))
    if kind.is_bool:
        return default == "true"
    if kind.type_name == "duration":
        return _duration(default)
    if kind.type_name in ("int", "uint"):
        return int(default)
    return default


def usage(cls: type, use: str, short: str) -> str:
    """cobra's help for a command: its short text, usage line and flag table."""
    rows: list[tuple[str, str, str]] = []
    for spec in command_flags(cls):
        kind: GoValue = spec.parse  # type: ignore[assignment]
        left = f"      --{spec.name}" + (f" {kind.type_name}" if kind.type_name else "")
        help_text = spec.help
        if spec.default not in ("", "false", "0", "0s", "[]"):
            shown = f'"{spec.default}"' if kind.type_name == "string" else spec.default
            help_text += f" (default {shown})"
        rows.append((spec.name, left, help_text))
    rows.append(("help", "  -h, --help", f"help for {use.split()[-1]}"))
    rows.sort()
    width = max(len(left) for _, left, _ in rows) + 3
    lines = [short, "", "Usage:", f"  {use} [flags]", "", "Flags:"]
    lines += [left.ljust(width) + text for _, left, text in rows]
    return "\n".join(lines) + "\n"
