"""The member's configuration: flags, ``ETCD_*`` environment variables and a YAML file.

Precedence follows etcd 3.5: a ``--config-file`` replaces flags and environment
entirely; otherwise a flag given on the command line wins over its ``ETCD_<NAME>``
variable, which wins over the default. Parsing has no side effects: it returns a
:class:`Config` or raises :class:`ConfigError` with a one-line message naming the flag.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import yaml

from etcd_twisted.tls.ciphers import parse_cipher_suites
from etcd_twisted.tls.info import parse_tls_version

DEFAULT_QUOTA_BYTES = 2 * 1024 * 1024 * 1024
#: gRPC accepts this much more than ``--max-request-bytes`` (etcd's ``grpcOverheadBytes``).
GRPC_OVERHEAD_BYTES = 512 * 1024


class ConfigError(Exception):
    """A bad flag, environment variable or config file; the message is one line."""


class HelpRequested(Exception):  # noqa: N818 - a request, not an error
    """``-h``/``--help`` was given; ``str()`` is the help text."""


class VersionRequested(Exception):  # noqa: N818 - a request, not an error
    """``--version`` was given."""


# --- value parsers: each takes the raw string and returns the typed value or raises ValueError.


def _parse_str(raw: str) -> str:
    return raw


def _parse_uint(raw: str) -> int:
    value = int(raw.strip(), 0)
    if value < 0:
        raise ValueError("negative")
    return value


def _parse_int(raw: str) -> int:
    return int(raw.strip(), 0)


#: The spellings Go's ``strconv.ParseBool`` takes for true and false.
TRUE_WORDS = frozenset({"1", "t", "T", "true", "TRUE", "True"})
FALSE_WORDS = frozenset({"0", "f", "F", "false", "FALSE", "False"})


def _parse_bool(raw: str) -> bool:
    if raw in TRUE_WORDS:
        return True
    if raw in FALSE_WORDS:
        return False
    raise ValueError("not a boolean")


_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}


def parse_duration(raw: str) -> float:
    """Parse a Go duration ("1h30m", "100ms", "0") into seconds."""
    text = raw.strip()
    if text in ("0", ""):
        if text == "":
            raise ValueError("empty duration")
        return 0.0
    sign = -1.0 if text.startswith("-") else 1.0
    text = text.lstrip("+-")
    pos, total = 0, 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if pos != len(text) or pos == 0:
        raise ValueError("not a duration")
    return sign * total


_URL_SCHEMES = {"http", "https", "unix", "unixs"}


def _parse_urls(raw: str) -> list[str]:
    urls = [part.strip() for part in raw.split(",") if part.strip()]
    for url in urls:
        _check_url(url)
    return urls


def _check_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in _URL_SCHEMES:
        raise ValueError(f"URL scheme must be http, https, unix, or unixs: {url}")
    if not parts.netloc:
        raise ValueError(f'URL address does not have the form "host:port": {url}')
    if parts.path not in ("", "/"):
        raise ValueError(f"URL must not contain a path: {url}")
    if parts.scheme in ("http", "https"):
        try:
            port = parts.port
        except ValueError as e:
            raise ValueError(f"invalid port in URL: {url}") from e
        if port is None:
            raise ValueError(f'URL address does not have the form "host:port": {url}')


def parse_initial_cluster(raw: str) -> dict[str, list[str]]:
    """Parse ``name1=url1,name1=url2,name2=url3`` into ``{name: [urls]}``, in order."""
    members: dict[str, list[str]] = {}
    for part in raw.split(","):
        part = part.strip()
        if not part:
            continue
        name, sep, url = part.partition("=")
        if not sep or not name:
            raise ValueError(f"{part!r} is not of the form name=url")
        _check_url(url)
        members.setdefault(name, []).append(url)
    return members


def _parse_cors(raw: str) -> frozenset[str]:
    """``*`` or comma-separated origins, each a URL as etcd's ``--cors`` takes them."""
    if raw.strip() == "*":
        return frozenset({"*"})
    return frozenset(_parse_urls(raw))


def _parse_host_whitelist(raw: str) -> frozenset[str]:
    return frozenset(part.strip() for part in raw.split(",") if part.strip())


