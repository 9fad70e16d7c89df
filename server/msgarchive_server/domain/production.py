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
(`production.sig`) with the exporting team's own Ed25519 key. `msgarchive
check-production` checks all of it.

The same selection over the same archive gives byte-identical files: no wall
clock goes into them, and the zip's entries have fixed times and order.
"""

from __future__ import annotations

import base64
import csv
import datetime
import hashlib
import html
import io
import json
import shutil
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol

from msgarchive_server.domain import renditions, rsmf
from msgarchive_server.domain.manifests import parquet, signed_log
from msgarchive_server.domain.manifests.prove import proofs_in
from msgarchive_server.domain.payloads import decompress
from msgarchive_server.domain.search import Found
from msgarchive_server.stores import Capability, NoSuchObject, Store, versioned

PRODUCTION_FORMAT = "msgarchive.production.v1"
SIGNATURE_FORMAT = "msgarchive.production-signature.v1"
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


class ProductionError(Exception):
    """The production cannot be made as asked; the message says why, in one line."""


class Signer(Protocol):
    algorithm: str
    public_key_sha256: str

    def sign(self, data: bytes) -> bytes: ...


class _Files(Protocol):
    def add(self, name: str, data: bytes) -> None: ...
    def close(self) -> None: ...


class _Directory:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True)

    def add(self, name: str, data: bytes) -> None:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    def close(self) -> None:
        """Nothing buffered."""


class _Zip:
    def __init__(self, path: Path) -> None:
        self.zip = zipfile.ZipFile(path, "x", compression=zipfile.ZIP_DEFLATED)

    def add(self, name: str, data: bytes) -> None:
        entry = zipfile.ZipInfo(name, date_time=ZIP_TIME)
        entry.compress_type = zipfile.ZIP_DEFLATED
        entry.external_attr = 0o644 << 16
        entry.create_system = 3  # Unix, so that the mode above means what it says
        self.zip.writestr(entry, data)

    def close(self) -> None:
        self.zip.close()


@dataclass
class _Hashed:
    """Files as they are added, with the SHA-256 of each."""

    files: _Files
    sha256: dict[str, str] = field(default_factory=dict)

    def add(self, name: str, data: bytes, sha256: str = "") -> None:
        """Add a file; `sha256`, its digest when the caller has it already."""
        self.files.add(name, data)
        self.sha256[name] = sha256 or hashlib.sha256(data).hexdigest()


@dataclass(frozen=True, slots=True)
class Produced:
    path: Path
    items: int
    proven: int
    record: str  # its record's key in the export log


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
    cover: str | None = None,
) -> Produced:
    """Write the production of `found` at `out` (a new directory, or a new zip).

    `manifests` are the manifest files a search read, by their store keys:
    each item's proof is built from them. Written under a `.partial` name and
    renamed when complete, so that a production cut short never looks like one.
    `cover`, a page, is written as cover.html (a subject access request's).
    Before the rename, a record of it (selection, count, the SHA-256 of
    production.json, `handed_to`, when) is appended to the store's export log,
    signed with the same key: no production leaves unrecorded.
    """
    if out.exists() and not (out.is_dir() and not any(out.iterdir())):
        raise ProductionError(f"{out} exists and is not an empty directory: choose a new one")
    partial = out.with_name(out.name + ".partial")
    if partial.is_dir():
        shutil.rmtree(partial)  # what an earlier run left when it was cut short
    elif partial.exists():
        partial.unlink()
    if out.is_dir():
        out.rmdir()
    files = _Hashed(_Zip(partial) if as_zip else _Directory(partial))
    try:
        items = list(found)
        controls = {(f.key, f.version_id): f"MSG{n:06d}" for n, f in enumerate(items, start=1)}
        conversations: dict[str, list[rsmf.Message]] = {}
        rows = [
            _write_item(store, files, item, controls[item.key, item.version_id], conversations)
            for item in items
        ]
        for name, messages in sorted(conversations.items()):
            files.add(f"conversations/{name}", rsmf.rsmf(messages))
        proven = _write_proofs(store, files, manifests or {}, controls)
        for row in rows:
            row["proof"] = proven.get(row["control"], "")
        if manifest_key is not None:
            files.add(MANIFEST_KEY, manifest_key)
        files.add("loadfile.dat", _load_file_dat(rows))
        files.add("loadfile.csv", _load_file_csv(rows))
        files.add("index.html", _index(rows).encode())
        if cover is not None:
            files.add("cover.html", cover.encode())
        files.add("README.txt", _readme(len(rows), len(proven)).encode())
        manifest = _manifest(rows, selection, source, files.sha256)
        files.add(MANIFEST, manifest)
        signature = {
            "format": SIGNATURE_FORMAT,
            "algorithm": signer.algorithm,
            "public_key_sha256": signer.public_key_sha256,
            "signature": base64.b64encode(signer.sign(manifest)).decode(),
        }
        files.files.add(SIGNATURE, _json(signature))
        files.files.close()
        at = (now or datetime.datetime.now(datetime.UTC)).isoformat(timespec="milliseconds")
        record = {
            "format": EXPORT_RECORD_FORMAT,
            "selection": selection,
            "source": source,
            "items": len(rows),
            "production_sha256": hashlib.sha256(manifest).hexdigest(),
            "handed_to": handed_to,
            "at": at,
        }
        logged = signed_log.append(store, signed_log.EXPORTS_ROOT, record, signer)
    except BaseException:
        if as_zip:
            files.files.close()
        if partial.is_dir():
            shutil.rmtree(partial)
        else:
            partial.unlink(missing_ok=True)
        raise
    partial.rename(out)
    return Produced(out, len(rows), len(proven), logged)


def _write_item(
    store: Store,
    files: _Hashed,
    item: Found,
    control: str,
    conversations: dict[str, list[rsmf.Message]],
) -> dict[str, Any]:
    stored = _stored(store, item)
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
    files.add(paths["native"], stored, digest)
    files.add(paths["json"], text.encode())
    shown = renditions.rendition(item.channel)
    files.add(paths["text"], shown.text(fields).encode())
    if shown.mail:
        paths["eml"] = base + "message.eml"
        files.add(paths["eml"], renditions.eml(fields))
    if shown.conversation:
        message = rsmf.Message(item.channel, fields, item.key)
        name = rsmf.conversation_name(message)
        conversations.setdefault(name, []).append(message)
        paths["rsmf"] = f"conversations/{name}"
    links = {
        name: path.removeprefix(base) if path.startswith(base) else f"../../{path}"
        for name, path in paths.items()
    }
    links["proof"] = "proof.json"
    page = renditions.item_page(control, item.channel, fields, links)
    paths["page"] = base + "page.html"
    files.add(paths["page"], page.encode())
    return {
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


def _stored(store: Store, item: Found) -> bytes:
    try:
        if item.version_id and Capability.VERSIONS in store.capabilities:
            return versioned(store, "export").get_version(item.key, item.version_id).body
        return store.get(item.key).body
    except NoSuchObject:
        raise ProductionError(
            f"{item.key}: no such copy in the store (run msgarchive verify)"
        ) from None


def _write_proofs(
    store: Store, files: _Hashed, manifests: dict[str, Path], controls: dict[tuple[str, str], str]
) -> dict[str, str]:
    """Each item's proof, from the first manifest part that lists it: control -> path."""
    written: dict[str, str] = {}
    for manifest_key, path in sorted(manifests.items()):
        entries = parquet.decode(path.read_bytes())
        wanted = {
            index: controls[entry.key, entry.version_id]
            for index, entry in enumerate(entries)
            if (entry.key, entry.version_id) in controls
            and controls[entry.key, entry.version_id] not in written
        }
        if not wanted:
            continue
        folder, _, name = manifest_key.rpartition("/")
        head_key = f"{folder}/{name.replace('manifest', 'head', 1).removesuffix('.parquet')}.json"
        head = store.get(head_key).body
        for index, proof in sorted(proofs_in(entries, head_key, head, list(wanted)).items()):
            name = f"items/{wanted[index]}/proof.json"
            files.add(name, _json(proof))
            written[wanted[index]] = name
    return written


def _json(data: Any) -> bytes:
    return (json.dumps(data, sort_keys=True, indent=1, ensure_ascii=False) + "\n").encode()


def _manifest(
    rows: list[dict[str, Any]], selection: dict[str, Any], source: str, sha256: dict[str, str]
) -> bytes:
    by_channel: dict[str, int] = {}
    for row in rows:
        by_channel[row["channel"]] = by_channel.get(row["channel"], 0) + 1
    try:
        version = metadata.version("msgarchive")
    except metadata.PackageNotFoundError:
        version = "unknown"
    return _json(
        {
            "format": PRODUCTION_FORMAT,
            "tool": f"msgarchive {version}",
            "selection": selection,
            "source": source,
            "counts": {
                "items": len(rows),
                "proven": sum(1 for row in rows if row["proof"]),
                "by_channel": by_channel,
            },
            "items": [
                {
                    "control": row["control"],
                    "channel": row["channel"],
                    "key": row["key"],
                    "version_id": row["version_id"],
                    "sha256": row["sha256"],
                    "native": row["paths"]["native"],
                    "proof": row["proof"],
                }
                for row in rows
            ],
            "files": dict(sorted(sha256.items())),
        }
    )


def _load_file_values(row: dict[str, Any]) -> list[str]:
    return [
        row["control"], row["channel"], row["campaign_id"], row["campaign_name"], row["from"],
        row["to"], row["subject"], row["sent_time"], row["message_id"], row["key"],
        row["version_id"], row["sha256"], row["md5"], row["paths"]["native"], row["paths"]["text"],
    ]  # fmt: skip


def _load_file_dat(rows: list[dict[str, Any]]) -> bytes:
    def line(values: Iterable[str]) -> str:
        return DAT_DELIMITER.join(
            f"{DAT_QUOTE}{v.replace(DAT_QUOTE, '')}{DAT_QUOTE}" for v in values
        )

    lines = [line(LOAD_FILE_FIELDS), *(line(_load_file_values(row)) for row in rows)]
    return ("\r\n".join(lines) + "\r\n").encode()


def _load_file_csv(rows: list[dict[str, Any]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(LOAD_FILE_FIELDS)
    for row in rows:
        writer.writerow(_load_file_values(row))
    return out.getvalue().encode()


def _index(rows: list[dict[str, Any]]) -> str:
    head = "".join(
        f"<th>{h}</th>" for h in ("Control", "Channel", "Sent", "To", "Subject", "Campaign")
    )
    body = "".join(
        f'<tr><td><a href="{html.escape(row["paths"]["page"])}">{row["control"]}</a></td>'
        + "".join(
            f"<td>{html.escape(str(row[name]))}</td>"
            for name in ("channel", "sent_time", "to", "subject", "campaign_name")
        )
        + "</tr>"
        for row in rows
    )
    return renditions.page(
        "Production",
        f"<h1>Production: {len(rows)} messages</h1>\n"
        f"<table><tr>{head}</tr>{body}</table>\n"
        "<p>Each message's files are in its folder under items/; README.txt says how "
        "to check this production.</p>",
    )


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
