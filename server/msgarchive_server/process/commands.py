"""The `msgarchive` subcommands other than `serve`: view, get, cat, api-key.

view, get and api-key need only the client library: they work where
`msgarchive` is installed without the `[server]` extra. cat reads copies with
the sidecar's own code (lz4, boto3), and manifest-key uses cryptography, each
imported when it runs.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from google.protobuf import json_format
from google.protobuf.message import Message

from msgarchive import ArchiveClient, MsgArchiveError, channels
from msgarchive.v1 import archive_service_pb2 as pb
from msgarchive_server.domain.accounts import new_api_key

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from msgarchive_server.domain.search import Search, SearchQuery
    from msgarchive_server.stores import Store


def add_client_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--address", default="127.0.0.1:50051", metavar="ADDR")
    parser.add_argument(
        "--api-key",
        default=os.environ.get("MSGARCHIVE_API_KEY"),
        help="API key [env MSGARCHIVE_API_KEY]",
    )
    parser.add_argument(
        "--account",
        default=os.environ.get("MSGARCHIVE_ACCOUNT"),
        help="account id [env MSGARCHIVE_ACCOUNT]",
    )
    parser.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS")


def _print(message: Message) -> None:
    print(json_format.MessageToJson(message, preserving_proto_field_name=True))


def _client(args: argparse.Namespace) -> ArchiveClient:
    return ArchiveClient(
        args.address, timeout=args.timeout, api_key=args.api_key, account_id=args.account
    )


def _run(args: argparse.Namespace, call: str, request: Message) -> int:
    try:
        with _client(args) as client:
            _print(getattr(client, call)(request))
    except MsgArchiveError as err:
        print(f"msgarchive: {err}", file=sys.stderr)
        return 1
    return 0


def view(args: argparse.Namespace) -> int:
    request = pb.ViewMessageRequest(
        user_id=args.user_id,
        campaign_channel=args.channel,
        campaign_id=args.campaign_id,
        sent_epoch_time=args.sent_at,
        event_name=args.event,
        platform=args.platform or "",
        delivery_type=args.delivery_type or "",
        campaign_type=args.campaign_type or "",
        event_id=args.event_id or "",
    )
    return _run(args, "view_message", request)


def get(args: argparse.Namespace) -> int:
    if args.key:
        request = pb.GetArchivedMessageRequest(key=args.key)
    else:
        request = pb.GetArchivedMessageRequest(
            parts=pb.MessageLocator(
                channel=channels.named(args.channel).enum,
                yyyymm=args.month,
                campaign_id=args.campaign_id,
                recipient=args.recipient,
                message_id=args.message_id,
            )
        )
    return _run(args, "get_archived_message", request)


def cat(args: argparse.Namespace) -> int:
    """Decode an archived .json.lz4 file and print its JSON."""
    from msgarchive_server.domain.payloads import decompress

    source: str = args.source
    try:
        if source.startswith("s3://"):
            blob = _read_s3(source, args.s3_endpoint_url)
        elif source == "-":
            blob = sys.stdin.buffer.read()
        else:
            blob = Path(source).read_bytes()
        text = decompress(blob).decode()
    except (OSError, RuntimeError, UnicodeDecodeError, ValueError) as err:
        print(f"msgarchive: error: cannot read {source}: {err}", file=sys.stderr)
        return 2
    sys.stdout.write(text + "\n")
    return 0


def _read_s3(url: str, endpoint_url: str | None) -> bytes:
    """The object at s3://BUCKET/KEY, read with the sidecar's own S3 store."""
    from msgarchive_server.stores import NoSuchObject, StoreError

    parts = urlsplit(url)
    key = parts.path.lstrip("/")
    if not parts.netloc or not key:
        raise ValueError("expected s3://BUCKET/KEY")
    store = _store_of(f"s3://{parts.netloc}", endpoint_url)
    try:
        return store.get(key).body
    except NoSuchObject:
        raise ValueError("no such object") from None
    except StoreError as err:
        raise ValueError(str(err)) from None
    finally:
        store.close()


def api_key(args: argparse.Namespace) -> int:
    key, digest = new_api_key()
    print(f"api key (give it to the reader, once): {key}")
    print(f'accounts file line:                  api_key_sha256 = ["{digest}"]')
    return 0


