"""`msgarchive verify`: the chain of signed heads, then the store against the manifests.

1. Chains. For every writer under `<prefix>_msgarchive/manifests/`, the heads
   are read hour by hour, and part by part within an hour: each must verify
   under the public key and link to the one before it (key, SHA-256 and
   signature); hours between two heads, and parts before a later part, are
   missing; each head's manifest must have the SHA-256, row count and Merkle
   root (RFC 6962) the head states.
   The hold log (`_msgarchive/holds/`) is checked the same way.
2. Reconciliation. Every manifest entry goes into a temporary SQLite index on
   disk (bounded memory at millions of copies), and every version under
   `<prefix>sent_messages/` is streamed from the store's version listing, in
   key order, against it: copies **missing** (their version is gone, or a
   delete marker hides them), **altered** (the etag differs, or other versions
   were written over them; with `deep`, the bytes' SHA-256 or their
   message_id), **unlisted** (an object no manifest lists), and
   **under-locked** (a weaker Object Lock mode, or a retain-until date before
   the one acknowledged).

Each problem is one `Finding`; none means the store and its manifests agree.
"""

from __future__ import annotations

import base64
import collections
import datetime
import hashlib
import itertools
import json
import re
import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from msgarchive.keys import KEY_ROOT, parse_key
from msgarchive_server.domain.manifests import merkle, notes, parquet, signed_log, timestamps
from msgarchive_server.domain.manifests.entries import leaf_of
from msgarchive_server.domain.manifests.headlog import checkpoint_key
from msgarchive_server.domain.manifests.heads import verify as verify_head
from msgarchive_server.domain.manifests.holds import verify_log
from msgarchive_server.domain.manifests.sealer import (
    MANIFEST_ROOT,
    hour_keys,
    origin_of,
    part_name,
)
from msgarchive_server.domain.manifests.signed_log import EXPORTS_ROOT
from msgarchive_server.domain.manifests.timestamps import timestamp_key
from msgarchive_server.domain.manifests.witnesses import cosigned_key
from msgarchive_server.domain.payloads import decompress
from msgarchive_server.stores import (
    NoSuchObject,
    StoredObject,
    VersionedStore,
    VersionSummary,
    listed,
)
from msgarchive_server.stores.base import RETENTION_MODES

HOUR = datetime.timedelta(hours=1)
# How long after an hour ends its checkpoint's first timestamp may come
# (sealing runs minutes after the hour; a TSA outage delays it).
DEFAULT_TIMESTAMP_LAG = datetime.timedelta(hours=24)
LISTING_THREADS = 4
# Reads of copies (a lock to check, or with --deep the bytes) at once, and how
# many keys ahead of the one reported they may run.
READ_THREADS = 16
READ_WINDOW = 128
# Listed keys looked up in the manifests' index at once.
LOOKUPS = 256
_HOUR_KEY = re.compile(r"(?P<writer>[^/]+)/(?P<hour>\d{4}/\d{2}/\d{2}/\d{2})/(?P<name>[^/]+)")


@dataclass(frozen=True, slots=True)
class Finding:
    kind: str  # see KINDS
    key: str  # the copy's key, or the head's or manifest's
    detail: str

    def as_json(self) -> str:
        return json.dumps({"kind": self.kind, "key": self.key, "detail": self.detail})


KINDS = (
    "head_unsigned",
    "hold_log_broken",
    "export_log_broken",
    "chain_broken",
    "hour_missing",
    "checkpoint_missing",
    "checkpoint_invalid",
    "checkpoint_inconsistent",
    "checkpoint_unwitnessed",
    "timestamp_missing",
    "timestamp_invalid",
    "timestamp_late",
    "manifest_altered",
    "copy_missing",
    "copy_altered",
    "copy_unlisted",
    "copy_under_locked",
)


@dataclass
class Progress:
    heads: int = 0
    entries: int = 0
    versions: int = 0


