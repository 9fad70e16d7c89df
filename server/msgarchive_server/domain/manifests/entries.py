"""What a manifest says of each acknowledged copy: one entry, one Merkle leaf.

Column names follow the S3 Inventory report's Parquet schema where it has
one (bucket, key, version_id, size, e_tag, object_lock_mode,
object_lock_retain_until_date), so one query can join a manifest with an
inventory of the same bucket. The rest are msgarchive's own.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from json.encoder import encode_basestring
from typing import Any


@dataclass(frozen=True, slots=True)
class ManifestEntry:
    bucket: str
    key: str
    version_id: str  # "" on an unversioned bucket
    size: int  # stored (compressed) bytes
    e_tag: str
    sha256: str  # hex SHA-256 of the stored bytes
    message_id: str
    channel: str  # push, email, sms, whatsapp
    campaign_id: str
    user_hash: str
    sent_at: int  # the copy's sent_at, epoch milliseconds
    object_lock_mode: str  # "", GOVERNANCE or COMPLIANCE
    object_lock_retain_until_date: int  # epoch milliseconds, a lower bound; 0 without
    acknowledged_at: int  # when the sidecar journaled it, before the ack, epoch ms

    def as_dict(self) -> dict[str, Any]:
        # Not dataclasses.asdict: it deep-copies, at several times the cost.
        return {name: getattr(self, name) for name in FIELDS}

    def journal_line(self) -> bytes:
        text = _flat_object(self.__getattribute__, _IN_ORDER)
        return ((text if text is not None else _compact(self.as_dict())) + "\n").encode()

    def leaf(self) -> bytes:
        """The entry as its Merkle leaf: canonical JSON (sorted keys, no spaces, UTF-8).

        A verifier rebuilds it from a manifest row the same way (`leaf_of`).
        """
        text = _flat_object(self.__getattribute__, _KEYS_SORTED)
        return text.encode() if text is not None else canonical(self.as_dict())

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ManifestEntry:
        return cls(**{name: data[name] for name in FIELDS})


FIELDS = tuple(field.name for field in fields(ManifestEntry))
# Shared encoders: json.dumps with any non-default argument builds one per call.
_compact = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_canonical = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode


_SORTED = tuple(sorted(FIELDS))
# Each field's name and its JSON key as written (`"name":`), in either order.
_IN_ORDER = tuple((name, f'"{name}":') for name in FIELDS)
_KEYS_SORTED = tuple((name, f'"{name}":') for name in _SORTED)


def canonical(data: dict[str, Any]) -> bytes:
    return _canonical(data).encode()


def leaf_of(row: Mapping[str, Any]) -> bytes:
    """The Merkle leaf of an entry given as a row (`as_dict`'s fields)."""
    text = _flat_object(row.__getitem__, _KEYS_SORTED)
    return text.encode() if text is not None else canonical({name: row[name] for name in FIELDS})


def _flat_object(field: Callable[[str], Any], names: tuple[tuple[str, str], ...]) -> str | None:
    """The fields `names` (each a name and its key as written; the value
    `field(name)`) as one JSON object, in that order, written as the encoders
    above write them (strings by the same function, integers by their repr);
    None when a field is neither, for the encoder to write. Each entry is
    journaled and, by verify, made a leaf again: the encoder took four times
    as long."""
    parts = []
    for name, key in names:
        value = field(name)
        kind = type(value)
        if kind is str:
            parts.append(key + encode_basestring(value))
        elif kind is int:
            parts.append(key + int.__repr__(value))
        else:
            return None
    return "{" + ",".join(parts) + "}"