def manifest_key(args: argparse.Namespace) -> int:
    """Write a new Ed25519 private key (never overwriting one), print the public key."""
    from msgarchive_server.domain.manifests.heads import new_key_pem

    private, public = new_key_pem()
    path = Path(args.private_key)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as err:
        print(f"msgarchive: cannot write {path}: {err.strerror}", file=sys.stderr)
        return 1
    with os.fdopen(fd, "wb") as out:
        out.write(private)
    sys.stdout.write(public.decode())
    print(f"private key written to {path}; give verifiers the public key above", file=sys.stderr)
    return 0


def verify(args: argparse.Namespace) -> int:
    """Walk the manifests' chain and reconcile the store: 0 when nothing is wrong."""
    import collections
    import datetime
    import time

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from msgarchive_server.domain.manifests.verify import Progress, Verifier
    from msgarchive_server.stores import Unsupported, versioned

    def hour(text: str | None) -> datetime.datetime | None:
        if text is None:
            return None
        return datetime.datetime.strptime(text, "%Y-%m-%dT%H").replace(tzinfo=datetime.UTC)

    try:
        key = serialization.load_pem_public_key(Path(args.public_key).read_bytes())
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError(f"{args.public_key}: not an Ed25519 public key")
        since, until = hour(args.since), hour(args.until)
        exports_key: Ed25519PublicKey | None = None
        if args.exports_key:
            loaded = serialization.load_pem_public_key(Path(args.exports_key).read_bytes())
            if not isinstance(loaded, Ed25519PublicKey):
                raise ValueError(f"{args.exports_key}: not an Ed25519 public key")
            exports_key = loaded
        trusted = [_trusted_checkpoint(Path(path), key) for path in args.trusted_checkpoint]
        witness_keys = [_witness_key(text) for text in args.witness_key]
        if args.witness_quorum and not 0 < args.witness_quorum <= len(witness_keys):
            raise ValueError("--witness-quorum must be between 1 and the --witness-key count")
        tsa_roots = _tsa_roots(Path(args.tsa_ca)) if args.tsa_ca else None
        if not args.timestamp_max_lag >= 0:
            raise ValueError("--timestamp-max-lag must be 0 hours or more")
        store = versioned(_store_of(args.store, args.s3_endpoint_url), "verify")
    except (OSError, ValueError, Unsupported) as err:
        print(f"msgarchive: error: {err}", file=sys.stderr)
        return 2
    show = sys.stderr.isatty() and not args.json

    def progress(p: Progress) -> None:
        if not show:
            return
        if p.versions == 0:  # the chain: how many heads and entries so far
            line = f"chain: {p.heads} heads, {p.entries} manifest entries"
        else:  # the reconciliation: stored versions against the entries listed
            done = min(p.versions / max(p.entries, 1), 1.0)
            bar = "#" * int(done * 30)
            line = f"store: [{bar:<30}] {p.versions} of about {p.entries} versions"
        print(f"\r{line}", end="", file=sys.stderr, flush=True)

    started, counts = time.monotonic(), collections.Counter[str]()
    verifier = Verifier(
        store, key, deep=args.deep, since=since, until=until, on_progress=progress,
        exports_key=exports_key, trusted=trusted, witness_keys=witness_keys,
        witness_quorum=args.witness_quorum or 0, tsa_roots=tsa_roots,
        timestamp_max_lag=datetime.timedelta(hours=args.timestamp_max_lag),
    )  # fmt: skip
    for finding in verifier.run():
        counts[finding.kind] += 1
        if args.json:
            print(finding.as_json(), flush=True)
        else:
            print(f"{finding.kind:18s} {finding.key}  {finding.detail}", flush=True)
    p = verifier.progress
    summary = ", ".join(f"{kind} {n}" for kind, n in sorted(counts.items())) or "nothing wrong"
    if show:
        print(file=sys.stderr)  # past the progress line
    print(
        f"verified {p.heads} heads, {p.entries} manifest entries and {p.versions} stored "
        f"versions in {time.monotonic() - started:.1f} s: {summary}",
        file=sys.stderr,
    )
    store.close()
    return 1 if counts else 0


def _trusted_checkpoint(path: Path, key: Any) -> Any:
    """A checkpoint the caller kept, as a signed note: it must be one, signed
    by the manifest key under its own origin (ValueError naming the file)."""
    from cryptography.hazmat.primitives import serialization

    from msgarchive_server.domain.manifests import notes

    try:
        note = notes.parse(path.read_text())
        origin = notes.checkpoint_of(note).origin
        raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        if notes.verified(note, notes.Verifier(origin, notes.ED25519, raw)) is None:
            raise notes.NoteError("it carries no signature of the manifest key")
    except (notes.NoteError, UnicodeDecodeError) as err:
        raise ValueError(f"--trusted-checkpoint {path}: {err}") from None
    return note


