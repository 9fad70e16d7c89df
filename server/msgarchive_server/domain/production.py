"""Productions: the copies a search selects, handed over in a form the receiver
can read and check without access to the archive.

A production is a directory, or one zip, holding for each copy (control
numbers MSG000001 on, in sent time order) under `items/<control>/`:

    native.json.lz4   the stored bytes, unchanged (their SHA-256 is the manifest's)
    copy.json         the decoded JSON
    text.txt          its text, as review tools index it
    message.eml       email only: the message as RFC 5322, for mail tools
    page.html         a page for people, inert (loads nothing, runs nothing)
    proof.json        its inclusion proof, with the signed head it leads to

SMS and WhatsApp messages are also in `conversations/`, as RSMF 2.0: one
file a recipient, channel and UTC day. At the top: `index.html`, the load
files `loadfile.dat` (Concordance) and `loadfile.csv`, `README.txt` for the
receiver, the manifests' public key when given, and `production.json`: the
selection, the counts, every item and the SHA-256 of every file, signed
(`production.sig`: an Ed25519 signature of production.json's SHA-256) with
the exporting team's own key. `msgarchive check-production` checks all of it.

The same selection over the same archive gives byte-identical files: no wall
clock goes into them, and the zip's entries have fixed times and order.

An export is made in a work directory beside it, `OUT.partial/`: the files
under `tree/`, and `state.sqlite`, which holds the selection (listed once, at
the start, so that a resumed export produces what was selected then), each
item once its files are written, and each file's SHA-256. Memory stays flat
however many copies there are: every list that grows with the production is
in SQLite, and the files that list every item are streamed from it. Killed
(or out of disk, or refused by the store), an export leaves that directory,
which is not a production (there is no OUT); `resume=True` continues it
without reading again a copy whose files are written. The production is
renamed to OUT only when complete, and only after its record is in the
store's export log. A zip is packed from the finished tree, so `--zip`
needs the disk space twice over while it packs.
"""

from __future__ import annotations

import base64
import collections
import contextlib
import csv
import dataclasses
import datetime
import hashlib
import html
import io
import json
import shutil
import sqlite3
import zipfile
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from msgarchive_server.domain import renditions, rsmf
from msgarchive_server.domain.manifests import merkle, parquet, signed_log
from msgarchive_server.domain.manifests.heads import Signer
from msgarchive_server.domain.manifests.prove import proof_of
from msgarchive_server.domain.payloads import decompress
from msgarchive_server.domain.search import Found
from msgarchive_server.stores import NoSuchObject, Store

PRODUCTION_FORMAT = "msgarchive.production.v1"
SIGNATURE_FORMAT = "msgarchive.production-signature.v2"
EXPORT_RECORD_FORMAT = "msgarchive.export-record.v1"
MANIFEST = "production.json"
SIGNATURE = "production.sig"
MANIFEST_KEY = "manifests-public-key.pem"
# Concordance's defaults: the thorn as text qualifier, ASCII 20 between fields.
DAT_QUOTE = "\u00fe"
DAT_DELIMITER = "\x14"
LOAD_FILE_FIELDS = (
    "ControlNumber", "Channel", "CampaignId", "CampaignName", "From", "To", "Subject",
    "SentTime", "MessageId", "Key", "VersionId", "SHA256", "MD5", "NativePath", "TextPath",
)  # fmt: skip
# A zip entry's time: fixed, so that the same production is the same bytes.
ZIP_TIME = (1980, 1, 1, 0, 0, 0)
# The work directory's parts: the production's files, and the export's state.
TREE = "tree"
STATE = "state.sqlite"
PACKING = "production.zip"
_CHUNK = 1 << 20
# Copies read ahead of the one being written, and by how many threads.
# Messages in one RSMF file at most: a longer conversation goes on in the next.
RSMF_EVENTS = 1000
READ_AHEAD = 32
READERS = 8


