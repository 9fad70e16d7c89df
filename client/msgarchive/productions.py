"""Checking a production with nothing but two public keys: the producer's, and
the archive's manifest key.

`msgarchive check-production` (or `check_production()` here) reads a
production directory or zip and checks that `production.sig` is the
producer's Ed25519 signature of `production.json` (of the line
`msgarchive.production-signature.v2`, then `sha256:` and its SHA-256 in hex,
each ended by a line feed); that every file it lists
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
from typing import IO, Any

from msgarchive.proofs import ProofChecker, ProofError

MANIFEST = "production.json"
SIGNATURE = "production.sig"
FORMAT = "msgarchive.production.v1"
SIGNATURE_FORMAT = "msgarchive.production-signature.v2"


@dataclass(frozen=True, slots=True)
class Finding:
    kind: str  # unsigned, malformed, added, removed, changed, unproven, proof
    path: str  # the file or item it is about
    detail: str

    def __str__(self) -> str:
        return f"{self.kind:10s} {self.path}  {self.detail}".rstrip()


class ProductionUnreadable(Exception):
    """Not a production at all (no manifest, not a zip or a directory)."""


class _Production:
    """A production's files, read once each: their SHA-256 is kept, and a file's
    bytes only for the few that are read whole (the manifest, the proofs)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.zip: zipfile.ZipFile | None = None
        if not path.is_dir():
            try:
                self.zip = zipfile.ZipFile(path)
            except (zipfile.BadZipFile, OSError) as err:
                raise ProductionUnreadable(
                    f"{path}: neither a directory nor a zip ({err})"
                ) from None

    def names(self) -> list[str]:
        if self.zip is not None:
            return [n for n in self.zip.namelist() if not n.endswith("/")]
        return [
            p.relative_to(self.path).as_posix() for p in sorted(self.path.rglob("*")) if p.is_file()
        ]

    def open(self, name: str) -> IO[bytes]:
        if self.zip is not None:
            return self.zip.open(name)
        return (self.path / name).open("rb")

    def read(self, name: str) -> bytes:
        with self.open(name) as file:
            return file.read()

    def sha256(self, name: str) -> str:
        digest = hashlib.sha256()
        with self.open(name) as file:
            while chunk := file.read(1 << 20):
                digest.update(chunk)
        return digest.hexdigest()

    def close(self) -> None:
        if self.zip is not None:
            self.zip.close()


def check_production(path: Path, public_key_pem: bytes, manifest_key_pem: bytes) -> list[Finding]:
    """Every problem of the production at `path`; empty when it checks."""
    production = _Production(path)
    try:
        return _check(production, public_key_pem, manifest_key_pem)
    finally:
        production.close()


def _check(
    production: _Production, public_key_pem: bytes, manifest_key_pem: bytes
) -> list[Finding]:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    names = set(production.names())
    if MANIFEST not in names or SIGNATURE not in names:
        raise ProductionUnreadable(
            f"{production.path}: no {MANIFEST} and {SIGNATURE}: not a production"
        )
    names -= {MANIFEST, SIGNATURE}
    manifest_bytes = production.read(MANIFEST)
    producer = serialization.load_pem_public_key(public_key_pem)
    if not isinstance(producer, Ed25519PublicKey):
        raise ProductionUnreadable("the producer's public key is not an Ed25519 key")
    found: list[Finding] = []
    signed = f"{SIGNATURE_FORMAT}\nsha256:{hashlib.sha256(manifest_bytes).hexdigest()}\n".encode()
    try:
        signature = json.loads(production.read(SIGNATURE))
        if signature.get("format") != SIGNATURE_FORMAT:
            raise ValueError(f"signature format {signature.get('format')!r}")
        producer.verify(base64.b64decode(signature["signature"], validate=True), signed)
    except (ValueError, KeyError, TypeError, AttributeError, InvalidSignature):
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
    digests = {name: production.sha256(name) for name in sorted(names)}
    found += _compare(digests, listed)
    try:
        proofs = ProofChecker(manifest_key_pem)
    except ProofError as err:
        raise ProductionUnreadable(f"the manifest key: {err}") from None
    for item in items:
        found += _check_item(item, production, digests, proofs)
    return found


def _compare(digests: dict[str, str], listed: dict[str, str]) -> Iterator[Finding]:
    for name in sorted(set(digests) | set(listed)):
        if name not in listed:
            yield Finding("added", name, "a file production.json does not list")
        elif name not in digests:
            yield Finding("removed", name, "listed in production.json, not here")
        elif digests[name] != listed[name]:
            yield Finding("changed", name, "its SHA-256 is not the one production.json lists")


def _check_item(
    item: dict[str, Any], production: _Production, digests: dict[str, str], proofs: ProofChecker
) -> Iterator[Finding]:
    control = str(item.get("control", "?"))
    native = digests.get(str(item.get("native", "")))
    if native is not None and native != item.get("sha256"):
        yield Finding("changed", control, "its native copy is not the item's SHA-256")
    proof_path = str(item.get("proof") or "")
    if not proof_path:
        yield Finding("unproven", control, "no proof: the archive listed it in no signed manifest")
        return
    if proof_path not in digests:
        return  # already named as removed
    try:
        proof = json.loads(production.read(proof_path))
        proven_key = proofs.check(proof)
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
