"""The `msgarchive` command: run the sidecar, ask one whether it is healthy, read copies.

Parsing imports nothing of the sidecar's own dependencies, so the client
commands (health, view, get, api-key) work where msgarchive is installed
without its `[server]` extra; serve and cat say in one line to install it.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterable, Sequence
from typing import NoReturn

from msgarchive import channels
from msgarchive_server.process.config import DEFAULT_LISTEN, ConfigError, Settings, add_options
from msgarchive_server.stores import StoreError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="msgarchive",
        description="Archive every campaign message to S3 before it is sent.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser(
        "serve",
        help="run the sidecar",
        description="Run the archiving sidecar. Every setting also reads an environment "
        "variable; a flag wins over its variable.",
    )
    add_options(serve)
    sealing = commands.add_parser(
        "seal",
        help="seal every journaled hour into signed manifests, through the current one",
        description="What a stopping sidecar does: for a journal a crashed or removed "
        "sidecar left. Takes serve's settings (the same flags and variables).",
    )
    add_options(sealing)
    check = commands.add_parser(
        "health", help="exit 0 when the sidecar at ADDR reports SERVING (for HEALTHCHECK)"
    )
    check.add_argument("--address", default=DEFAULT_LISTEN, metavar="ADDR")
    check.add_argument("--timeout", type=float, default=3.0, metavar="SECONDS")
    check.add_argument(
        "--alive",
        action="store_true",
        help="exit 0 when the sidecar answers at all, SERVING or not (for liveness probes)",
    )
    check.add_argument("--tls-ca", metavar="FILE", help="trust this CA: the sidecar serves TLS")
    check.add_argument("--tls-cert", metavar="FILE", help="client certificate, for mTLS")
    check.add_argument("--tls-key", metavar="FILE", help="client key, for mTLS")

    view = commands.add_parser(
        "view", help="find the copy a recipient got from a campaign (ViewMessage)"
    )
    _client_options(view)
    view.add_argument("--user-id", required=True, help=_recipient_kinds())
    view.add_argument(
        "--channel", required=True, help=_either(c.api_name for c in channels.CHANNELS)
    )
    view.add_argument("--campaign-id", required=True)
    view.add_argument("--sent-at", type=int, required=True, help="send time, epoch seconds")
    view.add_argument("--event", required=True, help='e.g. "SMS Sent"')
    view.add_argument("--platform", help="IOS, ANDROID or WEB for push")
    view.add_argument("--delivery-type")
    view.add_argument("--campaign-type")
    view.add_argument("--event-id")

    get = commands.add_parser("get", help="read one copy by key or by parts (GetArchivedMessage)")
    _client_options(get)
    get.add_argument("--key", help="the copy's full key")
    get.add_argument("--channel", choices=channels.NAMES)
    get.add_argument("--month", help="yyyymm")
    get.add_argument("--campaign-id")
    get.add_argument("--recipient")
    get.add_argument("--message-id")

    search = commands.add_parser(
        "search",
        help="find copies by recipient, campaign, channel, platform, time, message id or hold",
        description="Every copy the filters select, across every month and campaign, in "
        "sent time order: read from the store's signed manifests (mirrored into a local "
        "cache, then queried with DuckDB) or, for a store without them, from its listing. "
        "A table on a terminal, one JSON object a line otherwise.",
    )
    _store_options(search)
    _search_filters(search)
    search.add_argument("--count", action="store_true", help="totals by channel and month")
    search.add_argument("--limit", type=int, default=100, help="copies a page (default 100)")
    search.add_argument("--after", metavar="TOKEN", help="the page after the one that gave TOKEN")
    search.add_argument("--json", action="store_true", help="JSON lines even on a terminal")

    export = commands.add_parser(
        "export",
        help="make a production of the copies a search selects, that its receiver can check",
        description="Writes OUT (a new directory, or a zip with --zip): each copy's stored "
        "bytes, its JSON, its text, an EML for email, a page for people, and its inclusion "
        "proof; an index, Concordance and CSV load files, and production.json (every file's "
        "SHA-256) signed with --signing-key. msgarchive check-production checks it.",
    )
    export.add_argument("out", metavar="OUT", help="a new directory, or the zip to write")
    _store_options(export)
    _search_filters(export)
    export.add_argument(
        "--keys", metavar="FILE", help="export these keys (one a line) instead of a search"
    )
    export.add_argument("--zip", action="store_true", help="one zip, byte-identical when redone")
    export.add_argument(
        "--resume", action="store_true",
        help="finish an export that was cut short (OUT.partial), reading no copy it wrote",
    )  # fmt: skip
    export.add_argument(
        "--handed-to", metavar="WHO", help="who receives it, for the export log's record"
    )
    export.add_argument(
        "--subject-access", metavar="FILE",
        help="a data subject's own copy (GDPR Art. 15): with --recipient, a cover page "
        "from this TOML file's controller, purposes, categories, recipients, retention, rights",
    )  # fmt: skip
    export.add_argument(
        "--signing-key", required=True, metavar="FILE",
        help="the exporting team's Ed25519 key (PEM): not the sidecars' manifest key",
    )  # fmt: skip
    export.add_argument(
        "--manifest-key", metavar="FILE",
        help="the sidecars' manifest public key, copied in for the receiver's convenience",
    )  # fmt: skip
    checking_production = commands.add_parser(
        "check-production",
        help="check a production: its signature, every file's hash, every item's proof",
    )
    checking_production.add_argument("production", metavar="DIR_OR_ZIP")
    checking_production.add_argument(
        "--public-key", required=True, metavar="FILE", help="the producer's Ed25519 key (PEM)"
    )
    checking_production.add_argument(
        "--manifest-key", required=True, metavar="FILE",
        help="the archive's manifest public key (PEM)",
    )  # fmt: skip

    console = commands.add_parser(
        "console",
        help="serve the review console: search, read, prove, export and hold in a browser",
        description="A web console for compliance and support staff (pip install "
        "'msgarchive[console]'). Without --accounts it serves this machine only.",
    )
    _console_options(console)

    cat = commands.add_parser("cat", help="decode an archived .json.lz4 file and print its JSON")
    cat.add_argument("source", help="s3://BUCKET/KEY, a file path, or - for stdin")
    _endpoint_option(cat)

    commands.add_parser("api-key", help="make a new API key and its accounts-file digest")
    key = commands.add_parser(
        "manifest-key", help="make an Ed25519 key pair that signs manifest heads"
    )
    key.add_argument("private_key", metavar="FILE", help="where to write the private key (0600)")
    verify = commands.add_parser(
        "verify",
        help="check the chain of signed manifests, and the store against them",
        description="Exit 0 only when every head verifies and links to the one before, "
        "no hour is missing, every manifest matches its head, and every copy the manifests "
        "list is in the store as listed (and locked as acknowledged), with nothing unlisted.",
    )
    verify.add_argument("store", metavar="STORE", help="s3://BUCKET[/PREFIX], as the sidecar's")
    prove = commands.add_parser(
        "prove", help="print the proof that one copy is in a signed manifest (JSON)"
    )
    prove.add_argument(
        "store",
        metavar="STORE",
        help="s3://BUCKET[/PREFIX] or a directory, as the sidecar's --store",
    )
    prove.add_argument("key", metavar="KEY", help="the copy's full key")
    _endpoint_option(prove)
    hold = commands.add_parser(
        "hold",
        help="place or lift a legal hold on copies selected through the manifests",
        description="Selects copies from the signed manifests (so, what was acknowledged, "
        "each with its version), sets the S3 legal hold on each, and appends a signed record "
        "of the change to the hold log (_msgarchive/holds/).",
    )
    hold.add_argument("action", choices=["on", "off"])
    hold.add_argument("store", metavar="STORE", help="s3://BUCKET[/PREFIX], as the sidecar's")
    hold.add_argument("--campaign-id", required=True)
    hold.add_argument("--channel", choices=channels.NAMES)
    hold.add_argument("--month", help="yyyymm: the batch month in the key")
    hold.add_argument("--recipient", help=f"{_recipient_kinds()} (with --channel)")
    hold.add_argument("--reason", required=True, help="recorded in the hold log")
    hold.add_argument(
        "--signing-key", required=True, metavar="FILE", help="Ed25519 key (PEM) for the record"
    )
    _endpoint_option(hold)
    checking = commands.add_parser(
        "check-proof",
        help="check a proof from prove with the public key alone (exit 0 when it holds)",
    )
    checking.add_argument("proof", metavar="FILE", help="the proof, or - for stdin")
    checking.add_argument("--public-key", required=True, metavar="FILE", help="Ed25519, PEM")
    verify.add_argument(
        "--public-key", required=True, metavar="FILE", help="the heads' Ed25519 public key (PEM)"
    )
    verify.add_argument("--deep", action="store_true", help="also download and re-hash every copy")
    verify.add_argument(
        "--exports-key", metavar="FILE",
        help="the exporting team's Ed25519 public key: also check the export log",
    )  # fmt: skip
    verify.add_argument("--since", metavar="HOUR", help="the first hour checked: 2026-11-23T05")
    verify.add_argument("--until", metavar="HOUR", help="the last hour checked (default: all)")
    verify.add_argument("--json", action="store_true", help="one finding per line, as JSON")
    verify.add_argument(
        "--trusted-checkpoint", metavar="FILE", action="append", default=[],
        help="a checkpoint kept from before (from a witness, or the compliance team's own "
        "copy): the log must still give its root at its size (repeatable)",
    )  # fmt: skip
    verify.add_argument(
        "--witness-key", metavar="VKEY", action="append", default=[],
        help="a witness's cosignature key: the newest checkpoint must carry its "
        "cosignature (repeatable)",
    )  # fmt: skip
    verify.add_argument(
        "--witness-quorum", metavar="N", type=int,
        help="how many of the --witness-key witnesses must have cosigned (default: all)",
    )  # fmt: skip
    verify.add_argument(
        "--tsa-ca", metavar="FILE",
        help="the time-stamping authority's CA certificates (PEM): check each checkpoint's "
        "RFC 3161 token against them",
    )  # fmt: skip
    verify.add_argument(
        "--timestamp-max-lag", metavar="HOURS", type=float, default=24.0,
        help="how long after an hour ends the first token over it may come (default: 24)",
    )  # fmt: skip
    _endpoint_option(verify)
    return parser


def _either(names: Iterable[str]) -> str:
    """``a, b or c``."""
    *others, last = names
    return f"{', '.join(others)} or {last}" if others else last


def _recipient_kinds() -> str:
    """How each channel's recipient is written: ``push identity, email address or ...``."""
    return _either(dict.fromkeys(c.recipient_kind for c in channels.CHANNELS))


