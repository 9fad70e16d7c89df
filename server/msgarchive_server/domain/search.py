"""Search: every copy of a person, a campaign, a channel or a time, across every
month and campaign.

The key puts the campaign before the recipient, so a store's listing cannot
find a person's copies without reading every campaign's folder. The signed
manifests can: each row names the copy's channel, campaign, user hash, message
id and sent time. A search is one SQL query (`sql/search.sql`, which also runs
in Athena or Trino) over one of two sources:

- `manifests`: every manifest of the store, mirrored into a local directory
  (they are write-once, so a file already mirrored at its size is never read
  again) and read by DuckDB. Copies acknowledged since the last sealed hour are
  not in a manifest yet.
- `inventory`: an S3 Inventory report of the bucket (Parquet, all versions),
  read by DuckDB through `sql/inventory_copies.sql`: the keys give what the
  listing's give, with versions; as old as the report.
- `listing`: the store's own listing of `sent_messages/`, whose keys hold the
  channel, batch month, campaign, user hash and message id; the sent time is
  the store's write time (within milliseconds of `sent_at`, or whole seconds on
  S3), and there are no hashes or versions. Every key is listed: for a
  directory store or a small bucket.

`auto` takes the manifests when the store has any, else the inventory when
one is given, else the listing. Legal-hold
state is the hold log's (`_msgarchive/holds/`): a hold set on an object by
other means is not seen. A search trusts what it reads; `msgarchive verify`
checks the manifests' signatures and the store against them.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime
import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.dataset

from msgarchive import channels
from msgarchive.keys import KEY_ROOT, parse_key, user_hash
from msgarchive.rules import (
    CAMPAIGN_ID_RULE,
    MAX_ID_LENGTH,
    FieldViolation,
    is_campaign_id,
)
from msgarchive_server.domain.errors import InvalidLookup
from msgarchive_server.domain.manifests import parquet
from msgarchive_server.domain.manifests.sealer import MANIFEST_ROOT, part_name
from msgarchive_server.domain.manifests.signed_log import HOLDS_ROOT
from msgarchive_server.domain.payloads import decompress
from msgarchive_server.stores import NoSuchObject, Store, listed

if TYPE_CHECKING:
    import duckdb

_SQL = resources.files("msgarchive_server.domain").joinpath("sql")
SEARCH_SQL = _SQL.joinpath("search.sql").read_text()
CURRENT_HOLDS_SQL = _SQL.joinpath("current_holds.sql").read_text()
INVENTORY_COPIES_SQL = _SQL.joinpath("inventory_copies.sql").read_text()
# Totals by channel and month of the sent time (DuckDB's date functions).
_TOTALS = "SELECT channel, strftime(epoch_ms(sent_at), '%Y-%m') AS month, count(*)"
COUNT_SQL = f"{_TOTALS} FROM ({SEARCH_SQL}) GROUP BY 1, 2 ORDER BY 1, 2"
SOURCES = ("auto", "manifests", "inventory", "listing")
_HOLD_COPIES = pa.schema(
    [
        ("sequence", pa.int64()),
        ("action", pa.string()),
        ("key", pa.string()),
        ("version_id", pa.string()),
    ]
)
MESSAGE_ID = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True, slots=True)
class SearchQuery:
    """What a search selects; every field left empty selects everything."""

    recipient: str = ""  # as a person writes it: an address, a number, an identity
    channel: str = ""  # push, email, sms, whatsapp
    campaign_id: str = ""
    platform: str = ""  # ios, android, web (push); or a channel's own name
    sent_after_ms: int = 0  # inclusive
    sent_before_ms: int = 0  # exclusive
    message_id: str = ""
    held: bool | None = None  # True: under a legal hold; False: not


@dataclass(frozen=True, slots=True)
class Found:
    """One copy a search found."""

    sent_at_ms: int
    channel: str
    campaign_id: str
    message_id: str
    key: str
    version_id: str
    user_hash: str
    sha256: str  # "" from a listing
    size: int
    bucket: str
    held: bool

    @property
    def sent_time(self) -> str:
        instant = datetime.datetime.fromtimestamp(self.sent_at_ms / 1000, datetime.UTC)
        return instant.isoformat(timespec="milliseconds").replace("+00:00", "Z")

    def as_dict(self) -> dict[str, Any]:
        return {
            "sent_time": self.sent_time,
            "channel": self.channel,
            "campaign_id": self.campaign_id,
            "message_id": self.message_id,
            "key": self.key,
            "version_id": self.version_id,
            "user_hash": self.user_hash,
            "sha256": self.sha256,
            "size": self.size,
            "held": self.held,
        }


@dataclass(frozen=True, slots=True)
class Page:
    items: list[Found]
    next_token: str  # "" on the last page
    source: str  # "manifests" or "listing"


def recipient_hashes(recipient: str, channel: str = "") -> list[str]:
    """The user hashes a recipient may be filed under, as a person writes it.

    With a channel, its own rules (InvalidLookup when they refuse it). Without,
    every reading that applies: an identity as written (push), an address
    (email), a number (SMS, WhatsApp); a hash applies to each channel alike.
    """
    field = "recipient"
    if not recipient.strip() or len(recipient) > MAX_ID_LENGTH:
        raise InvalidLookup([FieldViolation(field, f"must be 1 to {MAX_ID_LENGTH} characters")])
    readings = [channels.named(channel)] if channel else list(channels.CHANNELS)
    identities: list[str] = []
    for each in readings:
        identity = each.lookup_identity(recipient)
        if identity is not None and identity not in identities:
            identities.append(identity)
    if not identities:
        rule = readings[0].lookup_rule
        raise InvalidLookup([FieldViolation(field, rule)])
    return [user_hash(identity) for identity in identities]


def check(query: SearchQuery) -> None:
    """InvalidLookup naming every bad field of `query`."""
    found: list[FieldViolation] = []
    if query.channel and query.channel not in channels.NAMES:
        found.append(FieldViolation("channel", f"must be one of {', '.join(channels.NAMES)}"))
    if query.campaign_id and not is_campaign_id(query.campaign_id):
        found.append(FieldViolation("campaign_id", CAMPAIGN_ID_RULE))
    if query.message_id and not MESSAGE_ID.fullmatch(query.message_id):
        found.append(FieldViolation("message_id", "must be 64 lowercase hex digits"))
    if query.platform and query.platform.lower() not in platform_names():
        found.append(FieldViolation("platform", f"must be one of {', '.join(platform_names())}"))
    if query.sent_before_ms and query.sent_after_ms >= query.sent_before_ms:
        found.append(FieldViolation("until", "must be after since"))
    if found:
        raise InvalidLookup(found)


def platform_names() -> list[str]:
    """The platforms a search names: each channel's, or the channel itself."""
    names: list[str] = []
    for channel in channels.CHANNELS:
        names += [p.lower() for p in channel.platforms] or [channel.name]
    return names