def _tsa_roots(path: Path) -> Any:
    """The CA certificates --tsa-ca names (ValueError naming the file)."""
    from msgarchive_server.domain.manifests.timestamps import load_roots

    try:
        return load_roots(path.read_bytes())
    except ValueError as err:
        raise ValueError(f"--tsa-ca {path}: not PEM certificates ({err})") from None


def _witness_key(text: str) -> Any:
    """A witness's verifier key (type 0x04) as --witness-key gives it (ValueError)."""
    from msgarchive_server.domain.manifests import notes

    try:
        verifier = notes.parse_vkey(text)
    except notes.NoteError as err:
        raise ValueError(f"--witness-key {err}") from None
    if verifier.kind != notes.COSIGNATURE_V1:
        raise ValueError(f"--witness-key {text!r}: not a cosignature key (type 0x04)")
    return verifier


def _store_of(url: str, endpoint_url: str | None) -> Store:
    """The store at `url`, opened as the sidecar opens it (BadLocation, a
    ValueError, for a malformed URL)."""
    from msgarchive_server.stores import StoreOptions, open_store

    return open_store(url, StoreOptions(endpoint_url=endpoint_url, path_style=bool(endpoint_url)))


def prove(args: argparse.Namespace) -> int:
    """Print the inclusion proof of one copy."""
    import json

    from msgarchive_server.domain.manifests.prove import prove as proof_of
    from msgarchive_server.stores import StoreError

    try:
        store = _store_of(args.store, args.s3_endpoint_url)
    except ValueError as err:
        print(f"msgarchive: error: {err}", file=sys.stderr)
        return 2
    try:
        proof = proof_of(store, args.key)
    except StoreError as err:
        print(f"msgarchive: error: the store did not answer: {err}", file=sys.stderr)
        return 2
    finally:
        store.close()
    if proof is None:
        print(f"msgarchive: no signed manifest lists {args.key}", file=sys.stderr)
        return 1
    print(json.dumps(proof, indent=2))
    return 0


def check_proof(args: argparse.Namespace) -> int:
    """Check an inclusion proof; 0 when it holds."""
    import json

    from msgarchive.proofs import ProofError
    from msgarchive.proofs import check_proof as check

    try:
        text = sys.stdin.read() if args.proof == "-" else Path(args.proof).read_text()
        key = check(json.loads(text), Path(args.public_key).read_bytes())
    except (OSError, ValueError) as err:
        print(f"msgarchive: cannot check the proof: {err}", file=sys.stderr)
        return 2
    except ProofError as err:
        print(f"msgarchive: the proof does not hold: {err}", file=sys.stderr)
        return 1
    print(f"proven: {key} is in the signed manifest")
    return 0


def hold(args: argparse.Namespace) -> int:
    """Place or lift a legal hold on the selected copies, and log it."""
    from msgarchive_server.domain.errors import InvalidLookup
    from msgarchive_server.domain.manifests.heads import Ed25519FileSigner
    from msgarchive_server.domain.manifests.holds import Selection, apply_hold
    from msgarchive_server.domain.reads import recipient_hash
    from msgarchive_server.stores import StoreError, Unsupported, holding

    if args.recipient and not args.channel:
        print("msgarchive: error: --recipient needs --channel", file=sys.stderr)
        return 2
    try:
        signer = Ed25519FileSigner.from_file(Path(args.signing_key))
        hashed = (
            recipient_hash(channels.named(args.channel), args.recipient, "recipient")
            if args.recipient
            else ""
        )
        store = holding(_store_of(args.store, args.s3_endpoint_url), "hold")
    except (OSError, ValueError, InvalidLookup, Unsupported) as err:
        print(f"msgarchive: error: {err}", file=sys.stderr)
        return 2
    selection = Selection(args.campaign_id, args.channel or "", args.month or "", hashed)
    try:
        record, copies = apply_hold(
            store, signer, selection, on=args.action == "on", reason=args.reason
        )
    except StoreError as err:
        print(f"msgarchive: error: the store refused: {err}", file=sys.stderr)
        return 2
    finally:
        store.close()
    for key, version_id in copies:
        print(f"{key} {version_id or '-'}")
    print(f"legal hold {args.action} for {len(copies)} copies; logged as {record}", file=sys.stderr)
    return 0