class Verifier:
    def __init__(
        self,
        store: VersionedStore,
        public_key: Ed25519PublicKey,
        *,
        deep: bool = False,
        since: datetime.datetime | None = None,
        until: datetime.datetime | None = None,
        on_progress: Callable[[Progress], None] = lambda progress: None,
        exports_key: Ed25519PublicKey | None = None,
        trusted: list[notes.Note] | None = None,
        witness_keys: list[notes.Verifier] | None = None,
        witness_quorum: int = 0,
        tsa_roots: list[x509.Certificate] | None = None,
        timestamp_max_lag: datetime.timedelta = DEFAULT_TIMESTAMP_LAG,
    ) -> None:
        """`since` and `until` bound the hours checked (both included); without
        them, everything is. Within a range, the copies its manifests list are
        reconciled, and no object is called unlisted (other hours list it).
        With `exports_key` (the exporting team's), the export log is checked too.
        `trusted`: checkpoints the caller kept (signed notes); each writer's log
        must still give each its root at its size. `tsa_roots`: the CAs a
        checkpoint's timestamp token must chain to; each token must then date
        its checkpoint after its hour began, and within `timestamp_max_lag` of
        the end of every hour it is the first token over."""
        self.store = store
        self.public_key = public_key
        self.trusted = list(trusted or [])
        self.witness_keys = list(witness_keys or [])
        # How many of the witness keys must have cosigned the newest checkpoint.
        self.witness_quorum = witness_quorum or len(self.witness_keys)
        self.tsa_roots = tsa_roots
        self.timestamp_max_lag = timestamp_max_lag
        self.exports_key = exports_key
        self.deep = deep
        self.since = since
        self.until = until
        self.progress = Progress()
        self._on_progress = on_progress

    def run(self) -> Iterator[Finding]:
        with tempfile.TemporaryDirectory(prefix="msgarchive-verify-") as workdir:
            index = sqlite3.connect(Path(workdir) / "entries.db")
            # A scratch file: nothing to recover after a crash, so no journal
            # and no syncs; one B-tree by key (WITHOUT ROWID) for the lookups.
            index.execute("PRAGMA journal_mode = OFF")
            index.execute("PRAGMA synchronous = OFF")
            index.execute(
                "CREATE TABLE entry (key TEXT, version_id TEXT, e_tag TEXT, sha256 TEXT,"
                " mode TEXT, retain_until INTEGER, message_id TEXT, seen INTEGER DEFAULT 0,"
                " PRIMARY KEY (key, version_id)) WITHOUT ROWID"
            )
            try:
                yield from self._chains(index)
                for key, problem in verify_log(self.store, self.public_key):
                    yield Finding("hold_log_broken", key, problem)
                if self.exports_key is not None:
                    chain = signed_log.verify_chain(self.store, EXPORTS_ROOT, self.exports_key)
                    for key, problem in chain:
                        yield Finding("export_log_broken", key, problem)
                yield from self._reconcile(index)
            finally:
                index.close()

    # --- chains --------------------------------------------------------------

    def _chains(self, index: sqlite3.Connection) -> Iterator[Finding]:
        root = f"{self.store.prefix}{MANIFEST_ROOT}/"
        # writer -> hour -> part -> the names found ("head", "manifest")
        found: dict[str, dict[datetime.datetime, dict[int, set[str]]]] = {}
        for key in self._keys(root):
            match = _HOUR_KEY.fullmatch(key[len(root) :])
            named = part_name(match["name"]) if match else None
            if match is None or named is None:
                continue
            hour = datetime.datetime.strptime(match["hour"], "%Y/%m/%d/%H").replace(
                tzinfo=datetime.UTC
            )
            parts = found.setdefault(match["writer"], {}).setdefault(hour, {})
            parts.setdefault(named[1], set()).add(named[0])
        origins = set()
        for writer, sealed in sorted(found.items()):
            origins.add(origin_of(self.store.bucket, self.store.prefix, writer))
            yield from self._chain(index, writer, sealed)
        for note in self.trusted:
            origin = notes.checkpoint_of(note).origin
            if origin not in origins:
                what = "a trusted checkpoint names a log this store does not hold"
                yield Finding("checkpoint_inconsistent", origin, what)

    def _chain(
        self,
        index: sqlite3.Connection,
        writer: str,
        sealed: dict[datetime.datetime, dict[int, set[str]]],
    ) -> Iterator[Finding]:
        """One writer's heads in order, hour by hour and part by part."""
        prefix = self.store.prefix
        previous: tuple[str, str, str] | None = None  # key, sha256, signature
        expected_hour: datetime.datetime | None = None
        log = _Log(self, origin_of(self.store.bucket, prefix, writer))
        for hour in sorted(sealed):
            if (self.since and hour < self.since) or (self.until and hour > self.until):
                continue
            if expected_hour is not None:
                while expected_hour < hour:
                    folder = hour_keys(prefix, writer, expected_hour)[1].rsplit("/", 1)[0]
                    yield Finding("hour_missing", folder + "/",
                                  "no head for this hour between two sealed ones")  # fmt: skip
                    expected_hour += HOUR
            expected_hour = hour + HOUR
            parts = sealed[hour]
            for part in range(1, max(parts) + 1):
                manifest_key, head_key = hour_keys(prefix, writer, hour, part)
                if "head" not in parts.get(part, set()):
                    what = "the hour has a manifest but no head" if part in parts else (
                        f"part {part} of the hour has no head, though a later part has one"
                    )  # fmt: skip
                    yield Finding("hour_missing", head_key, what)
                    previous = None
                    continue
                stored = self.store.get(head_key).body
                self.progress.heads += 1
                fields = verify_head(stored, self.public_key)
                if fields is None:
                    yield Finding("head_unsigned", head_key, "its signature does not verify")
                    previous = None
                    continue
                if fields.get("part", 1) != part:
                    yield Finding("chain_broken", head_key, f"it is not part {part} of its hour")
                link = fields.get("previous")
                if previous is not None:
                    expected = {"key": previous[0], "sha256": previous[1], "signature": previous[2]}
                    if link != expected:
                        yield Finding(
                            "chain_broken", head_key, "it does not link to the head before"
                        )
                elif (
                    link is not None
                    and self.since is None
                    and link.get("key") not in _head_keys(prefix, writer, sealed)
                ):
                    yield Finding(
                        "chain_broken", head_key, f"it links to {link.get('key')}, not found"
                    )
                previous = (head_key, hashlib.sha256(stored).hexdigest(), str(fields["signature"]))
                yield from self._manifest(index, fields, manifest_key)
                yield from log.head(head_key, stored, hour)
                self._on_progress(self.progress)
        yield from log.end()

    def _manifest(
        self, index: sqlite3.Connection, head: dict[str, Any], key: str
    ) -> Iterator[Finding]:
        try:
            data = self.store.get(key).body
        except NoSuchObject:
            yield Finding("manifest_altered", key, "the manifest the head names is gone")
            return
        if hashlib.sha256(data).hexdigest() != head["manifest"]["sha256"]:
            yield Finding("manifest_altered", key, "its SHA-256 differs from the head's")
            return
        # Into the index a batch of rows at a time, kept only if the whole
        # manifest gives the head's root.
        index.execute("SAVEPOINT manifest")
        leaves: list[bytes] = []
        for rows in parquet.rows(data):
            leaves += [merkle.leaf_hash(leaf_of(row)) for row in rows]
            index.executemany(
                "INSERT OR IGNORE INTO entry (key, version_id, e_tag, sha256, mode,"
                " retain_until, message_id) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        row["key"],
                        row["version_id"],
                        row["e_tag"],
                        row["sha256"],
                        row["object_lock_mode"],
                        row["object_lock_retain_until_date"],
                        row["message_id"],
                    )
                    for row in rows
                ],
            )
        if len(leaves) != head["count"] or merkle.root(leaves).hex() != head["merkle_root"]:
            index.execute("ROLLBACK TO manifest")
            index.execute("RELEASE manifest")
            yield Finding("manifest_altered", key, "its entries do not give the head's root")
            return
        index.execute("RELEASE manifest")
        self.progress.entries += len(leaves)

    def _keys(self, prefix: str) -> Iterator[str]:
        return (item.key for item in listed(self.store, prefix))

    # --- reconciliation ---------------------------------------------------------

    def _reconcile(self, index: sqlite3.Connection) -> Iterator[Finding]:
        copies = f"{self.store.prefix}{KEY_ROOT}/"
        # One folder a channel: listed at once, the store's answers are the
        # most of verify's time.
        listing = self.store.versions(copies, parallel=LISTING_THREADS)
        # The reads a check needs (the lock, or with --deep the bytes) run on
        # a pool, up to READ_WINDOW keys ahead; findings come out in key order.
        ahead: collections.deque[tuple[str, list[tuple[str, Any]], dict[str, Future[Any]]]]
        ahead = collections.deque()
        keys = itertools.groupby(listing, lambda v: v.key)
        with ThreadPoolExecutor(READ_THREADS, thread_name_prefix="verify-read") as pool:
            while batch := [(key, list(group)) for key, group in itertools.islice(keys, LOOKUPS)]:
                entries = self._entries_of(index, [key for key, _ in batch])
                for key, versions in batch:
                    self.progress.versions += len(versions)
                    if self.progress.versions % 1000 < len(versions):
                        self._on_progress(self.progress)
                    listed = entries.get(key)
                    if not listed:
                        if self.since is None and self.until is None:
                            finding = Finding("copy_unlisted", key, "no manifest lists this object")
                            ahead.append((key, [("", finding)], {}))
                    else:
                        checks = list(self._compare(key, versions, listed))
                        reads = {
                            version_id: pool.submit(self._read, key, version_id, bool(what[3]))
                            for version_id, what in checks
                            if not isinstance(what, Finding)
                        }
                        ahead.append((key, checks, reads))
                    while len(ahead) > READ_WINDOW:
                        yield from self._finish(*ahead.popleft())
            while ahead:
                yield from self._finish(*ahead.popleft())
        for key, version_id in index.execute(
            "SELECT key, version_id FROM entry WHERE seen = 0 ORDER BY key"
        ):
            yield Finding("copy_missing", key, f"version {version_id or '-'} is not in the store")

    @staticmethod
    def _entries_of(index: sqlite3.Connection, keys: list[str]) -> dict[str, list[Any]]:
        """The index's rows of each of `keys` (by key, in version order), now
        marked seen: one query for the lot, not one a key."""
        marks = ",".join("?" * len(keys))  # placeholders only: the keys are parameters
        columns = "key, version_id, e_tag, sha256, mode, retain_until, message_id"
        select = f"SELECT {columns} FROM entry WHERE key IN ({marks}) ORDER BY key, version_id"  # noqa: S608
        rows = index.execute(select, keys)
        found: dict[str, list[Any]] = {}
        for row in rows:
            found.setdefault(row[0], []).append(row[1:])
        index.execute(f"UPDATE entry SET seen = 1 WHERE key IN ({marks})", keys)  # noqa: S608
        return found

    def _read(self, key: str, version_id: str, locked: bool) -> StoredObject | bytes:
        """What a check of one version needs: its lock (and bytes), or its bytes alone."""
        if locked:
            return self.store.get_version(key, version_id)
        return self.store.read(key, version_id)

    def _compare(
        self, key: str, versions: list[VersionSummary], listed: list[tuple[Any, ...]]
    ) -> Iterator[tuple[str, Any]]:
        """The checks of one key that need no read, in order: (version_id,
        a finding) for each, and (version_id, the listed row) where a read
        must decide; ("", finding) for the key as a whole."""
        if versions and versions[0].is_latest and versions[0].is_delete_marker:
            yield "", Finding("copy_missing", key, "a delete marker hides it")
        by_id = {v.version_id: v for v in versions if not v.is_delete_marker}
        known = {row[0] for row in listed}
        for row in listed:
            version_id, e_tag = row[0], row[1]
            found = by_id.get(version_id)
            if found is None:
                yield (
                    version_id,
                    Finding("copy_missing", key, f"version {version_id or '-'} is gone"),
                )
                continue
            if found.etag != e_tag:
                yield (
                    version_id,
                    Finding("copy_altered", key, "its etag differs from the manifest's"),
                )
                continue
            if row[3] or self.deep:
                yield version_id, row
        for version_id in sorted(set(by_id) - known):
            yield "", Finding("copy_altered", key, f"version {version_id} was written over it")

    def _finish(
        self, key: str, checks: list[tuple[str, Any]], reads: dict[str, Future[Any]]
    ) -> Iterator[Finding]:
        """One key's findings, in order, once the reads its checks need are in."""
        for version_id, what in checks:
            if isinstance(what, Finding):
                yield what
                continue
            _, _, sha256, mode, retain_until, message_id = what
            try:
                got = reads[version_id].result()
            except NoSuchObject:  # listed, then gone before it was read
                yield Finding("copy_missing", key, f"version {version_id or '-'} is gone")
                continue
            if isinstance(got, bytes):
                body = got
            else:
                body = got.body
                if mode and _under_locked(got, mode, retain_until):
                    yield Finding(
                        "copy_under_locked", key,
                        f"locked {got.retention_mode or 'not at all'} until "
                        f"{got.retain_until_ms}; the ack said {mode} until {retain_until}",
                    )  # fmt: skip
            if self.deep:
                yield from _deep(key, body, sha256, message_id)