# How many rows `Search.all` reads a query at a time.
_ALL_PAGE = 10_000


class Search:
    """Searches one store (one account's, with --accounts)."""

    def __init__(
        self, store: Store, cache: Path, source: str = "auto", inventory: list[Path] | None = None
    ) -> None:
        """`inventory`: the data files of an S3 Inventory report (`inventory_files`)."""
        self.store = store
        self.cache = cache
        if source not in SOURCES:
            raise ValueError(f"source must be one of {', '.join(SOURCES)}")
        if source == "inventory" and not inventory:
            raise ValueError("--source inventory needs --inventory")
        self.source = source
        self.inventory = inventory or []
        self._db: duckdb.DuckDBPyConnection | None = None
        self._used = ""
        # The manifests read, by their keys: where the cache holds each.
        self.manifests: dict[str, Path] = {}

    def find(self, query: SearchQuery, limit: int = 100, after: str = "") -> Page:
        """Up to `limit` copies, in sent time order, after a page's `next_token`."""
        check(query)
        query = _narrowed(query)
        cursor = _read_token(after) if after else None
        db = self._connect()
        result = db.execute(SEARCH_SQL, _parameters(query, cursor))
        items: list[Found] = []
        more = False
        while not more:
            rows = result.fetchmany(max(limit, 100))
            if not rows:
                break
            for row in rows:
                found = Found(*row)
                if not self._platform_agrees(found, query.platform):
                    continue
                if len(items) == limit:
                    more = True
                    break
                items.append(found)
        token = _make_token(items[-1]) if more and items else ""
        return Page(items, token, self._used)

    def prepare(self, query: SearchQuery) -> None:
        """Check `query` and read the sources, so that a refusal comes now and
        `manifests` is filled before the first copy is asked for."""
        check(query)
        if query.recipient:
            recipient_hashes(query.recipient, query.channel)
        self._connect()

    def all(self, query: SearchQuery) -> Iterator[Found]:
        """Every copy the query selects, in order, a page of `_ALL_PAGE` at a
        time: each page is the query again after the last row (LIMIT, so DuckDB
        keeps the top rows, not the whole sorted selection: memory stays flat
        however many copies a production takes)."""
        check(query)
        query = _narrowed(query)
        db = self._connect()
        cursor: tuple[int, str] | None = None
        while True:
            page = f"{SEARCH_SQL.rstrip().removesuffix(';')}\nLIMIT {_ALL_PAGE}"
            rows = db.execute(page, _parameters(query, cursor)).fetchall()
            for row in rows:
                found = Found(*row)
                if self._platform_agrees(found, query.platform):
                    yield found
            if len(rows) < _ALL_PAGE:
                return
            last = Found(*rows[-1])
            cursor = (last.sent_at_ms, last.key)

    def count(self, query: SearchQuery) -> list[tuple[str, str, int]]:
        """(channel, yyyy-mm of the sent time, copies), by channel and month."""
        if query.platform:
            counted: dict[tuple[str, str], int] = {}
            for found in self.all(query):
                month = found.sent_time[:7]
                counted[found.channel, month] = counted.get((found.channel, month), 0) + 1
            return [(c, m, n) for (c, m), n in sorted(counted.items())]
        check(query)
        db = self._connect()
        rows = db.execute(COUNT_SQL, _parameters(_narrowed(query), None)).fetchall()
        return [(str(c), str(m), int(n)) for c, m, n in rows]

    @property
    def source_used(self) -> str:
        return self._used

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    # --- sources ---------------------------------------------------------------

    def _connect(self) -> duckdb.DuckDBPyConnection:
        if self._db is not None:
            return self._db
        import duckdb

        manifests = self._manifest_files() if self.source in ("auto", "manifests") else []
        if manifests or self.source == "manifests":
            self._used = "manifests"
            db = self._manifest_table(manifests)
        elif self.inventory and self.source in ("auto", "inventory"):
            self._used = "inventory"
            db = duckdb.connect()
            paths = [str(p) for p in self.inventory]
            db.register("inventory", pyarrow.dataset.dataset(paths, format="parquet"))
            # The package's own query; the store's values are parameters.
            copies = f"SELECT * EXCLUDE (prefix) FROM ({INVENTORY_COPIES_SQL})"  # noqa: S608
            db.execute(
                f"CREATE TABLE manifests AS {copies} WHERE prefix = ? AND bucket = ?",
                [self.store.prefix, self.store.bucket],
            )
        else:
            self._used = "listing"
            db = duckdb.connect()
            db.register("manifests", self._listing())
        db.register("hold_copies", self._hold_copies())
        db.execute(f"CREATE OR REPLACE TEMP VIEW current_holds AS {CURRENT_HOLDS_SQL}")
        self._db = db
        return db

    def _manifest_table(self, files: list[Path]) -> duckdb.DuckDBPyConnection:
        """The manifests' rows as one DuckDB table, kept in the cache beside the
        files (`search.duckdb`): a manifest is loaded into it once, and a search
        reads a table, not hundreds of files. A cache another search holds open
        (DuckDB locks its file) is read from the files instead."""
        import duckdb

        paths = [str(p) for p in files]
        try:
            self.cache.mkdir(parents=True, exist_ok=True)
            db = duckdb.connect(str(self.cache / "search.duckdb"))
        except duckdb.IOException:
            db = duckdb.connect()
            db.register(
                "manifests",
                pyarrow.dataset.dataset(paths, format="parquet")
                if paths
                else parquet.SCHEMA.empty_table(),
            )
            return db
        sizes = {path: path.stat().st_size for path in files}
        db.execute("CREATE TABLE IF NOT EXISTS loaded (path VARCHAR PRIMARY KEY, size BIGINT)")
        loaded = dict(db.execute("SELECT path, size FROM loaded").fetchall())
        if any(sizes.get(Path(path)) != size for path, size in loaded.items()):
            # A manifest gone or changed (manifests are written once): start again.
            db.execute("DROP TABLE IF EXISTS manifests")
            db.execute("DELETE FROM loaded")
            loaded = {}
        db.register("empty_manifests", parquet.SCHEMA.empty_table())
        db.execute("CREATE TABLE IF NOT EXISTS manifests AS SELECT * FROM empty_manifests")
        new = [str(path) for path in files if str(path) not in loaded]
        if new:
            db.execute("BEGIN TRANSACTION")
            db.execute("INSERT INTO manifests BY NAME SELECT * FROM read_parquet(?)", [new])
            db.executemany(
                "INSERT INTO loaded VALUES (?, ?)", [(path, sizes[Path(path)]) for path in new]
            )
            db.execute("COMMIT")
        return db

    def _manifest_files(self) -> list[Path]:
        """The store's manifests, mirrored into the cache: each read once."""
        root = f"{self.store.prefix}{MANIFEST_ROOT}/"
        paths = []
        for item in listed(self.store, root):
            named = part_name(item.key.rsplit("/", 1)[-1])
            if named is None or named[0] != "manifest":
                continue
            path = self.cache / item.key[len(root) :]
            if not (path.exists() and path.stat().st_size == item.size):
                _write_atomically(path, self.store.get(item.key).body)
            paths.append(path)
            self.manifests[item.key] = path
        return paths

    def _listing(self) -> pa.Table:
        """The store's copies as manifest rows, from their keys alone."""
        columns: dict[str, list[Any]] = {name: [] for name in parquet.SCHEMA.names}
        for item in listed(self.store, f"{self.store.prefix}{KEY_ROOT}/"):
            parts = parse_key(item.key)
            if parts is None or parts.prefix != self.store.prefix:
                continue
            row = {
                "bucket": self.store.bucket,
                "key": item.key,
                "version_id": "",
                "size": item.size,
                "e_tag": item.etag,
                "sha256": "",
                "message_id": parts.message_id,
                "channel": parts.channel,
                "campaign_id": parts.campaign_id,
                "user_hash": parts.user_hash,
                "sent_at": item.stored_at_ms,
                "object_lock_mode": "",
                parquet.UNTIL: None,
                "acknowledged_at": item.stored_at_ms,
            }
            for name, value in row.items():
                columns[name].append(value)
        return pa.Table.from_pydict(columns, schema=parquet.SCHEMA)

    def _hold_copies(self) -> pa.Table:
        """One row for each copy each record of the hold log names."""
        rows: dict[str, list[Any]] = {name: [] for name in _HOLD_COPIES.names}
        for item in listed(self.store, f"{self.store.prefix}{HOLDS_ROOT}/"):
            record = json.loads(self.store.get(item.key).body)
            for copy in record.get("copies", []):
                rows["sequence"].append(int(record["sequence"]))
                rows["action"].append(str(record.get("action", "")))
                rows["key"].append(str(copy["key"]))
                rows["version_id"].append(str(copy["version_id"]))
        return pa.Table.from_pydict(rows, schema=_HOLD_COPIES)

    def _platform_agrees(self, found: Found, platform: str) -> bool:
        if not platform:
            return True
        channel = channels.named(found.channel)
        if not channel.platforms:
            return platform.lower() == channel.name
        try:
            stored = self.store.get(found.key).body
        except NoSuchObject:
            return False
        fields = json.loads(decompress(stored))
        return str(fields.get("platform", "")).lower() == platform.lower()


