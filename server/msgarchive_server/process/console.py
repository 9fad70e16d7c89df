"""`msgarchive console`: the review console, started (edge/console/ serves it).

It runs apart from the sidecars, with read credentials for the stores (and
legal-hold rights where holds are placed from it): one store with `--store`,
or every account's with `--accounts` (each reviewer then reads only their
account's). Without an accounts file it serves loopback only, and the
machine's user is the reviewer, as for the sidecar's reads.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import html
import os
import sys
from pathlib import Path

import structlog

from msgarchive_server import addresses
from msgarchive_server.domain.accounts import Accounts, AccountsFileError
from msgarchive_server.domain.manifests.heads import Ed25519FileSigner
from msgarchive_server.domain.search import Search
from msgarchive_server.edge.console.app import OPEN_ACCOUNT, Archive, Console, ConsoleSettings
from msgarchive_server.edge.http import TlsFiles
from msgarchive_server.edge.httpserver import HttpServer, Limits
from msgarchive_server.process.signals import StopSignals
from msgarchive_server.stores import Store, StoreOptions, open_store
from msgarchive_server.telemetry.logs import configure_logging

log = structlog.get_logger("msgarchive.console")

THREADS = 8


def run(args: argparse.Namespace) -> int:
    configure_logging(args.log_level, "auto")
    try:
        server, console = build(args)
    except (OSError, ValueError, AccountsFileError) as err:
        print(f"msgarchive: error: {err}", file=sys.stderr)
        return 2
    with StopSignals() as stop:
        server.start()
        scheme = "https" if args.tls_cert else "http"
        where = addresses.parse(args.listen)
        url = args.listen if where.unix else f"{scheme}://{where.host}:{server.port}/"
        log.info(
            "serving", component="console", url=url, port=server.port,
            accounts=console.accounts is not None,
        )  # fmt: skip
        stop.wait()
    server.stop(5.0)
    for archive in console.archives.values():
        archive.close()
    return 0


def build(args: argparse.Namespace) -> tuple[HttpServer, Console]:
    """The console's server, bound (OSError, ValueError or AccountsFileError
    naming a bad setting)."""
    if bool(args.tls_cert) != bool(args.tls_key):
        raise ValueError("--tls-cert and --tls-key go together")
    if args.tls_client_ca and not args.tls_cert:
        raise ValueError("--tls-client-ca (mTLS) needs --tls-cert and --tls-key")
    if args.idle_minutes <= 0:
        raise ValueError("--idle-minutes must be more than 0")
    home = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "msgarchive"
    cache_root = Path(args.cache_dir) if args.cache_dir else home
    work_root = Path(args.work_dir) if args.work_dir else home / "console"
    options = StoreOptions(endpoint_url=args.s3_endpoint_url, path_style=bool(args.s3_endpoint_url))
    accounts = Accounts.load(Path(args.accounts)) if args.accounts else None
    locations = (
        {a.account_id: a.store for a in accounts.accounts.values()}
        if accounts is not None
        else {OPEN_ACCOUNT: args.store}
    )
    settings = ConsoleSettings(
        manifest_key=Path(args.manifest_key).read_bytes() if args.manifest_key else None,
        signer=Ed25519FileSigner.from_file(Path(args.signing_key)) if args.signing_key else None,
        idle_s=args.idle_minutes * 60,
        secure=bool(args.tls_cert),
    )
    archives = {}
    for account, url in locations.items():
        store = open_store(url, options)
        cache = cache_root / hashlib.sha256(url.encode()).hexdigest()[:16]
        archives[account] = Archive(
            account, store, functools.partial(_search, store, cache), settings.refresh_s
        )
    where = addresses.parse(args.listen)
    console = Console(archives, accounts, settings, work_root, unix_socket=where.unix)
    tls = TlsFiles(args.tls_cert, args.tls_key, args.tls_client_ca) if args.tls_cert else None
    server = HttpServer(
        where, console, _refusal, ssl_context=tls.context() if tls else None,
        limits=Limits(max_body_bytes=16 * 1024, threads=THREADS),
        refusal_type="text/html; charset=utf-8",
    )  # fmt: skip
    return server, console


def _search(store: Store, cache: Path) -> Search:
    return Search(store, cache)


def _refusal(status: int, message: str) -> bytes:
    """A request the server refused before the console saw it: a plain page."""
    return f"<!DOCTYPE html><title>{status}</title><p>{html.escape(message)}</p>\n".encode()
