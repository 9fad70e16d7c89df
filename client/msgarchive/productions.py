"""Checking a production with nothing but two public keys: the producer's, and
the archive's manifest key.

`msgarchive check-production` (or `check_production()` here) reads a
production directory or zip and checks that `production.sig` is the
producer's Ed25519 signature of `production.json`; that every file it lists
is there with its SHA-256, and no other; and that each item's proof holds
under the manifest key and proves the item's own key and stored bytes. It
needs the `cryptography` package (`pip install 'msgarchive[proofs]'`), and
shares no code with the sidecar that made the production.
"""

from __future__ import annotations

import base64
import hashlib
import json
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from msgarchive.proofs import ProofError, check_proof

MANIFEST = "production.json"
SIGNATURE = "production.sig"
FORMAT = "msgarchive.production.v1"


@dataclass(frozen=True, slots=True)
class Finding:
    kind: str  # unsigned, malformed, added, removed, changed, unproven, proof
    path: str  # the file or item it is about
    detail: str

    def __str__(self) -> str:
        return f"{self.kind:10s} {self.path}  {self.detail}".rstrip()


class ProductionUnreadable(Exception):
    """Not a production at all (no manifest, not a zip or a directory)."""


def _files(path: Path) -> dict[str, bytes]:
    if path.is_dir():
        return {
            p.relative_to(path).as_posix(): p.read_bytes()
            for p in sorted(path.rglob("*"))
            if p.is_file()
        }
    try:
        with zipfile.ZipFile(path) as archive:
            return {
                name: archive.read(name) for name in archive.namelist() if not name.endswith("/")
            }
    except (zipfile.BadZipFile, OSError) as err:
        raise ProductionUnreadable(f"{path}: neither a directory nor a zip ({err})") from None


def check_production(path: Path, public_key_pem: bytes, manifest_key_pem: bytes) -> list[Finding]:
    """Every problem of the production at `path`; empty when it checks."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    files = _files(path)
    if MANIFEST not in files or SIGNATURE not in files:
        raise ProductionUnreadable(f"{path}: no {MANIFEST} and {SIGNATURE}: not a production")
    manifest_bytes = files.pop(MANIFEST)
    producer = serialization.load_pem_public_key(public_key_pem)
    if not isinstance(producer, Ed25519PublicKey):
        raise ProductionUnreadable("the producer's public key is not an Ed25519 key")
    found: list[Finding] = []
    try:
        signature = json.loads(files.pop(SIGNATURE))
        producer.verify(base64.b64decode(signature["signature"], validate=True), manifest_bytes)
    except (ValueError, KeyError, TypeError, InvalidSignature):
        found.append(
            Finding("unsigned", MANIFEST, "the signature does not verify under the public key")
        )
    try:
        manifest: dict[str, Any] = json.loads(manifest_bytes)
        listed: dict[str, str] = dict(manifest["files"])
        items: list[dict[str, Any]] = list(manifest["items"])
        if manifest.get("format") != FORMAT:
            raise ValueError(f"format {manifest.get('format')!r}")
    except (ValueError, KeyError, TypeError) as err:
        return [*found, Finding("malformed", MANIFEST, str(err))]
    found += _compare(files, listed)
    for item in items:
        found += _check_item(item, files, manifest_key_pem)
    return found


def _compare(files: dict[str, bytes], listed: dict[str, str]) -> Iterator[Finding]:
    for name in sorted(set(files) | set(listed)):
        if name not in listed:
            yield Finding("added", name, "a file production.json does not list")
        elif name not in files:
            yield Finding("removed", name, "listed in production.json, not here")
        elif hashlib.sha256(files[name]).hexdigest() != listed[name]:
            yield Finding("changed", name, "its SHA-256 is not the one production.json lists")


def _check_item(item: dict[str, Any], files: dict[str, bytes], key: bytes) -> Iterator[Finding]:
    control = str(item.get("control", "?"))
    native = files.get(str(item.get("native", "")))
    if native is not None and hashlib.sha256(native).hexdigest() != item.get("sha256"):
        yield Finding("changed", control, "its native copy is not the item's SHA-256")
    proof_path = str(item.get("proof") or "")
    if not proof_path:
        yield Finding("unproven", control, "no proof: the archive listed it in no signed manifest")
        return
    if proof_path not in files:
        return  # already named as removed
    try:
        proof = json.loads(files[proof_path])
        proven_key = check_proof(proof, key)
        leaf = json.loads(proof["leaf"])
    except ProofError as err:
        yield Finding("proof", control, str(err))
        return
    except (ValueError, KeyError, TypeError) as err:
        yield Finding("proof", control, f"the proof is malformed: {err}")
        return
    if proven_key != item.get("key") or leaf.get("version_id") != item.get("version_id"):
        yield Finding("proof", control, "the proof is of another copy")
    elif leaf.get("sha256") != item.get("sha256"):
        yield Finding("proof", control, "the archive listed other bytes for this copy")