def _endpoint_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--s3-endpoint-url",
        default=os.environ.get("MSGARCHIVE_S3_ENDPOINT_URL"),
        help="for S3-compatible stores [env MSGARCHIVE_S3_ENDPOINT_URL]",
    )


def _search_filters(parser: argparse.ArgumentParser) -> None:
    """What a search (or an export) selects."""
    parser.add_argument(
        "--recipient", help=f"{_recipient_kinds()}, as a person writes it (any case or format)"
    )
    parser.add_argument("--campaign-id")
    parser.add_argument("--channel", choices=channels.NAMES)
    parser.add_argument("--platform", help="ios, android or web (push), or a channel's name")
    parser.add_argument("--since", metavar="TIME", help="sent at or after: 2026-11-01 or ISO 8601")
    parser.add_argument("--until", metavar="TIME", help="sent before: 2026-12-01 or ISO 8601")
    parser.add_argument("--message-id")
    held = parser.add_mutually_exclusive_group()
    held.add_argument("--held", dest="held", action="store_true", default=None,
                      help="under a legal hold only")  # fmt: skip
    held.add_argument("--not-held", dest="held", action="store_false",
                      help="not under a legal hold")  # fmt: skip
    parser.add_argument(
        "--source", choices=("auto", "manifests", "inventory", "listing"), default="auto",
        help="the signed manifests, an S3 Inventory report, the store's listing, or auto: "
        "manifests when there are any, else the inventory when given, else the listing",
    )  # fmt: skip
    parser.add_argument(
        "--inventory", metavar="URL",
        help="an S3 Inventory report of the bucket (Parquet): its manifest.json as "
        "s3://BUCKET/KEY, or a local Parquet file or folder",
    )  # fmt: skip