def inventory_files(url: str, open_bucket: Callable[[str], Store], cache: Path) -> list[Path]:
    """The data files of an S3 Inventory report, local: `url` is the report's
    manifest.json on S3 (its files are mirrored into `cache`, each read once),
    or a Parquet file or a folder of them. ValueError when it is neither, or
    when the report is not Parquet."""
    if not url.startswith("s3://"):
        path = Path(url)
        found = sorted(path.rglob("*.parquet")) if path.is_dir() else [path]
        if not all(p.is_file() and p.suffix == ".parquet" for p in found) or not found:
            raise ValueError(f"--inventory {url}: no Parquet files there")
        return found
    bucket, _, key = url.removeprefix("s3://").partition("/")
    report = open_bucket(bucket)
    try:
        manifest = json.loads(report.get(key).body)
    except NoSuchObject:
        raise ValueError(f"--inventory {url}: no such report manifest") from None
    finally:
        report.close()
    if str(manifest.get("fileFormat", "")).lower() != "parquet":
        raise ValueError(
            f"--inventory {url}: a {manifest.get('fileFormat')} report; only Parquet ones are read"
        )
    destination = str(manifest.get("destinationBucket", bucket)).removeprefix("arn:aws:s3:::")
    files = open_bucket(destination)
    paths = []
    try:
        for entry in manifest.get("files", []):
            path = cache / "inventory" / str(entry["key"])
            if not (path.exists() and path.stat().st_size == int(entry.get("size", -1))):
                _write_atomically(path, files.get(str(entry["key"])).body)
            paths.append(path)
    finally:
        files.close()
    return paths


