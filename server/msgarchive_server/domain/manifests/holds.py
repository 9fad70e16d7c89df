"""Legal holds, placed through the manifests, and their tamper-evident log.

`msgarchive hold on|off` selects copies by campaign, and optionally channel,
month and recipient, from the manifests (so from what was acknowledged, with
each copy's exact version), places or lifts an S3 legal hold on each version,
and then records the change in the hold log:

    _msgarchive/holds/<sequence, 12 digits>.json

Each record names the action, the selection, the reason, when, and every
(key, version) it touched, and links to the record before it by key and
SHA-256; it is signed like a manifest head and written once (If-None-Match),
so two operators never write the same sequence number: the second takes the
next. With retention on, the bucket locks the records as it locks the copies.
Removing or editing one breaks the chain (`verify_log`).
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from msgarchive.keys import parse_key
from msgarchive_server.domain.manifests import parquet, signed_log
from msgarchive_server.domain.manifests.entries import ManifestEntry
from msgarchive_server.domain.manifests.heads import Signer
from msgarchive_server.domain.manifests.sealer import MANIFEST_ROOT, part_name
from msgarchive_server.domain.manifests.signed_log import HOLDS_ROOT
from msgarchive_server.stores import HoldingStore, Store, listed

RECORD_FORMAT = "msgarchive.hold-record.v1"


@dataclass(frozen=True, slots=True)
class Selection:
    campaign_id: str
    channel: str = ""  # push, email, sms, whatsapp; "" for all
    yyyymm: str = ""  # "" for every month
    user_hash: str = ""  # the recipient's user hash; "" for every recipient

    def matches(self, entry: ManifestEntry) -> bool:
        parts = parse_key(entry.key)
        month = parts.yyyymm if parts else ""
        return (
            entry.campaign_id == self.campaign_id
            and (not self.channel or entry.channel == self.channel)
            and (not self.yyyymm or month == self.yyyymm)
            and (not self.user_hash or entry.user_hash == self.user_hash)
        )


def selected(store: HoldingStore, selection: Selection) -> list[tuple[str, str]]:
    """Every (key, version) the manifests list for the selection, each once."""
    found: set[tuple[str, str]] = set()
    root = f"{store.prefix}{MANIFEST_ROOT}/"
    for key in (item.key for item in listed(store, root)):
        named = part_name(key.rsplit("/", 1)[-1])
        if named is not None and named[0] == "manifest":
            for entry in parquet.decode(store.get(key).body):
                if selection.matches(entry):
                    found.add((entry.key, entry.version_id))
    return sorted(found)


def apply_hold(
    store: HoldingStore,
    signer: Signer,
    selection: Selection,
    *,
    on: bool,
    reason: str,
    now: datetime.datetime | None = None,
) -> tuple[str, list[tuple[str, str]]]:
    """Place (`on`) or lift the hold on the selected copies, then log it; the
    record's key and the copies."""
    copies = selected(store, selection)
    for key, version_id in copies:
        store.set_legal_hold(key, version_id, on)
    at = (now or datetime.datetime.now(datetime.UTC)).isoformat(timespec="milliseconds")
    body: dict[str, Any] = {
        "format": RECORD_FORMAT,
        "action": "hold_on" if on else "hold_off",
        "selection": {
            "campaign_id": selection.campaign_id,
            "channel": selection.channel,
            "yyyymm": selection.yyyymm,
            "user_hash": selection.user_hash,
        },
        "reason": reason,
        "at": at,
        "copies": [{"key": k, "version_id": v} for k, v in copies],
    }
    return signed_log.append(store, HOLDS_ROOT, body, signer), copies


def verify_log(store: Store, public_key: Ed25519PublicKey) -> Iterator[tuple[str, str]]:
    """(record key, problem) for every hold record that does not verify or link."""
    return signed_log.verify_chain(store, HOLDS_ROOT, public_key)