def _store_options(parser: argparse.ArgumentParser) -> None:
    """Which store a command reads: --store, or one account's of --accounts."""
    parser.add_argument(
        "--store",
        default=os.environ.get("MSGARCHIVE_STORE", "./archive"),
        metavar="URL",
        help="a directory or s3://BUCKET[/PREFIX], as the sidecar's "
        "[env MSGARCHIVE_STORE; default ./archive]",
    )
    parser.add_argument(
        "--accounts",
        default=os.environ.get("MSGARCHIVE_ACCOUNTS"),
        metavar="FILE",
        help="the sidecar's accounts file: read --account's store only",
    )
    parser.add_argument("--account", metavar="ID", help="with --accounts: whose store")
    parser.add_argument(
        "--cache-dir",
        metavar="DIR",
        help="where manifests are mirrored (default: ~/.cache/msgarchive)",
    )
    _endpoint_option(parser)


def _console_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--store", default=os.environ.get("MSGARCHIVE_STORE", "./archive"), metavar="URL",
        help="a directory or s3://BUCKET[/PREFIX] [env MSGARCHIVE_STORE; default ./archive]",
    )  # fmt: skip
    parser.add_argument(
        "--accounts", default=os.environ.get("MSGARCHIVE_ACCOUNTS"), metavar="FILE",
        help="the sidecar's accounts file: every account's store, reviewers sign in with "
        "their keys [env MSGARCHIVE_ACCOUNTS]",
    )  # fmt: skip
    parser.add_argument(
        "--listen", default="127.0.0.1:8090", metavar="ADDRESS",
        help="HOST:PORT or unix:PATH (default 127.0.0.1:8090)",
    )  # fmt: skip
    parser.add_argument("--tls-cert", metavar="FILE", help="serve TLS with this chain (PEM)")
    parser.add_argument("--tls-key", metavar="FILE", help="the TLS private key (PEM)")
    parser.add_argument(
        "--tls-client-ca", metavar="FILE",
        help="require client certificates signed by this CA (mTLS); needs --tls-cert",
    )  # fmt: skip
    parser.add_argument(
        "--manifest-key", metavar="FILE",
        help="the sidecars' manifest public key (PEM): each copy's proof is checked with it",
    )  # fmt: skip
    parser.add_argument(
        "--signing-key", metavar="FILE",
        help="the reviewers' own Ed25519 key (PEM) that signs productions and hold records; "
        "without it, exports and holds are off",
    )  # fmt: skip
    parser.add_argument(
        "--work-dir", metavar="DIR",
        help="where productions are made and kept (default: ~/.cache/msgarchive/console)",
    )  # fmt: skip
    parser.add_argument(
        "--cache-dir", metavar="DIR", help="where manifests are mirrored (~/.cache/msgarchive)"
    )
    parser.add_argument(
        "--idle-minutes", type=float, default=15.0,
        help="a session ends after this long without a request (default 15)",
    )  # fmt: skip
    _endpoint_option(parser)
    parser.add_argument("--log-level", default="info")