def _choice(*allowed: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if raw not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}")
        return raw

    return parse


@dataclasses.dataclass(frozen=True)
class Flag:
    """One command-line flag: its etcd name, parser, default (as etcd prints it) and help."""

    name: str
    parse: Callable[[str], Any]
    default: str
    help: str

    @property
    def attr(self) -> str:
        """The :class:`Config` attribute this flag sets."""
        return self.name.replace("-", "_")

    @property
    def env(self) -> str:
        """The environment variable that can set this flag."""
        return "ETCD_" + self.name.upper().replace("-", "_")

    @property
    def is_bool(self) -> bool:
        return self.parse is _parse_bool


def flag(parse: Callable[[str], Any], default: str, help: str) -> Any:
    """Declare a :class:`Config` field as a command-line flag (name: the field's, dashed)."""
    return dataclasses.field(metadata={"flag": (parse, default, help)})


#: YAML sections that group TLS flags in etcd's config file format.
_YAML_TLS_SECTIONS = {
    "client-transport-security": "",
    "peer-transport-security": "peer-",
}
_YAML_TLS_KEYS = {
    "cert-file",
    "key-file",
    "client-cert-file",
    "client-key-file",
    "client-cert-auth",
    "trusted-ca-file",
    "auto-tls",
}


@dataclasses.dataclass(frozen=True)
class Config:
    """A validated member configuration.

    Each flag is declared once, here, as a field made by :func:`flag` (its parser, default as
    etcd prints it, and help); the field's name is the flag's in snake_case, and
    :data:`FLAGS` is derived from these fields.
    """

    name: str = flag(_parse_str, "default", "Human-readable name for this member.")
    data_dir: str = flag(_parse_str, "${name}.etcd", "Path to the data directory.")
    wal_dir: str = flag(_parse_str, "", "Path to the dedicated wal directory.")
    snapshot_count: int = flag(
        _parse_uint,
        "100000",
        "Number of committed transactions to trigger a snapshot to disk.",
    )
    heartbeat_interval: int = flag(
        _parse_uint,
        "100",
        "Time (in milliseconds) of a heartbeat interval.",
    )
    election_timeout: int = flag(
        _parse_uint,
        "1000",
        "Time (in milliseconds) for an election to timeout.",
    )
    listen_peer_urls: list[str] = flag(
        _parse_urls,
        "http://localhost:2380",
        "List of URLs to listen on for peer traffic.",
    )
    listen_client_urls: list[str] = flag(
        _parse_urls,
        "http://localhost:2379",
        "List of URLs to listen on for client traffic.",
    )
    listen_metrics_urls: list[str] = flag(
        _parse_urls,
        "",
        "List of URLs to listen on for the metrics and health endpoints.",
    )
    max_snapshots: int = flag(
        _parse_uint,
        "5",
        "Maximum number of snapshot files to retain (0 is unlimited).",
    )
    max_wals: int = flag(
        _parse_uint,
        "5",
        "Maximum number of wal files to retain (0 is unlimited).",
    )
    quota_backend_bytes: int = flag(
        _parse_int,
        "0",
        "Raise alarms when backend size exceeds the given quota (0 defaults to 2 GiB).",
    )
    backend_batch_interval: float = flag(
        parse_duration,
        "100ms",
        "The maximum time before committing the backend transaction.",
    )
    backend_batch_limit: int = flag(
        _parse_uint,
        "10000",
        "The maximum operations before committing the backend transaction.",
    )
    max_txn_ops: int = flag(
        _parse_uint,
        "128",
        "Maximum number of operations permitted in a transaction.",
    )
    max_request_bytes: int = flag(
        _parse_uint,
        "1572864",
        "Maximum client request size in bytes the server will accept.",
    )
    #: etcd's default is 4294967295 (unlimited); each open stream holds a few KiB here.
    max_concurrent_streams: int = flag(
        _parse_uint, "10000", "Maximum concurrent streams that each client can open at a time."
    )
    grpc_keepalive_min_time: float = flag(
        parse_duration,
        "5s",
        "Minimum duration interval that a client should wait before pinging server.",
    )
    grpc_keepalive_interval: float = flag(
        parse_duration,
        "2h",
        "Frequency duration of server-to-client ping to check if a connection is alive.",
    )
    grpc_keepalive_timeout: float = flag(
        parse_duration,
        "20s",
        "Additional duration of wait before closing a non-responsive connection.",
    )
    initial_advertise_peer_urls: list[str] = flag(
        _parse_urls,
        "http://localhost:2380",
        "List of this member's peer URLs to advertise to the rest of the cluster.",
    )
    initial_cluster: dict[str, list[str]] = flag(
        parse_initial_cluster,
        "default=http://localhost:2380",
        "Initial cluster configuration for bootstrapping.",
    )
    initial_cluster_state: str = flag(
        _choice("new", "existing"),
        "new",
        "Initial cluster state ('new' or 'existing').",
    )
    initial_cluster_token: str = flag(
        _parse_str,
        "etcd-cluster",
        "Initial cluster token for the etcd cluster during bootstrap.",
    )
    advertise_client_urls: list[str] = flag(
        _parse_urls,
        "http://localhost:2379",
        "List of this member's client URLs to advertise to the public.",
    )
    strict_reconfig_check: bool = flag(
        _parse_bool,
        "true",
        "Reject reconfiguration requests that would cause quorum loss.",
    )
    pre_vote: bool = flag(_parse_bool, "true", "Enable to run an additional Raft election phase.")
    auto_compaction_retention: str = flag(
        _parse_str,
        "0",
        "Auto compaction retention length. 0 means disable auto compaction.",
    )
    auto_compaction_mode: str = flag(
        _choice("periodic", "revision"),
        "periodic",
        "Interpret 'auto-compaction-retention' as periodic (a duration) or revision.",
    )
    enable_grpc_gateway: bool = flag(_parse_bool, "true", "Enable GRPC gateway.")
    enable_dashboard: bool = flag(
        _parse_bool, "true", "Serve the built-in web dashboard at /ui/ on the client port."
    )
    cert_file: str = flag(_parse_str, "", "Path to the client server TLS cert file.")
    key_file: str = flag(_parse_str, "", "Path to the client server TLS key file.")
    client_cert_auth: bool = flag(_parse_bool, "false", "Enable client cert authentication.")
    trusted_ca_file: str = flag(
        _parse_str,
        "",
        "Path to the client server TLS trusted CA cert file.",
    )
    auto_tls: bool = flag(_parse_bool, "false", "Client TLS using generated certificates.")
    peer_cert_file: str = flag(_parse_str, "", "Path to the peer server TLS cert file.")
    peer_key_file: str = flag(_parse_str, "", "Path to the peer server TLS key file.")
    peer_client_cert_auth: bool = flag(
        _parse_bool,
        "false",
        "Enable peer client cert authentication.",
    )
    peer_trusted_ca_file: str = flag(_parse_str, "", "Path to the peer server TLS trusted CA file.")
    peer_auto_tls: bool = flag(_parse_bool, "false", "Peer TLS using self-generated certificates.")
    # --- transport security beyond the certificate files (issue 15), with etcd's defaults.
    client_crl_file: str = flag(
        _parse_str, "", "Path to the client certificate revocation list file."
    )
    client_cert_allowed_hostname: str = flag(
        _parse_str, "", "Allowed TLS hostname for client cert authentication."
    )
    peer_client_cert_file: str = flag(
        _parse_str,
        "",
        "Path to an explicit peer client TLS cert file otherwise peer cert file will be used "
        "when client auth is required.",
    )
    peer_client_key_file: str = flag(
        _parse_str,
        "",
        "Path to an explicit peer client TLS key file otherwise peer key file will be used "
        "when client auth is required.",
    )
    peer_cert_allowed_cn: str = flag(
        _parse_str, "", "Required CN for client certs connecting to the peer endpoint."
    )
    peer_cert_allowed_hostname: str = flag(
        _parse_str, "", "Allowed TLS hostname for inter peer authentication."
    )
    self_signed_cert_validity: int = flag(
        _parse_uint,
        "1",
        "The validity period of the client and peer certificates that are automatically "
        "generated by etcd when you specify ClientAutoTLS and PeerAutoTLS, the unit is year, "
        "and the default is 1.",
    )
    peer_crl_file: str = flag(_parse_str, "", "Path to the peer certificate revocation list file.")
    cipher_suites: tuple[str, ...] = flag(
        parse_cipher_suites,
        "",
        "Comma-separated list of supported TLS cipher suites between client/server and peers "
        "(empty will be auto-populated by Go).",
    )
    tls_min_version: str = flag(
        parse_tls_version,
        "TLS1.2",
        "Minimum TLS version supported by etcd. Possible values: TLS1.2, TLS1.3.",
    )
    tls_max_version: str = flag(
        parse_tls_version,
        "",
        "Maximum TLS version supported by etcd. Possible values: TLS1.2, TLS1.3 "
        "(empty is TLS1.2, the maximum of etcd 3.5.1).",
    )
    experimental_peer_skip_client_san_verification: bool = flag(
        _parse_bool,
        "false",
        "Skip verification of SAN field in client certificate for peer connections.",
    )
    cors: frozenset[str] = flag(
        _parse_cors,
        "*",
        "Comma-separated whitelist of origins for CORS, or cross-origin resource sharing, "
        "(empty or * means allow all).",
    )
    host_whitelist: frozenset[str] = flag(
        _parse_host_whitelist,
        "*",
        "Acceptable hostnames from HTTP client requests, if server is not secure "
        "(empty or * means allow all).",
    )
    auth_token: str = flag(
        _parse_str,
        "simple",
        "Specify a v3 authentication token type and its options ('simple' or 'jwt').",
    )
    bcrypt_cost: int = flag(
        _parse_uint,
        "10",
        "Specify the cost / strength of the bcrypt algorithm for hashing auth passwords."
        " Valid values are between 4 and 31.",
    )
    auth_token_ttl: int = flag(_parse_uint, "300", "Time (in seconds) of the auth-token-ttl.")
    logger: str = flag(
        _choice("zap"),
        "zap",
        "Currently only supports 'zap' for structured logging.",
    )
    log_level: str = flag(
        _choice("debug", "info", "warn", "error", "panic", "fatal"),
        "info",
        "Configures log level.",
    )
    log_outputs: str = flag(_parse_str, "default", "'stdout', 'stderr' or 'default'.")
    log_format: str = flag(
        _choice("console", "json", "text"),
        "console",
        "Configures log format. Only supports json, console ('text' is console).",
    )
    force_new_cluster: bool = flag(
        _parse_bool,
        "false",
        "Force to create a new one-member cluster.",
    )
    experimental_initial_corrupt_check: bool = flag(
        _parse_bool,
        "false",
        "Enable to check data corruption before serving any client/peer traffic.",
    )
    experimental_corrupt_check_time: float = flag(
        parse_duration,
        "0s",
        "Duration of time between cluster corruption check passes.",
    )
    experimental_watch_progress_notify_interval: float = flag(
        parse_duration,
        "10m",
        "Duration of periodical watch progress notification.",
    )
    experimental_snapshot_catchup_entries: int = flag(
        _parse_uint,
        "5000",
        "Number of entries for a slow follower to catch up after compacting the raft log.",
    )
    experimental_enable_lease_checkpoint: bool = flag(
        _parse_bool,
        "false",
        "Persist lease remaining TTL to prevent indefinite auto-renewal of long lived leases.",
    )
    discovery: str = flag(_parse_str, "", "Discovery URL used to bootstrap the cluster.")
    discovery_fallback: str = flag(
        _choice("exit", "proxy"),
        "proxy",
        "Expected behavior ('exit' or 'proxy') when discovery services fails.",
    )
    discovery_proxy: str = flag(
        _parse_str, "", "HTTP proxy to use for traffic to discovery service."
    )
    discovery_srv: str = flag(_parse_str, "", "DNS srv domain used to bootstrap the cluster.")
    discovery_srv_name: str = flag(
        _parse_str, "", "Suffix to the dns srv name queried when bootstrapping."
    )
    # The v2 API and the v2 proxy are not provided: etcd 3.6 removed the v2 API, and the
    # v2 proxy forwards only v2 requests (an HTTP/1 reverse proxy over the members' v2
    # endpoints), so it would serve nothing here. v3 clients use `twistd etcd grpc-proxy`
    # or `twistd etcd gateway`. The flags are accepted so etcd command lines parse; turning
    # either on is refused in one line, and the --proxy-* timeouts, which only tune the v2
    # proxy, are warned about when given.
    enable_v2: bool = flag(
        _parse_bool,
        "false",
        "Accept etcd V2 client requests. Deprecated and to be decommissioned in v3.6.",
    )
    proxy: str = flag(
        _choice("off", "readonly", "on"), "off", "Proxy mode setting ('off', 'readonly' or 'on')."
    )
    proxy_failure_wait: int = flag(
        _parse_uint, "5000", "Time (in milliseconds) an endpoint will be held in a failed state."
    )
    proxy_refresh_interval: int = flag(
        _parse_uint, "30000", "Time (in milliseconds) of the endpoints refresh interval."
    )
    proxy_dial_timeout: int = flag(
        _parse_uint, "1000", "Time (in milliseconds) for a dial to timeout."
    )
    proxy_write_timeout: int = flag(
        _parse_uint, "5000", "Time (in milliseconds) for a write to timeout."
    )
    proxy_read_timeout: int = flag(
        _parse_uint, "0", "Time (in milliseconds) for a read to timeout."
    )

    unsafe_no_fsync: bool = flag(
        _parse_bool, "false", "Disables fsync, unsafe, will cause data loss."
    )
    config_file: str = ""
    warnings: tuple[str, ...] = ()

    @property
    def member_dir(self) -> str:
        """``DATA_DIR/member``: where etcd keeps ``snap/`` and (by default) ``wal/``."""
        return os.path.join(self.data_dir, "member")

    @property
    def wal_path(self) -> str:
        """The WAL directory: ``--wal-dir`` or ``DATA_DIR/member/wal``."""
        return self.wal_dir or os.path.join(self.member_dir, "wal")

    @property
    def snap_path(self) -> str:
        """``DATA_DIR/member/snap``: snapshot files and the backend database."""
        return os.path.join(self.member_dir, "snap")

    @property
    def quota_bytes(self) -> int:
        """The backend quota in bytes (``--quota-backend-bytes`` 0 means 2 GiB)."""
        return self.quota_backend_bytes if self.quota_backend_bytes > 0 else DEFAULT_QUOTA_BYTES

    @property
    def max_receive_bytes(self) -> int:
        """The largest gRPC message accepted: ``--max-request-bytes`` + 512 KiB."""
        return self.max_request_bytes + GRPC_OVERHEAD_BYTES

    @property
    def election_ticks(self) -> int:
        """The election timeout in heartbeat ticks, as raft counts it."""
        return self.election_timeout // self.heartbeat_interval

    def replace(self, **changes: Any) -> Config:
        """A copy with some attributes changed (no re-validation)."""
        return dataclasses.replace(self, **changes)