def signed_message(manifest_sha256: str) -> bytes:
    """What production.sig signs: production.json's SHA-256, in a line of its own
    kind (an Ed25519 signature covers a message held whole: this one is short
    however large the production)."""
    return f"{SIGNATURE_FORMAT}\nsha256:{manifest_sha256}\n".encode()


class ProductionError(Exception):
    """The production cannot be made as asked; the message says why, in one line."""


@dataclass(frozen=True, slots=True)
class Produced:
    path: Path
    items: int
    proven: int
    record: str  # its record's key in the export log
    resumed: int  # items a resumed export found done


Progress = Callable[[int, int], None]  # (items done, items in all)
Cover = Callable[[Iterable[Found]], str]


def work_directory(out: Path) -> Path:
    return out.with_name(out.name + ".partial")


def produce(
    store: Store,
    found: Iterable[Found],
    out: Path,
    signer: Signer,
    *,
    selection: dict[str, Any],
    source: str,
    manifests: dict[str, Path] | None = None,
    manifest_key: bytes | None = None,
    as_zip: bool = False,
    handed_to: str = "",
    now: datetime.datetime | None = None,
    cover: Cover | None = None,
    resume: bool = False,
    progress: Progress | None = None,
) -> Produced:
    """Write the production of `found` at `out` (a new directory, or a new zip).

    `manifests` are the manifest files a search read, by their store keys:
    each item's proof is built from them. `cover` makes a page of the items,
    written as cover.html (a subject access request's). `found` is read only
    when the export begins: a resumed one produces the items it listed then.
    Before the production is renamed to `out`, a record of it (selection,
    count, the SHA-256 of production.json, `handed_to`, when) is appended to
    the store's export log, signed with the same key: no production leaves
    unrecorded.
    """
    if out.exists() and not (out.is_dir() and not any(out.iterdir())):
        raise ProductionError(f"{out} exists and is not an empty directory: choose a new one")
    work = work_directory(out)
    request = {"selection": selection, "source": source, "zip": as_zip}
    state = _begin(work, request, found, resume)
    try:
        tree = _Tree(work / TREE, state)
        resumed = state.done_items()
        _write_items(store, tree, state, progress)
        _write_proofs(store, tree, state, manifests or {})
        manifest = _write_listings(tree, state, selection, source, manifest_key, cover)
        digest = _file_sha256(manifest)  # read in pieces: it lists every file
        signature = {
            "format": SIGNATURE_FORMAT,
            "algorithm": signer.algorithm,
            "public_key_sha256": signer.public_key_sha256,
            "signature": base64.b64encode(signer.sign(signed_message(digest))).decode(),
        }
        (tree.root / SIGNATURE).write_bytes(_json(signature))
        items, proven = state.counts()
        logged = state.meta("record")
        if logged is None:
            at = (now or datetime.datetime.now(datetime.UTC)).isoformat(timespec="milliseconds")
            record = {
                "format": EXPORT_RECORD_FORMAT,
                "selection": selection,
                "source": source,
                "items": items,
                "production_sha256": digest,
                "handed_to": handed_to,
                "at": at,
            }
            logged = signed_log.append(store, signed_log.EXPORTS_ROOT, record, signer)
            state.set_meta("record", logged)
        if as_zip:
            _pack(tree, work / PACKING)
    finally:
        state.close()
    if out.is_dir():
        out.rmdir()
    (work / PACKING if as_zip else tree.root).rename(out)
    shutil.rmtree(work)
    return Produced(out, items, proven, logged, resumed)


# --- the state ------------------------------------------------------------------


