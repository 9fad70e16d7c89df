"""A tamper-evident log in the store: numbered records, each signed and linked
to the one before by key and SHA-256.

    <root>/<sequence, 12 digits>.json

A record is written once (If-None-Match), so two writers never take the same
number: the second takes the next. Removing, editing or re-signing a record
breaks the chain, which `verify_chain` names record by record. The hold log
and the export log are two such logs.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from msgarchive_server.domain.manifests.entries import canonical
from msgarchive_server.domain.manifests.heads import Signer
from msgarchive_server.domain.manifests.heads import verify as verify_signed
from msgarchive_server.domain.manifests.sealer import JSON
from msgarchive_server.stores import Store, listed

# The logs: legal holds placed and lifted; productions handed out.
HOLDS_ROOT = "_msgarchive/holds"
EXPORTS_ROOT = "_msgarchive/exports"


def append(store: Store, root: str, body: dict[str, Any], signer: Signer) -> str:
    """Sign `body` as the log's next record and write it; the record's key.

    `root` is the log's folder below the store's prefix, without a trailing
    ``/``. The record gains `sequence`, `previous`, the signer's algorithm and
    key fingerprint, and `signature`.
    """
    folder = f"{store.prefix}{root}/"
    while True:
        last = _last(store, folder)
        sequence = int(last[0][len(folder) : -len(".json")]) + 1 if last else 1
        record = {
            **body,
            "sequence": sequence,
            "previous": {"key": last[0], "sha256": last[1]} if last else None,
            "signature_algorithm": signer.algorithm,
            "public_key_sha256": signer.public_key_sha256,
        }
        signature = base64.b64encode(signer.sign(canonical(record))).decode()
        key = f"{folder}{sequence:012d}.json"
        written = store.put(key, canonical({**record, "signature": signature}), JSON)
        if written.existing_copy is None:
            return key
        # Another writer took this number first: chain after theirs.


def verify_chain(
    store: Store, root: str, public_key: Ed25519PublicKey
) -> Iterator[tuple[str, str]]:
    """(record key, problem) for every record that does not verify or link."""
    folder = f"{store.prefix}{root}/"
    previous: dict[str, str] | None = None
    expected = 1
    for key in (item.key for item in listed(store, folder)):
        stored = store.get(key).body
        fields = verify_signed(stored, public_key)
        if fields is None:
            yield key, "its signature does not verify"
            previous = None
        else:
            if fields.get("sequence") != expected:
                yield key, f"record {expected} is missing before it"
            elif fields.get("previous") != previous:
                yield key, "it does not link to the record before"
            previous = {"key": key, "sha256": hashlib.sha256(stored).hexdigest()}
        expected = int(key[len(folder) : -len(".json")]) + 1


def _last(store: Store, folder: str) -> tuple[str, str] | None:
    found = [item.key for item in listed(store, folder)]
    if not found:
        return None
    return found[-1], hashlib.sha256(store.get(found[-1]).body).hexdigest()