#: Every flag, in declaration order, derived from :class:`Config`'s fields.
FLAGS: tuple[Flag, ...] = tuple(
    Flag(field.name.replace("_", "-"), *field.metadata["flag"])
    for field in dataclasses.fields(Config)
    if "flag" in field.metadata
)
FLAGS_BY_NAME: dict[str, Flag] = {f.name: f for f in FLAGS}


def _invalid(source: str, raw: str, reason: str) -> ConfigError:
    return ConfigError(f'invalid value "{raw}" for {source}: {reason}')


def _parse_value(flag: Flag, raw: str, source: str) -> Any:
    try:
        return flag.parse(raw)
    except ValueError as e:
        reason = str(e) or "parse error"
        if reason.startswith(("invalid literal", "could not convert")):
            reason = "parse error"
        raise _invalid(source, raw, reason) from None


def _split_argv(argv: Sequence[str]) -> dict[str, str]:
    """Parse Go-style flags (``-f``, ``--f``, ``--f=v``, ``--f v``) into raw strings."""
    given: dict[str, str] = {}
    args = list(argv)
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg == "--":
            if i < len(args):
                raise ConfigError(f"'{args[i]}' is not a valid flag")
            break
        if not arg.startswith("-") or arg in ("-", "---") or arg.startswith("---"):
            raise ConfigError(f"'{arg}' is not a valid flag")
        body = arg.lstrip("-")
        name, has_value, value = body.partition("=")
        if name in ("h", "help"):
            raise HelpRequested(help_text())
        if name == "version":
            raise VersionRequested()
        if name == "config-file":
            if not has_value:
                if i >= len(args):
                    raise ConfigError(f"flag needs an argument: -{name}")
                value = args[i]
                i += 1
            given[name] = value
            continue
        flag = FLAGS_BY_NAME.get(name)
        if flag is None:
            raise ConfigError(f"flag provided but not defined: -{name}")
        if not has_value:
            if flag.is_bool:
                value = "true"
            elif i < len(args):
                value = args[i]
                i += 1
            else:
                raise ConfigError(f"flag needs an argument: -{name}")
        given[name] = value
    return given


