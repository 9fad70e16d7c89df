"""Settings: read once from flags and environment variables, then passed down.

Every setting has a flag and an environment variable (the flag wins), listed
once in `OPTIONS`; `--help` and the README table come from the same list. A
bad value raises `ConfigError` with one line naming the setting.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from msgarchive_server import addresses
from msgarchive_server.stores.base import RETENTION_MODES, Retention
from msgarchive_server.stores.location import BadLocation, store_location

DEFAULT_LISTEN = "127.0.0.1:50051"
DEFAULT_STORE = "./archive"
SSE_MODES = ("AES256", "aws:kms")
LOG_FORMATS = ("auto", "json", "console")
LOG_LEVELS = ("debug", "info", "warning", "error")


class ConfigError(Exception):
    """A setting is invalid; the message is one line naming it."""


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("expected true or false")


def _number(text: str, kind: Callable[[str], int | float], *, minimum: float, strict: bool) -> Any:
    try:
        value = kind(text)
    except ValueError:
        raise ValueError("expected a number") from None
    # Written so that NaN fails too.
    if not (value > minimum or (not strict and value == minimum)):
        raise ValueError(f"must be {'more than' if strict else 'at least'} {minimum:g}")
    return value


def _positive_int(text: str) -> int:
    value: int = _number(text, int, minimum=0, strict=True)
    return value


def _non_negative_int(text: str) -> int:
    value: int = _number(text, int, minimum=0, strict=False)
    return value


def _positive_float(text: str) -> float:
    value: float = _number(text, float, minimum=0, strict=True)
    return value


def _choice(*allowed: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}")
        return text

    return parse


@dataclass(frozen=True, slots=True)
class Option:
    """One setting: its flag, environment variable, default and parser."""

    name: str
    env: str
    default: str | None
    help: str
    parse: Callable[[str], Any] = str
    metavar: str | None = None

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


OPTIONS: tuple[Option, ...] = (
    Option(
        "listen",
        "MSGARCHIVE_LISTEN",
        DEFAULT_LISTEN,
        "address to serve gRPC on: HOST:PORT, or unix:PATH",
        metavar="ADDR",
    ),
    Option(
        "tls_cert",
        "MSGARCHIVE_TLS_CERT",
        None,
        "serve TLS with this certificate chain (PEM); needs --tls-key",
        metavar="FILE",
    ),
    Option(
        "tls_key",
        "MSGARCHIVE_TLS_KEY",
        None,
        "the TLS private key (PEM)",
        metavar="FILE",
    ),
    Option(
        "tls_client_ca",
        "MSGARCHIVE_TLS_CLIENT_CA",
        None,
        "require client certificates signed by this CA (mTLS); needs --tls-cert",
        metavar="FILE",
    ),
    Option(
        "metrics_listen",
        "MSGARCHIVE_METRICS_LISTEN",
        None,
        "serve Prometheus metrics over HTTP on HOST:PORT (off when unset)",
        metavar="ADDR",
    ),
    Option(
        "http_listen",
        "MSGARCHIVE_HTTP_LISTEN",
        None,
        "serve the reference view API (POST /v1/archival/view) over HTTP/JSON on "
        "HOST:PORT or unix:PATH, with the --tls-* settings (off when unset)",
        metavar="ADDR",
    ),
    Option(
        "store",
        "MSGARCHIVE_STORE",
        DEFAULT_STORE,
        "where copies go: a directory (PATH or file://PATH) or s3://BUCKET[/PREFIX]",
        metavar="URL",
    ),
    Option(
        "accounts",
        "MSGARCHIVE_ACCOUNTS",
        None,
        "accounts file (TOML): each account's store and API keys; see the README",
        metavar="FILE",
    ),
    Option(
        "s3_endpoint_url",
        "MSGARCHIVE_S3_ENDPOINT_URL",
        None,
        "S3 endpoint for S3-compatible stores (default: AWS, or AWS_ENDPOINT_URL)",
        metavar="URL",
    ),
    Option(
        "s3_region",
        "MSGARCHIVE_S3_REGION",
        None,
        "bucket region (default: the AWS chain, e.g. AWS_REGION)",
        metavar="REGION",
    ),
    Option(
        "s3_path_style",
        "MSGARCHIVE_S3_PATH_STYLE",
        "false",
        "path-style addressing (for most S3-compatible stores)",
        _bool,
        "BOOL",
    ),
    Option(
        "s3_sse",
        "MSGARCHIVE_S3_SSE",
        None,
        "server-side encryption: AES256 or aws:kms",
        _choice(*SSE_MODES),
        "MODE",
    ),
    Option(
        "s3_sse_kms_key_id",
        "MSGARCHIVE_S3_SSE_KMS_KEY_ID",
        None,
        "KMS key id for --s3-sse aws:kms (default: the bucket's AWS managed key)",
        metavar="KEY",
    ),
    Option(
        "retention_mode",
        "MSGARCHIVE_RETENTION_MODE",
        None,
        "keep every copy under S3 Object Lock: GOVERNANCE or COMPLIANCE (needs "
        "--retention-days and a bucket whose default retention covers it; not for a directory)",
        _choice(*RETENTION_MODES),
        "MODE",
    ),
    Option(
        "retention_days",
        "MSGARCHIVE_RETENTION_DAYS",
        None,
        "the retention period, in days (with --retention-mode)",
        _positive_int,
        "DAYS",
    ),
    Option(
        "manifests_dir",
        "MSGARCHIVE_MANIFESTS_DIR",
        None,
        "write hourly signed manifests of every acked copy, journaling each ack in this "
        "directory first (keep it on a volume that survives restarts); off when unset",
        metavar="DIR",
    ),
    Option(
        "manifest_signing_key",
        "MSGARCHIVE_MANIFEST_SIGNING_KEY",
        None,
        "the Ed25519 private key (PEM) that signs manifest heads; msgarchive manifest-key "
        "makes one",
        metavar="FILE",
    ),
    Option(
        "manifest_writer",
        "MSGARCHIVE_MANIFEST_WRITER",
        None,
        "this sidecar's name in manifest keys: one chain per writer (default: the host name)",
        metavar="NAME",
    ),
    Option(
        "s3_connect_timeout",
        "MSGARCHIVE_S3_CONNECT_TIMEOUT",
        "2",
        "seconds to wait for a connection to S3",
        _positive_float,
        "SECONDS",
    ),
    Option(
        "s3_read_timeout",
        "MSGARCHIVE_S3_READ_TIMEOUT",
        "10",
        "seconds to wait for S3 to answer a write",
        _positive_float,
        "SECONDS",
    ),
    Option(
        "max_message_bytes",
        "MSGARCHIVE_MAX_MESSAGE_BYTES",
        str(4 * 1024 * 1024),
        "largest copy accepted, in bytes of rendered JSON",
        _positive_int,
        "BYTES",
    ),
    Option(
        "max_retries",
        "MSGARCHIVE_MAX_RETRIES",
        "3",
        "retries of a failed store write (throttling is retried apart)",
        _non_negative_int,
        "N",
    ),
    Option(
        "probe_max_interval",
        "MSGARCHIVE_PROBE_MAX_INTERVAL",
        "30",
        "while archiving is unavailable, the longest wait between store probes, seconds",
        _positive_float,
        "SECONDS",
    ),
    Option(
        "read_rate_limit",
        "MSGARCHIVE_READ_RATE_LIMIT",
        "1000",
        "read RPCs allowed per account per minute",
        _positive_int,
        "N",
    ),
    Option(
        "view_tolerance",
        "MSGARCHIVE_VIEW_TOLERANCE",
        "300",
        "how far a copy's sent_at may be from ViewMessage's sent_epoch_time, seconds",
        _positive_float,
        "SECONDS",
    ),
    Option(
        "workers",
        "MSGARCHIVE_WORKERS",
        "1",
        "processes sharing the TCP port (SO_REUSEPORT), to use more cores",
        _positive_int,
        "N",
    ),
    Option(
        "max_in_flight",
        "MSGARCHIVE_MAX_IN_FLIGHT",
        "48",
        "archives served at once; more are refused with RESOURCE_EXHAUSTED",
        _positive_int,
        "N",
    ),
    Option(
        "stream_window",
        "MSGARCHIVE_STREAM_WINDOW",
        "64",
        "archives one ArchiveStream runs at once; past it the sidecar stops reading",
        _positive_int,
        "N",
    ),
    Option(
        "max_streams",
        "MSGARCHIVE_MAX_STREAMS",
        "8",
        "ArchiveStream (and reflection) calls open at once, each holding a thread; more "
        "are refused at their start with RESOURCE_EXHAUSTED",
        _positive_int,
        "N",
    ),
    Option(
        "max_streams_per_peer",
        "MSGARCHIVE_MAX_STREAMS_PER_PEER",
        "2",
        "streams open at once from one remote address (local callers: only --max-streams)",
        _positive_int,
        "N",
    ),
    Option(
        "stream_idle_timeout",
        "MSGARCHIVE_STREAM_IDLE_TIMEOUT",
        "60",
        "seconds a stream may send nothing, with no message in flight, before it is "
        "closed (UNAVAILABLE / STREAM_IDLE) and its place freed",
        _positive_float,
        "SECONDS",
    ),
    Option(
        "http_timeout",
        "MSGARCHIVE_HTTP_TIMEOUT",
        "10",
        "seconds the HTTP listener waits for a request's head, then for its body, and "
        "for a client to read its answer",
        _positive_float,
        "SECONDS",
    ),
    Option(
        "threads",
        "MSGARCHIVE_THREADS",
        "64",
        "gRPC worker threads; more than --max-in-flight plus --max-streams, so reads and "
        "health always get one",
        _positive_int,
        "N",
    ),
    Option(
        "grace_period",
        "MSGARCHIVE_GRACE_PERIOD",
        "10",
        "seconds in-flight calls get to finish on SIGTERM",
        _positive_float,
        "SECONDS",
    ),
    Option(
        "log_level",
        "MSGARCHIVE_LOG_LEVEL",
        "info",
        "debug, info, warning or error",
        _choice(*LOG_LEVELS),
        "LEVEL",
    ),
    Option(
        "log_format",
        "MSGARCHIVE_LOG_FORMAT",
        "auto",
        "json, console, or auto (console on a terminal, else json)",
        _choice(*LOG_FORMATS),
        "FORMAT",
    ),
)


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the sidecar is configured with."""

    listen: str = DEFAULT_LISTEN
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_client_ca: str | None = None
    metrics_listen: str | None = None
    http_listen: str | None = None
    store: str = DEFAULT_STORE
    accounts: str | None = None
    s3_endpoint_url: str | None = None
    s3_region: str | None = None
    s3_path_style: bool = False
    s3_sse: str | None = None
    s3_sse_kms_key_id: str | None = None
    retention_mode: str | None = None
    retention_days: int | None = None
    manifests_dir: str | None = None
    manifest_signing_key: str | None = None
    manifest_writer: str | None = None
    s3_connect_timeout: float = 2.0
    s3_read_timeout: float = 10.0
    max_message_bytes: int = 4 * 1024 * 1024
    max_retries: int = 3
    probe_max_interval: float = 30.0
    read_rate_limit: int = 1000
    view_tolerance: float = 300.0
    workers: int = 1
    max_in_flight: int = 48
    stream_window: int = 64
    max_streams: int = 8
    max_streams_per_peer: int = 2
    stream_idle_timeout: float = 60.0
    http_timeout: float = 10.0
    threads: int = 64
    grace_period: float = 10.0
    log_level: str = "info"
    log_format: str = "auto"

    def __post_init__(self) -> None:
        try:
            store_location(self.store)
        except BadLocation as err:
            where = f"--store {self.store}" if self.store.strip() else "--store"
            raise ConfigError(f"{where}: {err}") from None
        if self.s3_sse_kms_key_id and self.s3_sse != "aws:kms":
            raise ConfigError("--s3-sse-kms-key-id needs --s3-sse aws:kms")
        if (self.retention_mode is None) != (self.retention_days is None):
            raise ConfigError("--retention-mode and --retention-days go together")
        if bool(self.manifests_dir) != bool(self.manifest_signing_key):
            raise ConfigError("--manifests-dir and --manifest-signing-key go together")
        if self.manifest_writer is not None and not re.fullmatch(
            r"[A-Za-z0-9_.-]{1,128}", self.manifest_writer
        ):
            raise ConfigError("--manifest-writer: 1 to 128 characters of A-Z a-z 0-9 _ . -")
        self._check_address("--listen", self.listen)
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ConfigError("--tls-cert and --tls-key go together")
        if self.tls_client_ca and not self.tls_cert:
            raise ConfigError("--tls-client-ca (mTLS) needs --tls-cert and --tls-key")
        if self.max_in_flight + self.max_streams >= self.threads:
            raise ConfigError(
                f"--max-in-flight {self.max_in_flight} plus --max-streams {self.max_streams} "
                f"must be below --threads {self.threads}, so reads and health checks always "
                "get a thread"
            )
        if self.workers > 1:
            listen = addresses.parse(self.listen)
            if listen.unix or listen.port == 0:
                raise ConfigError("--workers needs a TCP address with a fixed port to share")
        if self.metrics_listen is not None:
            self._check_address("--metrics-listen", self.metrics_listen, unix=False)
        if self.http_listen is not None:
            self._check_address("--http-listen", self.http_listen)

    @staticmethod
    def _check_address(flag: str, text: str, *, unix: bool = True) -> None:
        if not text.strip():
            raise ConfigError(f"{flag}: an address is required")
        try:
            addresses.parse(text, unix=unix)
        except addresses.BadAddress as err:
            raise ConfigError(f"{flag} {text}: {err}") from None

    @property
    def retention(self) -> Retention | None:
        """The retention every store must enforce, unless an account sets its own."""
        if self.retention_mode is None or self.retention_days is None:
            return None
        return Retention(self.retention_mode, self.retention_days)

    @classmethod
    def load(cls, args: argparse.Namespace, environ: Mapping[str, str]) -> Settings:
        """Settings from parsed flags, falling back to `environ`, then defaults."""
        values: dict[str, Any] = {}
        for option in OPTIONS:
            given = getattr(args, option.name, None)
            source = option.flag
            if given is None and option.env in environ:
                given, source = environ[option.env], option.env
            if given is None:
                given = option.default
            if given is None or (given == "" and option.default is None):
                continue
            try:
                values[option.name] = option.parse(given)
            except ValueError as err:
                raise ConfigError(f"{source}={given!r}: {err}") from None
        return cls(**values)


def add_options(parser: argparse.ArgumentParser) -> None:
    """Add every setting's flag to `parser`, its env variable and default in the help."""
    for option in OPTIONS:
        default = option.default if option.default is not None else "unset"
        parser.add_argument(
            option.flag,
            dest=option.name,
            default=None,
            metavar=option.metavar,
            help=f"{option.help} [env {option.env}; default {default}]",
        )


def parse_settings(argv: Sequence[str], environ: Mapping[str, str]) -> Settings:
    """Settings from a `serve` command line (used by tests and the CLI)."""
    parser = argparse.ArgumentParser(prog="msgarchive serve")
    add_options(parser)
    return Settings.load(parser.parse_args(list(argv)), environ)