class _State:
    """An export's progress, in SQLite: kept through a kill (each step is
    committed once its files are written), not through a lost machine."""

    SCHEMA = """
        CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS items (
            n INTEGER PRIMARY KEY, key TEXT NOT NULL, version_id TEXT NOT NULL,
            found TEXT NOT NULL, row TEXT, proof TEXT);
        CREATE INDEX IF NOT EXISTS items_copy ON items (key, version_id);
        CREATE TABLE IF NOT EXISTS files (
            name TEXT PRIMARY KEY, sha256 TEXT NOT NULL, size INTEGER NOT NULL);
        CREATE TABLE IF NOT EXISTS messages (
            conversation TEXT NOT NULL, n INTEGER NOT NULL, message TEXT NOT NULL,
            PRIMARY KEY (conversation, n));
    """

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")  # durable through a kill
        self.db.executescript(self.SCHEMA)

    def close(self) -> None:
        self.db.close()

    def meta(self, name: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, name: str, value: str) -> None:
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (name, value))

    def list_items(self, found: Iterable[Found]) -> None:
        with self.db:
            self.db.execute("DELETE FROM items")
            self.db.executemany(
                "INSERT INTO items (n, key, version_id, found) VALUES (?, ?, ?, ?)",
                (
                    (n, f.key, f.version_id, json.dumps(dataclasses.astuple(f)))
                    for n, f in enumerate(found, start=1)
                ),
            )
            self.db.execute("INSERT OR REPLACE INTO meta VALUES ('listed', 'yes')")

    def total(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM items").fetchone()[0])

    def done_items(self) -> int:
        return int(
            self.db.execute("SELECT count(*) FROM items WHERE row IS NOT NULL").fetchone()[0]
        )

    def pending(self) -> Iterator[tuple[int, Found]]:
        """The items whose files are still to write, in order."""
        last = 0
        while True:
            batch = self.db.execute(
                "SELECT n, found FROM items WHERE row IS NULL AND n > ? ORDER BY n LIMIT 500",
                (last,),
            ).fetchall()
            if not batch:
                return
            for n, found in batch:
                yield n, Found(*json.loads(found))
            last = batch[-1][0]

    def found(self) -> Iterator[Found]:
        for (found,) in self.db.execute("SELECT found FROM items ORDER BY n"):
            yield Found(*json.loads(found))

    def rows(self) -> Iterator[dict[str, Any]]:
        """Each item's row, in order, with its proof's path ("" when it has none)."""
        for row, proof in self.db.execute("SELECT row, proof FROM items ORDER BY n"):
            yield {**json.loads(row), "proof": proof or ""}

    def file(self, name: str, sha256: str, size: int) -> None:
        """Record a file written (committed with the step that wrote it)."""
        self.db.execute("INSERT OR REPLACE INTO files VALUES (?, ?, ?)", (name, sha256, size))

    def files(self) -> Iterator[tuple[str, str, int]]:
        yield from self.db.execute("SELECT name, sha256, size FROM files ORDER BY name")

    def item_done(
        self, n: int, row: dict[str, Any], message: tuple[str, dict[str, Any]] | None
    ) -> None:
        if message is not None:
            self.db.execute(
                "INSERT OR REPLACE INTO messages VALUES (?, ?, ?)",
                (message[0], n, json.dumps(message[1])),
            )
        self.db.execute("UPDATE items SET row = ? WHERE n = ?", (json.dumps(row), n))
        self.db.commit()

    def conversations(self) -> Iterator[tuple[str, list[dict[str, Any]]]]:
        """Each conversation's messages, in order, as the RSMF files that hold
        them: RSMF_EVENTS messages at most a file (`<name>.rsmf`, then
        `<name>.2.rsmf`, ...), so that memory holds one file's at a time."""
        name: str | None = None
        part = 1
        messages: list[dict[str, Any]] = []
        for conversation, message in self.db.execute(
            "SELECT conversation, message FROM messages ORDER BY conversation, n"
        ):
            if messages and (conversation != name or len(messages) == RSMF_EVENTS):
                yield _part(str(name), part), messages
                part = part + 1 if conversation == name else 1
                messages = []
            name = conversation
            messages.append(json.loads(message))
        if messages:
            yield _part(str(name), part), messages

    def counts(self) -> tuple[int, int]:
        items, proven = self.db.execute("SELECT count(*), count(proof) FROM items").fetchone()
        return int(items), int(proven)

    def by_channel(self) -> dict[str, int]:
        counted: dict[str, int] = {}
        for (found,) in self.db.execute("SELECT found FROM items"):
            channel = Found(*json.loads(found)).channel
            counted[channel] = counted.get(channel, 0) + 1
        return dict(sorted(counted.items()))


def _begin(work: Path, request: dict[str, Any], found: Iterable[Found], resume: bool) -> _State:
    """The export's state: a new one that lists `found`, or the one a cut-short
    export left (with `resume`, when it was begun for the same request)."""
    state_path = work / STATE
    if work.exists() and not resume:
        raise ProductionError(
            f"{work} holds an export that was cut short: rerun with --resume to finish "
            "it, or remove it"
        )
    if work.exists() and state_path.exists():
        state = _State(state_path)
        begun = state.meta("request")
        if begun is not None and json.loads(begun) != request:
            state.close()
            raise ProductionError(
                f"{work} was begun for another selection or format: rerun it as it "
                "was begun, or remove it"
            )
        if state.meta("listed") is not None:
            return state
        state.close()
    if work.exists():
        shutil.rmtree(work)  # cut short before its items were listed
    (work / TREE).mkdir(parents=True)
    state = _State(state_path)
    try:
        state.set_meta("request", json.dumps(request, sort_keys=True))
        state.list_items(found)
    except BaseException:
        state.close()
        shutil.rmtree(work)  # nothing was written yet: a refused search leaves nothing
        raise
    return state


# --- the files ------------------------------------------------------------------


class _Tree:
    """The production's files, each recorded in the state with its SHA-256."""

    def __init__(self, root: Path, state: _State) -> None:
        self.root = root
        self.state = state

    def add(self, name: str, data: bytes, sha256: str = "") -> None:
        """Write a file (its folder made already, or made now); `sha256`, its
        digest when the caller has it already."""
        path = self.root / name
        try:
            path.write_bytes(data)
        except FileNotFoundError:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        self.state.file(name, sha256 or hashlib.sha256(data).hexdigest(), len(data))

    @contextlib.contextmanager
    def streamed(self, name: str) -> Iterator[Callable[[str], None]]:
        """Write a file a piece at a time (text, as UTF-8)."""
        digest = hashlib.sha256()
        size = 0
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as out:

            def write(text: str) -> None:
                nonlocal size
                data = text.encode()
                out.write(data)
                digest.update(data)
                size += len(data)

            yield write
        self.state.file(name, digest.hexdigest(), size)

    def intact(self, name: str, size: int) -> bool:
        path = self.root / name
        return path.is_file() and path.stat().st_size == size


def _write_items(store: Store, tree: _Tree, state: _State, progress: Progress | None) -> None:
    """Write every pending item's files, in order, while the next copies are
    read: READ_AHEAD at most, by READERS threads (a copy's read is mostly a
    wait on the store)."""
    total = state.total()
    done = state.done_items()
    if done:
        _redo_damaged(tree, state)
        done = state.done_items()
    if progress:
        progress(done, total)
    pending = state.pending()
    with ThreadPoolExecutor(READERS, thread_name_prefix="export-read") as pool:
        window: collections.deque[tuple[int, Found, Future[bytes]]] = collections.deque()

        def read_ahead() -> None:
            while len(window) < READ_AHEAD and (following := next(pending, None)) is not None:
                n, item = following
                window.append((n, item, pool.submit(_stored, store, item)))

        try:
            read_ahead()
            while window:
                n, item, reading = window.popleft()
                row, message = _write_item(tree, item, f"MSG{n:06d}", reading.result())
                state.item_done(n, row, message)
                done += 1
                if progress:
                    progress(done, total)
                read_ahead()
        finally:
            for _, _, reading in window:
                reading.cancel()


def _redo_damaged(tree: _Tree, state: _State) -> None:
    """Mark an item to write again where a file it wrote is gone or cut short
    (by a full disk, or a machine that stopped before the file reached it)."""
    damaged = {
        name.split("/")[1] for name, _, size in state.files()
        if name.startswith("items/") and not tree.intact(name, size)
    }  # fmt: skip
    with state.db:
        for control in damaged:
            state.db.execute(
                "UPDATE items SET row = NULL, proof = NULL WHERE n = ?", (int(control[3:]),)
            )


def _write_item(
    tree: _Tree, item: Found, control: str, stored: bytes
) -> tuple[dict[str, Any], tuple[str, dict[str, Any]] | None]:
    """Write one item's files from its `stored` bytes: its row, and its message
    of a conversation, if any."""
    digest = hashlib.sha256(stored).hexdigest()
    if item.sha256 and digest != item.sha256:
        raise ProductionError(
            f"{item.key}: the stored copy does not match its manifest (run msgarchive verify)"
        )
    text = decompress(stored).decode()
    fields: dict[str, Any] = json.loads(text)
    base = f"items/{control}/"
    paths = {
        "native": base + "native.json.lz4",
        "json": base + "copy.json",
        "text": base + "text.txt",
    }
    tree.add(paths["native"], stored, digest)
    tree.add(paths["json"], text.encode())
    shown = renditions.rendition(item.channel)
    tree.add(paths["text"], shown.text(fields).encode())
    if shown.mail:
        paths["eml"] = base + "message.eml"
        tree.add(paths["eml"], renditions.eml(fields))
    message = None
    if shown.conversation:
        name = rsmf.conversation_name(rsmf.Message(item.channel, fields, item.key))
        message = (name, {"channel": item.channel, "fields": fields, "key": item.key})
        paths["rsmf"] = f"conversations/{name}"
    links = {
        name: path.removeprefix(base) if path.startswith(base) else f"../../{path}"
        for name, path in paths.items()
    }
    links["proof"] = "proof.json"
    page = renditions.item_page(control, item.channel, fields, links)
    paths["page"] = base + "page.html"
    tree.add(paths["page"], page.encode())
    row = {
        "control": control,
        "channel": item.channel,
        "campaign_id": item.campaign_id,
        "campaign_name": str(fields.get("campaign_name", "")),
        "from": shown.sender(fields),
        "to": str(fields.get("to", "")),
        "subject": str(fields.get("subject", "")),
        "sent_time": renditions.sent_time(fields) or item.sent_time,
        "message_id": item.message_id,
        "key": item.key,
        "version_id": item.version_id,
        "sha256": digest,
        "md5": hashlib.md5(stored, usedforsecurity=False).hexdigest(),
        "paths": paths,
    }
    return row, message


def _stored(store: Store, item: Found) -> bytes:
    try:
        return store.read(item.key, item.version_id)
    except NoSuchObject:
        raise ProductionError(
            f"{item.key}: no such copy in the store (run msgarchive verify)"
        ) from None


def _write_proofs(store: Store, tree: _Tree, state: _State, manifests: dict[str, Path]) -> None:
    """Each item's proof, from the first manifest part that lists it. A part is
    read twice, a batch of rows at a time: once for its tree (the leaves'
    hashes only) and which of its entries are items, once for their proofs;
    memory holds the part's leaf hashes, never all its entries."""
    db = state.db
    for manifest_key, path in sorted(manifests.items()):
        db.execute("CREATE TEMP TABLE IF NOT EXISTS part (i INTEGER, key TEXT, version_id TEXT)")
        db.execute("DELETE FROM part")
        hashes: list[bytes] = []
        rows = []
        for i, entry in enumerate(parquet.entries_of(path)):
            hashes.append(merkle.leaf_hash(entry.leaf()))
            rows.append((i, entry.key, entry.version_id))
            if len(rows) == 8192:
                db.executemany("INSERT INTO part VALUES (?, ?, ?)", rows)
                rows.clear()
        db.executemany("INSERT INTO part VALUES (?, ?, ?)", rows)
        wanted = {
            int(i): int(n)
            for i, n in db.execute(
                "SELECT min(p.i), n.n FROM part p JOIN items n"
                " ON n.key = p.key AND n.version_id = p.version_id"
                " WHERE n.proof IS NULL GROUP BY n.n"
            )
        }
        if not wanted:
            continue
        folder, _, name = manifest_key.rpartition("/")
        head_key = f"{folder}/{name.replace('manifest', 'head', 1).removesuffix('.parquet')}.json"
        head = json.loads(store.get(head_key).body)
        part = merkle.Tree(hashes)
        for index, entry in enumerate(parquet.entries_of(path)):
            control = wanted.get(index)
            if control is None:
                continue
            name = f"items/MSG{control:06d}/proof.json"
            tree.add(name, _json(proof_of(part, index, entry.leaf(), head_key, head)))
            db.execute("UPDATE items SET proof = ? WHERE n = ?", (name, control))
        db.commit()


def _write_listings(
    tree: _Tree,
    state: _State,
    selection: dict[str, Any],
    source: str,
    manifest_key: bytes | None,
    cover: Cover | None,
) -> Path:
    """Everything that lists the items, streamed from the state; production.json last."""
    for name, messages in state.conversations():
        tree.add(
            f"conversations/{name}",
            rsmf.rsmf([rsmf.Message(m["channel"], m["fields"], m["key"]) for m in messages]),
        )
    if manifest_key is not None:
        tree.add(MANIFEST_KEY, manifest_key)
    with tree.streamed("loadfile.dat") as write:
        write(_dat_line(LOAD_FILE_FIELDS))
        for row in state.rows():
            write(_dat_line(_load_file_values(row)))
    with tree.streamed("loadfile.csv") as write:
        write(_csv_line(LOAD_FILE_FIELDS))
        for row in state.rows():
            write(_csv_line(_load_file_values(row)))
    items, proven = state.counts()
    with tree.streamed("index.html") as write:
        for part in _index(items, state.rows()):
            write(part)
    if cover is not None:
        tree.add("cover.html", cover(state.found()).encode())
    tree.add("README.txt", _readme(items, proven).encode())
    path = tree.root / MANIFEST
    with path.open("w", encoding="utf-8") as out:
        for part in _manifest(state, selection, source):
            out.write(part)
    return path


def _pack(tree: _Tree, path: Path) -> None:
    """The finished tree as one zip: entries in name order, fixed times."""
    names = [name for name, _, _ in tree.state.files()]
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in [*names, MANIFEST, SIGNATURE]:
            entry = zipfile.ZipInfo(name, date_time=ZIP_TIME)
            entry.compress_type = zipfile.ZIP_DEFLATED
            entry.external_attr = 0o644 << 16
            entry.create_system = 3  # Unix, so that the mode above means what it says
            with (
                (tree.root / name).open("rb") as source,
                archive.open(entry, "w", force_zip64=True) as target,
            ):
                shutil.copyfileobj(source, target, _CHUNK)


def _part(name: str, part: int) -> str:
    """The file name of a conversation's `part` (the first keeps the name)."""
    return name if part == 1 else f"{name.removesuffix('.rsmf')}.{part}.rsmf"


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _json(data: Any) -> bytes:
    return (json.dumps(data, sort_keys=True, indent=1, ensure_ascii=False) + "\n").encode()


def _manifest(state: _State, selection: dict[str, Any], source: str) -> Iterator[str]:
    """production.json, a piece at a time: one item, then one file, a line."""
    items, proven = state.counts()
    try:
        version = metadata.version("msgarchive")
    except metadata.PackageNotFoundError:
        version = "unknown"

    def value(data: Any) -> str:
        return json.dumps(data, sort_keys=True, ensure_ascii=False)

    yield "{\n"
    counts = {"items": items, "proven": proven, "by_channel": state.by_channel()}
    for name, data in (
        ("format", PRODUCTION_FORMAT),
        ("tool", f"msgarchive {version}"),
        ("selection", selection),
        ("source", source),
        ("counts", counts),
    ):
        yield f" {value(name)}: {value(data)},\n"
    yield ' "items": ['
    for n, row in enumerate(state.rows()):
        item = {
            "control": row["control"],
            "channel": row["channel"],
            "key": row["key"],
            "version_id": row["version_id"],
            "sha256": row["sha256"],
            "native": row["paths"]["native"],
            "proof": row["proof"],
        }
        yield ("\n  " if n == 0 else ",\n  ") + value(item)
    yield '\n ],\n "files": {'
    for n, (name, sha256, _) in enumerate(state.files()):
        yield ("\n  " if n == 0 else ",\n  ") + f"{value(name)}: {value(sha256)}"
    yield "\n }\n}\n"


def _load_file_values(row: dict[str, Any]) -> list[str]:
    return [
        row["control"], row["channel"], row["campaign_id"], row["campaign_name"], row["from"],
        row["to"], row["subject"], row["sent_time"], row["message_id"], row["key"],
        row["version_id"], row["sha256"], row["md5"], row["paths"]["native"], row["paths"]["text"],
    ]  # fmt: skip


def _dat_line(values: Iterable[str]) -> str:
    return (
        DAT_DELIMITER.join(f"{DAT_QUOTE}{v.replace(DAT_QUOTE, '')}{DAT_QUOTE}" for v in values)
        + "\r\n"
    )


def _csv_line(values: Iterable[str]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerow(values)
    return out.getvalue()


def _index(items: int, rows: Iterable[dict[str, Any]]) -> Iterator[str]:
    """index.html, a row at a time."""
    marker = "\x00rows\x00"
    head = "".join(
        f"<th>{h}</th>" for h in ("Control", "Channel", "Sent", "To", "Subject", "Campaign")
    )
    before, after = renditions.page(
        "Production",
        f"<h1>Production: {items} messages</h1>\n"
        f"<table><tr>{head}</tr>{marker}</table>\n"
        "<p>Each message's files are in its folder under items/; README.txt says how "
        "to check this production.</p>",
    ).split(marker)
    yield before
    for row in rows:
        yield (
            f'<tr><td><a href="{html.escape(row["paths"]["page"])}">{row["control"]}</a></td>'
            + "".join(
                f"<td>{html.escape(str(row[name]))}</td>"
                for name in ("channel", "sent_time", "to", "subject", "campaign_name")
            )
            + "</tr>\n"
        )
    yield after


def _readme(items: int, proven: int) -> str:
    return f"""This is a production of {items} archived messages, made by msgarchive.

What is here
  items/MSG000001/ ...  one folder per message, in the order they were sent:
    native.json.lz4     the copy exactly as the archive stores it (LZ4-compressed JSON)
    copy.json           the same copy, decompressed
    text.txt            its text
    message.eml         for an email: the message, for any mail program
    page.html           a page to read it in a browser (it loads and runs nothing)
    proof.json          the proof that the archive's signed index lists this copy
  conversations/        SMS and WhatsApp messages as RSMF 2.0 (one file a recipient,
                        channel and day), for review tools' short-message viewers
  index.html            every message, with links to its page
  loadfile.dat          a Concordance load file (UTF-8, the thorn as text qualifier,
                        ASCII 20 between fields), for review tools
  loadfile.csv          the same rows as CSV
  production.json       what was selected, and the SHA-256 of every file above
  production.sig        the producer's Ed25519 signature of production.json

{proven} of the {items} messages carry a proof.

How to check it
  pip install 'msgarchive[proofs]'
  msgarchive check-production THIS_FOLDER_OR_ZIP \\
      --public-key PRODUCER_KEY.pem --manifest-key ARCHIVE_MANIFEST_KEY.pem

It checks the signature of production.json with the producer's public key,
the SHA-256 of every file (naming any file added, removed or changed), and
each message's proof with the archive's manifest key: that the copy's bytes
are the ones the archive acknowledged and listed in a signed manifest. Take
both public keys from their owners by a channel of your own, not from this
production: a file in it (manifests-public-key.pem) is only a convenience.
"""
