"""The key layout: where a message's copy lives, in one place.

The bit-exact contract of the archive (the README's "The archived copy"),
shared by the sidecar and by senders, who can compute a copy's key offline
with `locate()`:

    [prefix/]sent_messages/<Channel>/<yyyymm>/<campaign_id>/<user_hash>/<message_id>.json.lz4

This module builds a key or a listing prefix, parses a key, and computes the
message id and the user hash; what differs by channel (its folder, its
recipient, its message-id parts) it asks the channel (`msgarchive.channels`).
The request functions expect a valid request (see `msgarchive.validation`);
`locate()` checks first and raises `InvalidMessage` for one that is not.
"""

from __future__ import annotations

import hashlib
import re
from typing import NamedTuple

from msgarchive import channels
from msgarchive.channels import Addressed
from msgarchive.errors import InvalidMessage
from msgarchive.rules import CAMPAIGN_ID_PATTERN
from msgarchive.v1 import archive_service_pb2 as pb
from msgarchive.validation import validated

KEY_ROOT = "sent_messages"
KEY_SUFFIX = ".json.lz4"


class KeyParts(NamedTuple):
    """A copy's key, taken apart."""

    prefix: str  # "" or ending in "/"
    channel: str
    yyyymm: str
    campaign_id: str
    user_hash: str
    message_id: str

    @property
    def key(self) -> str:
        return archive_key(
            self.channel,
            self.yyyymm,
            self.campaign_id,
            self.user_hash,
            self.message_id,
            self.prefix,
        )


# Every segment as the layout writes it, so that no crafted key ('..', '.', a
# NUL byte, a backslash, a 10 KB segment) is ever taken for a copy's.
_KEY = re.compile(
    r"(?P<prefix>(?:.*/)?)"
    + re.escape(KEY_ROOT)
    + r"/(?P<folder>[A-Za-z]+)/(?P<yyyymm>[0-9]{6})/(?P<campaign_id>"
    + CAMPAIGN_ID_PATTERN.pattern
    + r")/(?P<user_hash>[0-9a-f]{32})"
    + r"/(?P<message_id>[0-9a-f]{64})"
    + re.escape(KEY_SUFFIX)
)


class ArchiveLocation(NamedTuple):
    """Where a message's copy is stored."""

    channel: str
    message_id: str
    user_hash: str
    key: str


def user_hash(identity: str) -> str:
    """Lowercase hex MD5 of an (already normalized) recipient identity."""
    return hashlib.md5(identity.encode(), usedforsecurity=False).hexdigest()


def message_id_parts(request: pb.ArchiveRequest | Addressed) -> list[str]:
    """The channel's message-id inputs, in the contract's order."""
    message = request if isinstance(request, Addressed) else channels.address(request)
    return message.channel.message_id_parts(message)


def message_id(request: pb.ArchiveRequest | Addressed) -> str:
    """Lowercase hex SHA-256 of the message-id inputs joined with ``-``."""
    return hashlib.sha256("-".join(message_id_parts(request)).encode()).hexdigest()


def archive_key(
    channel: str, yyyymm: str, campaign_id: str, hashed_user: str, msg_id: str, prefix: str = ""
) -> str:
    """The key of a copy, below an optional prefix (``""`` or ending in ``/``)."""
    folder = channels.named(channel).folder
    return f"{prefix}{KEY_ROOT}/{folder}/{yyyymm}/{campaign_id}/{hashed_user}/{msg_id}{KEY_SUFFIX}"


def key_prefix(
    prefix: str = "",
    channel: str | None = None,
    yyyymm: str | None = None,
    campaign_id: str | None = None,
    hashed_user: str | None = None,
) -> str:
    """The prefix that every copy's key below the given parts starts with, ending in
    ``/``. Parts are taken in order up to the first missing one."""
    parts = [KEY_ROOT]
    if channel is not None:
        parts.append(channels.named(channel).folder)
        for part in (yyyymm, campaign_id, hashed_user):
            if part is None:
                break
            parts.append(part)
    return prefix + "/".join(parts) + "/"


def parse_key(key: str) -> KeyParts | None:
    """The parts of a copy's key, or None if `key` is not one."""
    found = _KEY.fullmatch(key)
    if found is None:
        return None
    channel = channels.of_folder(found["folder"])
    if channel is None:
        return None
    return KeyParts(
        found["prefix"],
        channel.name,
        found["yyyymm"],
        found["campaign_id"],
        found["user_hash"],
        found["message_id"],
    )


def normalize_prefix(prefix: str) -> str:
    """A key prefix as keys are built with it: no leading ``/``, one trailing ``/``."""
    prefix = prefix.strip("/")
    return f"{prefix}/" if prefix else ""


def location(message: Addressed, prefix: str = "") -> ArchiveLocation:
    """The location of a request already known to be valid (see `validated`)."""
    request = message.request
    msg_id = message_id(message)
    hashed = user_hash(message.recipient)
    key = archive_key(
        message.channel.name,
        request.batch_id[:6],
        request.campaign_id,
        hashed,
        msg_id,
        normalize_prefix(prefix),
    )
    return ArchiveLocation(message.channel.name, msg_id, hashed, key)


def locate(request: pb.ArchiveRequest, prefix: str = "") -> ArchiveLocation:
    """Where the sidecar stores `request`'s copy, computed offline.

    `prefix` is the sidecar's configured key prefix, if any. Raises
    `InvalidMessage` (listing every bad field) for a request the sidecar
    would reject.
    """
    message, found = validated(request)
    if found or message is None:
        raise InvalidMessage.from_violations(found)
    return location(message, prefix)