def _narrowed(query: SearchQuery) -> SearchQuery:
    """A platform names its channel: search that channel only."""
    if not query.platform or query.channel:
        return query
    for channel in channels.CHANNELS:
        if query.platform.lower() in [p.lower() for p in channel.platforms] or (
            query.platform.lower() == channel.name
        ):
            return dataclasses.replace(query, channel=channel.name)
    return query


def _parameters(query: SearchQuery, cursor: tuple[int, str] | None) -> list[Any]:
    hashes: list[str | None] = []
    if query.recipient:
        hashes = list(recipient_hashes(query.recipient, query.channel))
    hashes += [None] * (3 - len(hashes))
    return [
        query.channel or None,
        query.campaign_id or None,
        query.message_id or None,
        *hashes[:3],
        query.sent_after_ms or None,
        query.sent_before_ms or None,
        query.held,
        cursor[0] if cursor else None,
        cursor[1] if cursor else None,
        bool(query.recipient),
    ]


def _write_atomically(path: Path, body: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.part")
    partial.write_bytes(body)
    partial.replace(path)


def _make_token(last: Found) -> str:
    raw = json.dumps([last.sent_at_ms, last.key], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _read_token(token: str) -> tuple[int, str]:
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (ValueError, binascii.Error):
        data = None
    if not (
        isinstance(data, list)
        and len(data) == 2
        and type(data[0]) is int
        and isinstance(data[1], str)
    ):
        raise InvalidLookup([FieldViolation("after", "is not a token a search handed out")])
    return data[0], data[1]


def recorded_filters(query: SearchQuery) -> dict[str, Any]:
    """A query as an audit line or a production records it: the filters given,
    the person as the key files them (their user hashes), never as written."""
    filters: dict[str, Any] = {
        name: value
        for name, value in (
            ("campaign_id", query.campaign_id),
            ("channel", query.channel),
            ("platform", query.platform),
            ("sent_after_ms", query.sent_after_ms),
            ("sent_before_ms", query.sent_before_ms),
            ("message_id", query.message_id),
        )
        if value
    }
    if query.held is not None:
        filters["held"] = query.held
    if query.recipient:
        filters["recipient_user_hashes"] = recipient_hashes(query.recipient, query.channel)
    return filters


def instant_ms(text: str | None, name: str) -> int:
    """Epoch milliseconds of a date (midnight UTC) or an ISO 8601 time (UTC if
    bare); 0 for none. ValueError naming `name` (the flag or field) otherwise."""
    if not text or not text.strip():
        return 0
    try:
        instant = datetime.datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"{name} {text!r}: expected a date (2026-11-01) or ISO 8601 time"
        ) from None
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=datetime.UTC)
    return int(instant.timestamp() * 1000)