def _raw_from_yaml(path: str) -> dict[str, str]:
    try:
        with open(path, encoding="utf-8") as f:
            document = yaml.safe_load(f)
    except OSError as e:
        raise ConfigError(f"cannot read config file {path}: {e.strerror}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"cannot parse config file {path}{where}: invalid YAML") from None
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise ConfigError(f"config file {path} must be a YAML mapping of flag names to values")
    raw: dict[str, str] = {}
    for key, value in document.items():
        key = str(key)
        if key in _YAML_TLS_SECTIONS and isinstance(value, dict):
            prefix = _YAML_TLS_SECTIONS[key]
            for sub_key, sub_value in value.items():
                if sub_key in _YAML_TLS_KEYS and prefix + sub_key in FLAGS_BY_NAME:
                    raw[prefix + sub_key] = _yaml_scalar(sub_value)
            continue
        if key in FLAGS_BY_NAME:
            raw[key] = _yaml_scalar(value)
    return raw


def _yaml_scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    if value is None:
        return ""
    return str(value)


def parse(argv: Sequence[str], environ: Mapping[str, str] | None = None) -> Config:
    """Build a :class:`Config` from command-line arguments and the environment."""
    env = dict(os.environ if environ is None else environ)
    given = _split_argv(argv)
    warnings: list[str] = []
    sources: dict[str, str] = {}
    config_file = given.pop("config-file", "") or env.get("ETCD_CONFIG_FILE", "")
    if config_file:
        if given:
            warnings.append("a config file is given: other flags and environment are ignored")
        raw = _raw_from_yaml(config_file)
        sources = {name: f"{name} in {config_file}" for name in raw}
    else:
        raw = dict(given)
        sources = {name: f"flag --{name}" for name in given}
        for flag in FLAGS:
            if flag.env in env:
                if flag.name in given:
                    warnings.append(
                        f"recognized environment variable {flag.env}, but unused: "
                        "shadowed by corresponding flag"
                    )
                    continue
                raw[flag.name] = env[flag.env]
                sources[flag.name] = flag.env
        known_env = {flag.env for flag in FLAGS} | {"ETCD_CONFIG_FILE"}
        for key in sorted(env):
            # ETCD_TWISTED_* variables are ours (e.g. crash points), not etcd flags.
            if (
                key.startswith("ETCD_")
                and key not in known_env
                and not key.startswith("ETCD_TWISTED_")
            ):
                warnings.append(f"unrecognized environment variable {key}")
    values: dict[str, Any] = {}
    for flag in FLAGS:
        if flag.name in raw:
            values[flag.attr] = _parse_value(flag, raw[flag.name], sources[flag.name])
        else:
            values[flag.attr] = flag.parse(flag.default) if flag.default != "${name}.etcd" else ""
    _apply_defaults(values, raw)
    _validate(values, sources)
    warnings.extend(
        f"--{name} has no effect: it tunes the v2 proxy, which is not provided"
        for name in raw
        if name.startswith("proxy-")
    )
    warnings.extend(
        f"--{name} has no effect without --discovery"
        for name in ("discovery-fallback", "discovery-proxy")
        if name in raw and not values["discovery"]
    )
    bootstraps = [n for n in ("initial-cluster", "discovery", "discovery-srv") if raw.get(n)]
    if len(bootstraps) > 1:
        raise ConfigError(
            "multiple discovery or bootstrap flags are set. Choose one of "
            '"initial-cluster", "discovery" or "discovery-srv"'
        )
    return Config(**values, config_file=config_file, warnings=tuple(warnings))


def _apply_defaults(values: dict[str, Any], raw: Mapping[str, str]) -> None:
    """Fill in the defaults that depend on other values, as etcd does."""
    if not values["data_dir"]:
        values["data_dir"] = f"{values['name']}.etcd"
    default_cluster = parse_initial_cluster(FLAGS_BY_NAME["initial-cluster"].default)
    if "initial-cluster" not in raw and values["initial_cluster"] == default_cluster:
        values["initial_cluster"] = {values["name"]: list(values["initial_advertise_peer_urls"])}


def _validate(values: dict[str, Any], sources: Mapping[str, str]) -> None:
    heartbeat, election = values["heartbeat_interval"], values["election_timeout"]
    if heartbeat == 0:
        raise ConfigError("--heartbeat-interval must be greater than 0")
    if election < 5 * heartbeat:
        raise ConfigError(
            f"--election-timeout[{election}ms] should be at least as 5 times as "
            f"--heartbeat-interval[{heartbeat}ms]"
        )
    if election > 50000:
        raise ConfigError(
            f"--election-timeout[{election}ms] is too long, and should be set less than 50000ms"
        )
    if values["auto_compaction_mode"] == "revision":
        try:
            _parse_uint(values["auto_compaction_retention"])
        except ValueError:
            raise _invalid(
                sources.get("auto-compaction-retention", "flag --auto-compaction-retention"),
                values["auto_compaction_retention"],
                "revision retention must be a non-negative integer",
            ) from None
    else:
        periodic_retention(values["auto_compaction_retention"], sources)
    if bool(values["cert_file"]) != bool(values["key_file"]):
        raise ConfigError("--cert-file and --key-file must be given together")
    if bool(values["peer_cert_file"]) != bool(values["peer_key_file"]):
        raise ConfigError("--peer-cert-file and --peer-key-file must be given together")
    if values["enable_v2"]:
        raise ConfigError("--enable-v2: the v2 API is not provided (etcd 3.6 removed it)")
    if values["proxy"] != "off":
        raise ConfigError(
            f"--proxy={values['proxy']}: the v2 proxy is not provided; "
            "use 'twistd etcd grpc-proxy start' or 'twistd etcd gateway start'"
        )
    if values["peer_cert_allowed_cn"] and values["peer_cert_allowed_hostname"]:
        raise ConfigError(
            "AllowedCN and AllowedHostname are mutually exclusive "
            f'(cn="{values["peer_cert_allowed_cn"]}", '
            f'hostname="{values["peer_cert_allowed_hostname"]}")'
        )
    low, high = values["tls_min_version"], values["tls_max_version"]
    if high and (low or "TLS1.2") > high:
        raise ConfigError(f"min version ({low}) is greater than max version ({high})")
    if low == "TLS1.3" and values["cipher_suites"]:
        raise ConfigError("cipher suites cannot be configured when only TLS1.3 is enabled")
    if not values["listen_client_urls"]:
        raise ConfigError("--listen-client-urls must not be empty")


def periodic_retention(raw: str, sources: Mapping[str, str] | None = None) -> float:
    """The periodic auto-compaction retention in seconds (a bare number means hours)."""
    try:
        return float(int(raw)) * 3600.0
    except ValueError:
        pass
    try:
        return parse_duration(raw)
    except ValueError:
        source = (sources or {}).get(
            "auto-compaction-retention", "flag --auto-compaction-retention"
        )
        raise _invalid(source, raw, "not an integer number of hours nor a duration") from None


def help_text() -> str:
    """The help text listing every flag with its default, in etcd's layout."""
    lines = ["Usage:", "", "  twistd etcd [flags]", "    Start an etcd-twisted member.", ""]
    lines.append("  --config-file ''")
    lines.append(
        "    Path to the server configuration file (other flags and ETCD_* are then ignored)."
    )
    for flag in FLAGS:
        lines.append(f"  --{flag.name} '{flag.default}'")
        lines.append(f"    {flag.help}")
    return "\n".join(lines) + "\n"