def search(args: argparse.Namespace) -> int:
    """Find copies across every month and campaign; 0 when done (found or not)."""
    import json

    from msgarchive_server.domain.errors import InvalidLookup
    from msgarchive_server.domain.search import recorded_filters

    try:
        if args.limit < 1:
            raise ValueError("--limit must be at least 1")
        url, account, query, store = _search_target(args)
    except (OSError, ValueError) as err:
        print(f"msgarchive: error: {err}", file=sys.stderr)
        return 2
    try:
        searcher = _searcher(args, url, store)
    except (OSError, ValueError) as err:
        print(f"msgarchive: error: {err}", file=sys.stderr)
        return 2
    try:
        if args.count:
            totals = searcher.count(query)
            count = sum(n for _, _, n in totals)
            _print_totals(totals, as_json=args.json or not sys.stdout.isatty())
        else:
            page = searcher.find(query, args.limit, args.after or "")
            count = len(page.items)
            rows = [found.as_dict() for found in page.items]
            if args.json or not sys.stdout.isatty():
                for row in rows:
                    print(json.dumps(row), flush=True)
            else:
                _print_table(rows)
            if page.next_token:
                print(f"more: --after {page.next_token}", file=sys.stderr)
    except InvalidLookup as err:
        print(f"msgarchive: error: {err.message}", file=sys.stderr)
        return 2
    finally:
        searcher.close()
        store.close()
    filters = recorded_filters(query)
    audit = {"audit": "search", "account": account, "store": url, "filters": filters}
    print(json.dumps({**audit, "source": searcher.source_used, "count": count}), file=sys.stderr)
    return 0


def _search_target(args: argparse.Namespace) -> tuple[str, str, SearchQuery, Store]:
    """What search and export read: the store's URL, whose it is, the query, the
    store opened (ValueError or OSError for bad flags)."""
    url, account = _store_url_of(args)
    query = _query_of(args)
    return url, account, query, _store_of(url, args.s3_endpoint_url)


def _query_of(args: argparse.Namespace) -> SearchQuery:
    from msgarchive_server.domain.search import SearchQuery, instant_ms

    return SearchQuery(
        recipient=args.recipient or "",
        channel=args.channel or "",
        campaign_id=args.campaign_id or "",
        platform=args.platform or "",
        sent_after_ms=instant_ms(args.since, "--since"),
        sent_before_ms=instant_ms(args.until, "--until"),
        message_id=args.message_id or "",
        held=args.held,
    )


def export(args: argparse.Namespace) -> int:
    """Make a production of a search's copies; 0 when it is written."""
    import functools
    import json
    import sqlite3

    from msgarchive_server.domain import subject_access
    from msgarchive_server.domain.errors import InvalidLookup
    from msgarchive_server.domain.manifests.heads import Ed25519FileSigner
    from msgarchive_server.domain.production import ProductionError, produce
    from msgarchive_server.domain.search import Found, recorded_filters
    from msgarchive_server.process.progress import Bar
    from msgarchive_server.stores import StoreError

    try:
        keys = set(Path(args.keys).read_text().split()) if args.keys else None
        signer = Ed25519FileSigner.from_file(Path(args.signing_key))
        manifest_key = Path(args.manifest_key).read_bytes() if args.manifest_key else None
        url, account, query, store = _search_target(args)
    except (OSError, ValueError) as err:
        print(f"msgarchive: error: {err}", file=sys.stderr)
        return 2
    try:
        searcher = _searcher(args, url, store)
    except (OSError, ValueError) as err:
        print(f"msgarchive: error: {err}", file=sys.stderr)
        return 2
    bar = Bar(sys.stderr, "copies")
    try:
        searcher.prepare(query)
        found: Iterable[Found] = searcher.all(query)
        if keys is not None:
            found = [f for f in found if f.key in keys]
            if len({f.key for f in found}) < len(keys):
                missing = sorted(keys - {f.key for f in found})
                raise ProductionError(
                    f"{len(missing)} of the keys are not in the store: {missing[0]}"
                )
        selection = {"filters": recorded_filters(query), "keys": sorted(keys) if keys else None}
        cover: Callable[[Iterable[Found]], str] | None = None
        if args.subject_access:
            if not query.recipient:
                raise ProductionError("--subject-access needs --recipient: the person it is for")
            statements = subject_access.load(Path(args.subject_access))
            cover = functools.partial(subject_access.cover, statements)
        made = produce(
            store, found, Path(args.out), signer,
            selection=selection, source=searcher.source_used, manifests=searcher.manifests,
            manifest_key=manifest_key, as_zip=args.zip, handed_to=args.handed_to or "",
            cover=cover, resume=args.resume, progress=bar.update,
        )  # fmt: skip
    except StoreError as err:
        bar.finish()
        print(f"msgarchive: error: the store refused: {err}{_left(args)}", file=sys.stderr)
        return 2
    except (InvalidLookup, ProductionError, subject_access.CoverError) as err:
        bar.finish()
        print(f"msgarchive: error: {getattr(err, 'message', err)}{_left(args)}", file=sys.stderr)
        return 2
    except (OSError, sqlite3.Error) as err:
        bar.finish()
        why = getattr(err, "strerror", None) or err
        print(f"msgarchive: error: writing {args.out}: {why}{_left(args)}", file=sys.stderr)
        return 2
    finally:
        searcher.close()
        store.close()
    bar.finish()
    resumed = f" (resumed: {made.resumed} were done)" if made.resumed else ""
    print(
        f"produced {made.items} copies ({made.proven} with proofs) in {made.path}{resumed}; "
        f"recorded as {made.record}",
        file=sys.stderr,
    )
    audit = {"audit": "export", "account": account, "store": url, "out": str(made.path)}
    print(json.dumps({**audit, **selection, "count": made.items}), file=sys.stderr)
    return 0


