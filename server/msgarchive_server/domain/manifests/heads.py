"""Signed heads: one per UTC hour (or per part of one), chaining every manifest to the last.

A head states the hour and the part of it (1, or more for an hour sealed
early and then again; see sealer.py), how many copies its manifest lists, the manifest's
key and SHA-256, the Merkle root of its entries (RFC 6962), and the previous
head's key, SHA-256 and signature; then its signer's signature over all of
that (canonical JSON: sorted keys, no spaces). Changing or removing any
sealed hour breaks the chain from there on, unless its signer re-signs every
later head (see the README: who can still rewrite what).

Signing goes through `Signer`: an Ed25519 key from a file here; a KMS
asymmetric key (or any other) can sign instead by providing the same three
members.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from msgarchive_server.domain.manifests.entries import canonical

HEAD_FORMAT = "msgarchive.manifest-head.v1"


class Signer(Protocol):
    algorithm: str  # as the head names it, e.g. "ed25519"
    public_key_sha256: str  # hex SHA-256 of the raw public key: the key's fingerprint
    public_key_raw: bytes  # the raw public key (32 bytes): a checkpoint's key ID

    def sign(self, data: bytes) -> bytes: ...


class Ed25519FileSigner:
    """Signs with an Ed25519 private key read from a PEM (PKCS #8) file."""

    algorithm = "ed25519"

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key
        self.public_key = key.public_key()
        self.public_key_sha256 = fingerprint(self.public_key)
        self.public_key_raw = self.public_key.public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )

    @classmethod
    def from_file(cls, path: Path) -> Ed25519FileSigner:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"{path}: not an Ed25519 private key")
        return cls(key)

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(data)


def fingerprint(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def new_key_pem() -> tuple[bytes, bytes]:
    """A new Ed25519 key pair: the private key (PKCS #8 PEM) and the public (SPKI PEM)."""
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public


@dataclass(frozen=True, slots=True)
class Link:
    """Where the previous head is, and what it was."""

    key: str
    sha256: str  # hex SHA-256 of the head's stored bytes
    signature: str  # its signature, base64


def head(
    *,
    writer: str,
    bucket: str,
    prefix: str,
    hour: datetime.datetime,
    part: int,
    count: int,
    manifest_key: str,
    manifest_sha256: str,
    merkle_root: bytes,
    previous: Link | None,
    signer: Signer,
) -> bytes:
    """The signed head of one hour's `part`, as stored (canonical JSON)."""
    body: dict[str, Any] = {
        "format": HEAD_FORMAT,
        "writer": writer,
        "bucket": bucket,
        "prefix": prefix,
        "hour": hour.strftime("%Y-%m-%dT%H:00:00Z"),
        "part": part,
        "count": count,
        "manifest": {"key": manifest_key, "sha256": manifest_sha256},
        "merkle_root": merkle_root.hex(),
        "previous": (
            {"key": previous.key, "sha256": previous.sha256, "signature": previous.signature}
            if previous
            else None
        ),
        "signature_algorithm": signer.algorithm,
        "public_key_sha256": signer.public_key_sha256,
    }
    signature = base64.b64encode(signer.sign(canonical(body))).decode()
    return canonical({**body, "signature": signature})


def verify(stored: bytes, public_key: Ed25519PublicKey) -> dict[str, Any] | None:
    """The head's fields if its signature verifies under `public_key`, else None."""
    import json

    from cryptography.exceptions import InvalidSignature

    try:
        fields = json.loads(stored)
        signature = base64.b64decode(fields.pop("signature"), validate=True)
        public_key.verify(signature, canonical(fields))
    except (ValueError, KeyError, TypeError, InvalidSignature):
        return None
    fields["signature"] = base64.b64encode(signature).decode()
    result: dict[str, Any] = fields
    return result
