"""``etcd-twisted-snapshot``: ``etcdutl snapshot status|restore`` for this server's data dirs.

Same flags, defaults, outputs and exit codes as etcdutl 3.5.1::

    etcd-twisted-snapshot status FILE [-w simple|table|json|fields]
    etcd-twisted-snapshot restore FILE [--data-dir DIR] [--wal-dir DIR] [--name NAME]
        [--initial-cluster NAME=URL,...] [--initial-cluster-token TOKEN]
        [--initial-advertise-peer-urls URL,...] [--skip-hash-check]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from etcd_twisted.config import parse_initial_cluster
from etcd_twisted.snapshot.restore import RestoreConfig, restore
from etcd_twisted.snapshot.status import db_status, format_status

__all__ = ["main"]

#: cobrautl's exit codes.
EXIT_ERROR = 1
EXIT_BAD_FEATURE = 4
EXIT_BAD_ARGS = 128
_FORMATS = ("simple", "table", "json", "fields")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        sys.stderr.write(f"Error: {message}\n")
        raise SystemExit(EXIT_BAD_ARGS)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="etcd-twisted-snapshot", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    status = sub.add_parser("status", help="Gets backend snapshot status of a given file")
    status.add_argument("file", nargs="*")
    status.add_argument("-w", "--write-out", default="simple", help="|".join(_FORMATS))
    rst = sub.add_parser("restore", help="Restores a data directory from a snapshot file")
    rst.add_argument("file", nargs="*")
    rst.add_argument("--data-dir", default="", help="Path to the output data directory")
    rst.add_argument("--wal-dir", default="", help="Path to the WAL directory")
    rst.add_argument("--name", default="default", help="Human-readable name for this member")
    rst.add_argument("--initial-cluster", default=None, help="Initial cluster configuration")
    rst.add_argument("--initial-cluster-token", default="etcd-cluster")
    rst.add_argument("--initial-advertise-peer-urls", default="http://localhost:2380")
    rst.add_argument("--skip-hash-check", action="store_true")
    return parser


def _fail(message: str, code: int = EXIT_ERROR) -> int:
    sys.stderr.write(f"Error: {message}\n")
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; the exit status."""
    args = _parser().parse_args(argv)
    if len(args.file) != 1:
        return _fail(f"snapshot {args.command} requires exactly one argument", EXIT_BAD_ARGS)
    path = args.file[0]
    try:
        if args.command == "status":
            if args.write_out not in _FORMATS:
                return _fail("unsupported output format", EXIT_BAD_FEATURE)
            print(format_status(db_status(path), args.write_out))
            return 0
        # etcdutl's default names "default" whatever --name says.
        cluster = parse_initial_cluster(args.initial_cluster or "default=http://localhost:2380")
        data_dir = restore(
            RestoreConfig(
                snapshot_path=path,
                name=args.name,
                data_dir=args.data_dir,
                wal_dir=args.wal_dir,
                initial_cluster=cluster,
                initial_cluster_token=args.initial_cluster_token,
                peer_urls=tuple(u for u in args.initial_advertise_peer_urls.split(",") if u),
                skip_hash_check=args.skip_hash_check,
            )
        )
    except (OSError, ValueError) as e:  # RestoreError, HashMismatchError, BboltFormatError
        return _fail(str(e))
    sys.stderr.write(f"restored snapshot {path} into data-dir {data_dir}\n")
    return 0


def run() -> None:
    """The console script's entry point."""
    raise SystemExit(main())