def _left(args: argparse.Namespace) -> str:
    """What a failed export left, and how to go on from it: nothing, or its work."""
    from msgarchive_server.domain.production import work_directory

    work = work_directory(Path(args.out))
    if not work.exists():
        return ""
    return f"; {work} holds what was done: rerun with --resume to finish it (it is no production)"


def check_production(args: argparse.Namespace) -> int:
    """Check a production; 0 when everything in it checks, 1 with findings."""
    from msgarchive.productions import ProductionUnreadable
    from msgarchive.productions import check_production as check

    try:
        findings = check(
            Path(args.production),
            Path(args.public_key).read_bytes(),
            Path(args.manifest_key).read_bytes(),
        )
    except (OSError, ValueError, ProductionUnreadable) as err:
        print(f"msgarchive: cannot check the production: {err}", file=sys.stderr)
        return 2
    for finding in findings:
        print(finding)
    if findings:
        print(f"the production does not check: {len(findings)} findings", file=sys.stderr)
        return 1
    print("the production checks: signed, every file as listed, every item proven")
    return 0


def _store_url_of(args: argparse.Namespace) -> tuple[str, str]:
    """The store a command reads, and whose it is: --store, or --account's of --accounts."""
    if not args.accounts:
        if args.account:
            raise ValueError("--account needs --accounts")
        return args.store, ""
    from msgarchive_server.domain.accounts import Accounts, AccountsFileError

    if not args.account:
        raise ValueError("--accounts needs --account: a search reads one account's store")
    try:
        accounts = Accounts.load(Path(args.accounts))
    except AccountsFileError as err:
        raise ValueError(str(err)) from None
    if args.account not in accounts.accounts:
        raise ValueError(f"--account {args.account!r} is not in {args.accounts}")
    return accounts.accounts[args.account].store, args.account


def _searcher(args: argparse.Namespace, url: str, store: Store) -> Search:
    """The search of `store` that --source and --inventory ask for."""
    from msgarchive_server.domain.search import Search, inventory_files

    cache = _cache_dir(args, url)
    inventory = None
    if args.inventory:
        endpoint = args.s3_endpoint_url
        inventory = inventory_files(
            args.inventory, lambda bucket: _store_of(f"s3://{bucket}", endpoint), cache
        )
    return Search(store, cache, args.source, inventory)


def _cache_dir(args: argparse.Namespace, url: str) -> Path:
    """Where a store's manifests are mirrored: one folder a store."""
    import hashlib

    if args.cache_dir:
        root = Path(args.cache_dir)
    else:
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        root = Path(base) / "msgarchive"
    return root / hashlib.sha256(url.encode()).hexdigest()[:16]


def _print_table(rows: list[dict[str, Any]]) -> None:
    if not rows:
        print("no copies found")
        return
    columns = ("sent_time", "channel", "campaign_id", "message_id", "held", "key")
    cells = [[str(row[c]) if c != "message_id" else str(row[c])[:12] for c in columns]
             for row in rows]  # fmt: skip
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


def _print_totals(totals: list[tuple[str, str, int]], *, as_json: bool) -> None:
    import json

    if as_json:
        for channel, month, n in totals:
            print(json.dumps({"channel": channel, "month": month, "copies": n}))
        return
    print(f"{'channel':10s} {'month':8s} {'copies':>10s}")
    for channel, month, n in totals:
        print(f"{channel:10s} {month:8s} {n:>10d}")
    print(f"{'all':10s} {'':8s} {sum(n for _, _, n in totals):>10d}")