def _under_locked(stored: StoredObject, mode: str, retain_until: int) -> bool:
    if stored.retention_mode not in RETENTION_MODES:
        return True
    weaker = RETENTION_MODES.index(stored.retention_mode) < RETENTION_MODES.index(mode)
    return weaker or stored.retain_until_ms < retain_until


def _deep(key: str, body: bytes, sha256: str, message_id: str) -> Iterator[Finding]:
    if hashlib.sha256(body).hexdigest() != sha256:
        yield Finding("copy_altered", key, "its bytes' SHA-256 differs from the manifest's")
        return
    parts = parse_key(key)
    try:
        fields = json.loads(decompress(body))
        ok = fields.get("message_id") == message_id == (parts.message_id if parts else None)
    except (ValueError, RuntimeError, AttributeError):
        ok = False
    if not ok:
        yield Finding("copy_altered", key, "it is not the JSON copy of the message its key names")


class _Log:
    """One writer's log as verify rebuilds it from the heads it reads, in order:
    each checkpoint beside a head must be signed with the manifest key and
    state the log's size and root at that head, and every trusted checkpoint
    must be the log's root at its size (else the chain was rewritten since)."""

    def __init__(self, verifier: Verifier, origin: str) -> None:
        from cryptography.hazmat.primitives import serialization

        self.verifier = verifier
        self.origin = origin
        raw = verifier.public_key.public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self.key = notes.Verifier(origin, notes.ED25519, raw)
        self.frontier = merkle.Frontier()
        self.started = False  # a checkpoint was seen: every later head has one
        # Checks made only over the whole chain (a range skips heads the log counts).
        self.whole = verifier.since is None and verifier.until is None
        self.trusted = {
            c.size: c for c in map(notes.checkpoint_of, verifier.trusted) if c.origin == origin
        }
        self.newest = ""  # the newest checkpoint's key
        self.newest_cosigners: list[str] = []
        self.witnessed = 0  # the size of the newest checkpoint with a quorum of cosignatures
        self.last_checkpoint = ""
        self.stamped = False  # a token was seen
        # The hours of the heads since the last good token: the next must date them.
        self.unstamped: list[datetime.datetime] = []

    def head(self, head_key: str, stored: bytes, hour: datetime.datetime) -> Iterator[Finding]:
        self.frontier.append(merkle.leaf_hash(stored))
        if not self.whole:
            return
        expected = notes.Checkpoint(self.origin, self.frontier.size, self.frontier.root())
        trusted = self.trusted.pop(expected.size, None)
        if trusted is not None and trusted != expected:
            yield Finding(
                "checkpoint_inconsistent", head_key,
                f"a trusted checkpoint of {expected.size} heads has another root: the chain "
                "was rewritten after it",
            )  # fmt: skip
        key = checkpoint_key(head_key)
        try:
            body = self.verifier.store.get(key).body
        except NoSuchObject:
            if self.started:
                yield Finding("checkpoint_missing", key, "the head has no checkpoint beside it")
            self.unstamped.append(hour)  # a later checkpoint's token must date it
            return
        self.started = True
        self.last_checkpoint = key
        try:
            note = notes.parse(body.decode("utf-8", "replace"))
            found = notes.checkpoint_of(note)
            if notes.verified(note, self.key) is None:
                raise notes.NoteError("it carries no signature of the manifest key")
        except notes.NoteError as err:
            yield Finding("checkpoint_invalid", key, str(err))
            self.unstamped.append(hour)
            return
        if self.verifier.tsa_roots is not None:
            yield from self._timestamp(key, body, hour)
        if found != expected:
            yield Finding(
                "checkpoint_inconsistent", key,
                f"it states {found.size} heads with root {base64.b64encode(found.root).decode()}"
                f"; the heads give {expected.size} with {base64.b64encode(expected.root).decode()}",
            )  # fmt: skip
        if self.verifier.witness_keys:
            self.newest, self.newest_cosigners = key, self._cosigners(key, expected)
            if len(self.newest_cosigners) >= self.verifier.witness_quorum:
                self.witnessed = expected.size

    def _timestamp(self, key: str, checkpoint: bytes, hour: datetime.datetime) -> Iterator[Finding]:
        """The checkpoint's token: it must check, date the checkpoint after its
        hour began, and come within the allowed lag of the end of the oldest
        hour it is the first good token over (every head is dated by the first
        good token over its checkpoint or a later one)."""
        token_key = timestamp_key(key)
        try:
            reply = self.verifier.store.get(token_key).body
        except NoSuchObject:
            self.unstamped.append(hour)
            return
        self.stamped = True
        try:
            token = timestamps.read_reply(reply, checkpoint, roots=self.verifier.tsa_roots)
            if token.time < hour:
                raise timestamps.TimestampError(
                    f"its time, {_utc(token.time)}, is before the hour it seals began"
                )
        except timestamps.TimestampError as err:
            yield Finding("timestamp_invalid", token_key, str(err))
            self.unstamped.append(hour)
            return
        oldest = min([*self.unstamped, hour])
        self.unstamped = []
        lag = token.time - (oldest + HOUR)
        allowed = self.verifier.timestamp_max_lag
        if lag > allowed:
            yield Finding(
                "timestamp_late", token_key,
                f"its time, {_utc(token.time)}, is {_hours(lag)} after the hour {_utc(oldest)} "
                f"ended, more than the {_hours(allowed)} allowed: it dates that hour only from "
                "then, and the hours it is the first token over could have been rewritten "
                "before it",
            )  # fmt: skip

    def _cosigners(self, key: str, expected: notes.Checkpoint) -> list[str]:
        """The witnesses whose cosignature of `expected` is stored beside it."""
        try:
            text = self.verifier.store.get(cosigned_key(key)).body.decode("utf-8", "replace")
            note = notes.parse(text)
        except (NoSuchObject, notes.NoteError):
            return []
        if note.text != expected.text():
            return []
        names = []
        for witness in self.verifier.witness_keys:
            try:
                if notes.verified(note, witness) is not None:
                    names.append(witness.name)
            except notes.NoteError:
                continue  # a cosignature that does not verify counts for nothing
        return names

    def end(self) -> Iterator[Finding]:
        if not self.whole:
            return
        quorum = self.verifier.witness_quorum
        if self.newest and len(self.newest_cosigners) < quorum:
            since = f" since {self.witnessed} heads" if self.witnessed else ""
            yield Finding(
                "checkpoint_unwitnessed", self.newest,
                f"{len(self.newest_cosigners)} of the witnesses cosigned it "
                f"({', '.join(self.newest_cosigners) or 'none'}), {quorum} needed; the log has "
                f"{self.frontier.size - self.witnessed} heads no quorum has cosigned{since}",
            )  # fmt: skip
        if self.verifier.tsa_roots is not None and self.last_checkpoint:
            if not self.stamped:
                yield Finding("timestamp_missing", self.last_checkpoint,
                              "no checkpoint of the log carries a timestamp token")  # fmt: skip
            elif self.unstamped:
                yield Finding(
                    "timestamp_missing", self.last_checkpoint,
                    f"{len(self.unstamped)} heads since the hour {_utc(min(self.unstamped))} "
                    "have no good timestamp token over them yet",
                )  # fmt: skip
        for size in sorted(self.trusted):
            yield Finding(
                "checkpoint_inconsistent", self.origin,
                f"a trusted checkpoint has {size} heads; the log has {self.frontier.size}: "
                "heads were removed",
            )  # fmt: skip


def _utc(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _hours(span: datetime.timedelta) -> str:
    return f"{span.total_seconds() / 3600:.1f} h"


def _head_keys(
    prefix: str, writer: str, sealed: dict[datetime.datetime, dict[int, set[str]]]
) -> set[str]:
    return {
        hour_keys(prefix, writer, hour, part)[1]
        for hour, parts in sealed.items()
        for part, names in parts.items()
        if "head" in names
    }
