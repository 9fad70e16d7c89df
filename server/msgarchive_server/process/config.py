"""Settings: read once from flags and environment variables, then passed down.

Every setting is declared once, as a field of `Settings` (its type, its
default as a value, its help); its flag and its environment variable (the flag
wins) are derived from the field's name, and `OPTIONS`, `--help` and the README
table from the fields. A bad value raises `ConfigError` with one line naming
the setting.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import Field, dataclass, field, fields
from typing import TYPE_CHECKING, Any

from msgarchive_server import addresses
from msgarchive_server.stores.base import RETENTION_MODES, Retention, StoreOptions
from msgarchive_server.stores.location import BadLocation, parse_location

if TYPE_CHECKING:
    from msgarchive_server.domain.manifests.witnesses import Witness

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


def setting(
    default: Any,
    help: str,
    *,
    parse: Callable[[str], Any] | None = None,
    metavar: str | None = None,
) -> Any:
    """A field of `Settings` that is a setting: its default (a value), its help,
    and how its text is parsed when the field's type alone does not say."""
    return field(default=default, metadata={"help": help, "parse": parse, "metavar": metavar})


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the sidecar is configured with: each field is one setting,
    whose flag (``--name-of-field``) and environment variable
    (``MSGARCHIVE_NAME_OF_FIELD``) are derived from its name."""

    listen: str = setting(
        DEFAULT_LISTEN, "address to serve gRPC on: HOST:PORT, or unix:PATH", metavar="ADDR"
    )
    tls_cert: str | None = setting(
        None, "serve TLS with this certificate chain (PEM); needs --tls-key", metavar="FILE"
    )
    tls_key: str | None = setting(None, "the TLS private key (PEM)", metavar="FILE")
    tls_client_ca: str | None = setting(
        None,
        "require client certificates signed by this CA (mTLS); needs --tls-cert",
        metavar="FILE",
    )
    metrics_listen: str | None = setting(
        None, "serve Prometheus metrics over HTTP on HOST:PORT (off when unset)", metavar="ADDR"
    )
    http_listen: str | None = setting(
        None,
        "serve the reference view API (POST /v1/archival/view) over HTTP/JSON on "
        "HOST:PORT or unix:PATH, with the --tls-* settings (off when unset)",
        metavar="ADDR",
    )
    store: str = setting(
        DEFAULT_STORE,
        "where copies go: a directory (PATH or file://PATH) or s3://BUCKET[/PREFIX]",
        metavar="URL",
    )
    accounts: str | None = setting(
        None,
        "accounts file (TOML): each account's store and API keys; see the README",
        metavar="FILE",
    )
    s3_endpoint_url: str | None = setting(
        None,
        "S3 endpoint for S3-compatible stores (default: AWS, or AWS_ENDPOINT_URL)",
        metavar="URL",
    )
    s3_region: str | None = setting(
        None, "bucket region (default: the AWS chain, e.g. AWS_REGION)", metavar="REGION"
    )
    s3_path_style: bool = setting(
        False, "path-style addressing (for most S3-compatible stores)", metavar="BOOL"
    )
    s3_sse: str | None = setting(
        None, "server-side encryption: AES256 or aws:kms", parse=_choice(*SSE_MODES), metavar="MODE"
    )
    s3_sse_kms_key_id: str | None = setting(
        None,
        "KMS key id for --s3-sse aws:kms (default: the bucket's AWS managed key)",
        metavar="KEY",
    )
    retention_mode: str | None = setting(
        None,
        "keep every copy under S3 Object Lock: GOVERNANCE or COMPLIANCE (needs "
        "--retention-days and a bucket whose default retention covers it; not for a directory)",
        parse=_choice(*RETENTION_MODES),
        metavar="MODE",
    )
    retention_days: int | None = setting(
        None, "the retention period, in days (with --retention-mode)", metavar="DAYS"
    )
    manifests_dir: str | None = setting(
        None,
        "write hourly signed manifests of every acked copy, journaling each ack in this "
        "directory first (keep it on a volume that survives restarts); off when unset",
        metavar="DIR",
    )
    manifest_signing_key: str | None = setting(
        None,
        "the Ed25519 private key (PEM) that signs manifest heads; msgarchive manifest-key "
        "makes one",
        metavar="FILE",
    )
    witness: str | None = setting(
        None,
        "a witness that cosigns each checkpoint (C2SP tlog-witness), as URL=VKEY; repeat the "
        "flag for each, or separate them by spaces in the variable",
        metavar="URL=VKEY",
    )
    timestamp_url: str | None = setting(
        None,
        "an RFC 3161 time-stamping authority asked for a token over each checkpoint "
        "(stored beside it as checkpoint[.N].tsr)",
        metavar="URL",
    )
    manifest_writer: str | None = setting(
        None,
        "this sidecar's name in manifest keys: one chain per writer (default: the host name)",
        metavar="NAME",
    )
    s3_connect_timeout: float = setting(
        2.0, "seconds to wait for a connection to S3", metavar="SECONDS"
    )
    s3_read_timeout: float = setting(
        10.0, "seconds to wait for S3 to answer a write", metavar="SECONDS"
    )
    max_message_bytes: int = setting(
        4 * 1024 * 1024,
        "largest copy accepted, in bytes of rendered JSON",
        metavar="BYTES",
    )
    max_retries: int = setting(
        3,
        "retries of a failed store write (throttling is retried apart)",
        parse=_non_negative_int,
        metavar="N",
    )
    probe_max_interval: float = setting(
        30.0,
        "while archiving is unavailable, the longest wait between store probes, seconds",
        metavar="SECONDS",
    )
    read_rate_limit: int = setting(1000, "read RPCs allowed per account per minute", metavar="N")
    view_tolerance: float = setting(
        300.0,
        "how far a copy's sent_at may be from ViewMessage's sent_epoch_time, seconds",
        metavar="SECONDS",
    )
    workers: int = setting(
        1, "processes sharing the TCP port (SO_REUSEPORT), to use more cores", metavar="N"
    )
    max_in_flight: int = setting(
        48, "archives served at once; more are refused with RESOURCE_EXHAUSTED", metavar="N"
    )
    stream_window: int = setting(
        64,
        "archives one ArchiveStream runs at once; past it the sidecar stops reading",
        metavar="N",
    )
    max_streams: int = setting(
        8,
        "ArchiveStream (and reflection) calls open at once, each holding a thread; more "
        "are refused at their start with RESOURCE_EXHAUSTED",
        metavar="N",
    )
    max_streams_per_peer: int = setting(
        2,
        "streams open at once from one remote address (local callers: only --max-streams)",
        metavar="N",
    )
    stream_idle_timeout: float = setting(
        60.0,
        "seconds a stream may send nothing, with no message in flight, before it is "
        "closed (UNAVAILABLE / STREAM_IDLE) and its place freed",
        metavar="SECONDS",
    )
    http_timeout: float = setting(
        10.0,
        "seconds the HTTP listener waits for a request's head, then for its body, and "
        "for a client to read its answer",
        metavar="SECONDS",
    )
    threads: int = setting(
        64,
        "gRPC worker threads; more than --max-in-flight plus --max-streams, so reads and "
        "health always get one",
        metavar="N",
    )
    grace_period: float = setting(
        10.0, "seconds in-flight calls get to finish on SIGTERM", metavar="SECONDS"
    )
    log_level: str = setting(
        "info", "debug, info, warning or error", parse=_choice(*LOG_LEVELS), metavar="LEVEL"
    )
    log_format: str = setting(
        "auto",
        "json, console, or auto (console on a terminal, else json)",
        parse=_choice(*LOG_FORMATS),
        metavar="FORMAT",
    )
    worker: int | None = setting(
        None,
        "this process's index among the --workers processes: set by their supervisor, not by hand",
        parse=_non_negative_int,
        metavar="INDEX",
    )

    @property
    def witnesses(self) -> list[Witness]:
        """--witness, parsed (ConfigError naming a bad one)."""
        from msgarchive_server.domain.manifests.witnesses import parse_witness

        try:
            return [parse_witness(text) for text in (self.witness or "").split()]
        except ValueError as err:
            raise ConfigError(f"--witness {err}") from None

    def __post_init__(self) -> None:
        try:
            parse_location(self.store)
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
        if self.witness and not self.manifests_dir:
            raise ConfigError("--witness needs --manifests-dir: witnesses cosign its checkpoints")
        _ = self.witnesses  # parsed now, so that a bad --witness is refused at startup
        if self.timestamp_url and not self.manifests_dir:
            raise ConfigError("--timestamp-url needs --manifests-dir: tokens date its checkpoints")
        if self.timestamp_url and not self.timestamp_url.startswith(("http://", "https://")):
            raise ConfigError(f"--timestamp-url {self.timestamp_url!r}: not an http(s) URL")
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

    @property
    def store_options(self) -> StoreOptions:
        """How the stores are reached (every account's, with --accounts)."""
        return StoreOptions(
            endpoint_url=self.s3_endpoint_url,
            region=self.s3_region,
            path_style=self.s3_path_style,
            sse=self.s3_sse,
            sse_kms_key_id=self.s3_sse_kms_key_id,
            connect_timeout=self.s3_connect_timeout,
            read_timeout=self.s3_read_timeout,
            max_connections=self.threads,
        )

    @property
    def is_worker(self) -> bool:
        """Whether this process is one of --workers' processes (not its supervisor)."""
        return self.worker is not None

    @property
    def first_worker(self) -> bool:
        """Whether this process does what one process of a sidecar does once:
        serve the HTTP view, write the manifests' sealed hours."""
        return not self.worker

    @classmethod
    def load(cls, args: argparse.Namespace, environ: Mapping[str, str]) -> Settings:
        """Settings from parsed flags, falling back to `environ`, then defaults."""
        values: dict[str, Any] = {}
        for option in OPTIONS:
            given = getattr(args, option.name, None)
            if isinstance(given, list):  # a repeatable flag, given more than once
                given = " ".join(given)
            source = option.flag
            if given is None and option.env in environ:
                given, source = environ[option.env], option.env
            if given is None or (given == "" and option.default is None):
                continue
            try:
                values[option.name] = option.parse(given)
            except ValueError as err:
                raise ConfigError(f"{source}={given!r}: {err}") from None
        return cls(**values)


@dataclass(frozen=True, slots=True)
class Option:
    """How one setting is given: derived from its `Settings` field."""

    name: str
    default: Any
    help: str
    parse: Callable[[str], Any]
    metavar: str | None

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def env(self) -> str:
        return "MSGARCHIVE_" + self.name.upper()

    @property
    def written_default(self) -> str | None:
        """The default as it is written on a command line; None when unset."""
        return None if self.default is None else write(self.default)


def write(value: Any) -> str:
    """A setting's value as a flag or an environment variable gives it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


# How a field's text is parsed, by the field's type, where `setting()` does not say.
_PARSERS: dict[str, Callable[[str], Any]] = {
    "str": str,
    "str | None": str,
    "bool": _bool,
    "int": _positive_int,
    "int | None": _positive_int,
    "float": _positive_float,
}


def _option(spec: Field[Any]) -> Option:
    parse = spec.metadata["parse"] or _PARSERS[str(spec.type)]
    return Option(spec.name, spec.default, spec.metadata["help"], parse, spec.metadata["metavar"])


OPTIONS: tuple[Option, ...] = tuple(_option(spec) for spec in fields(Settings))
# Settings whose flag may be given more than once (the values, space-separated).
REPEATABLE = frozenset({"witness"})


def add_options(parser: argparse.ArgumentParser) -> None:
    """Add every setting's flag to `parser`, its env variable and default in the help."""
    for option in OPTIONS:
        default = option.written_default or "unset"
        parser.add_argument(
            option.flag,
            dest=option.name,
            default=None,
            metavar=option.metavar,
            help=f"{option.help} [env {option.env}; default {default}]",
            action="append" if option.name in REPEATABLE else "store",
        )


def parse_settings(argv: Sequence[str], environ: Mapping[str, str]) -> Settings:
    """Settings from a `serve` command line (used by tests and the CLI)."""
    parser = argparse.ArgumentParser(prog="msgarchive serve")
    add_options(parser)
    return Settings.load(parser.parse_args(list(argv)), environ)