def _client_options(parser: argparse.ArgumentParser) -> None:
    from msgarchive_server.process.commands import add_client_options

    add_client_options(parser)


def main(argv: Sequence[str] | None = None) -> int:
    """The exit code: 0 done (or nothing wrong), 1 findings (verify, a proof that
    does not hold, a copy no manifest lists), 2 could not do or check it."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "health":
            from msgarchive_server.process.healthcheck import check_health

            return check_health(args)
        if args.command in ("serve", "seal"):
            return _serve(args)
        if args.command == "console":
            from msgarchive_server.process import console

            return console.run(args)
        from msgarchive_server.process import commands

        if (
            args.command == "get"
            and not args.key
            and not all(
                (args.channel, args.month, args.campaign_id, args.recipient, args.message_id)
            )
        ):
            print(
                "msgarchive: error: get needs --key, or --channel --month --campaign-id "
                "--recipient --message-id",
                file=sys.stderr,
            )
            return 2
        run = {
            "view": commands.view,
            "get": commands.get,
            "cat": commands.cat,
            "api-key": commands.api_key,
            "manifest-key": commands.manifest_key,
            "verify": commands.verify,
            "prove": commands.prove,
            "check-proof": commands.check_proof,
            "hold": commands.hold,
            "search": commands.search,
            "export": commands.export,
            "check-production": commands.check_production,
        }[args.command]
        return run(args)
    except StoreError as err:
        # Could not check (a missing bucket, an endpoint that does not answer,
        # refused credentials): exit 2, apart from 1 for findings.
        print(f"msgarchive: error: the store did not answer: {err}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as err:
        extra = {"duckdb": "search"}.get(str(err.name), "server")
        if args.command == "console":
            extra = "server,search,console"
        print(
            f"msgarchive: error: {args.command} needs the sidecar's dependencies "
            f"({err.name} is missing): pip install 'msgarchive[{extra}]'",
            file=sys.stderr,
        )
        return 2


def _serve(args: argparse.Namespace) -> int:
    from msgarchive_server.process.app import StartupError, seal, serve
    from msgarchive_server.telemetry.logs import configure_logging, flush_logs

    try:
        settings = Settings.load(args, os.environ)
        configure_logging(
            settings.log_level,
            settings.log_format,
            {"worker": settings.worker} if settings.is_worker else None,
        )
        return seal(settings) if args.command == "seal" else serve(settings)
    except (ConfigError, StartupError) as err:
        print(f"msgarchive: error: {err}", file=sys.stderr)
        return 2
    finally:
        # Here, not only at exit: the interpreter flushes stdout before its
        # atexit work, and a stdout that takes nothing would hold it there.
        flush_logs()


def run() -> NoReturn:
    """The command line's entry: `main`, then an exit that tears nothing down
    after a one-shot command (its output flushed first). The manifests'
    Parquet readers (pyarrow) and DuckDB keep native thread pools that can
    abort the interpreter as it destroys them at exit ("terminate called
    without an active exception", apache/arrow#34314), after the work is done
    and printed. `serve` and `seal` exit normally: their atexit work (trace
    export) must run."""
    code = main()
    if sys.argv[1:2] in (["serve"], ["seal"]):
        sys.exit(code)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    run()
