"""The key layout: where a message's copy lives, in one place.

The bit-exact contract of the archive (the README's "The archived copy"),
shared by the sidecar and by senders, who can compute a copy's key offline
with `locate()`:

    [prefix/]sent_messages/<Channel>/<yyyymm>/<campaign_id>/<user_hash>/<message_id>.json.lz4

This module owns the channel names (the request's oneof field, the key's
folder, the API's `Channel` enum), building a key or a listing prefix, and
parsing a key; nothing else spells them out. The request functions expect a
valid request (see `msgarchive.validation`); `locate()` checks first and
raises `InvalidMessage` for one that is not.
"""

from __future__ import annotations

import hashlib
import re
from typing import NamedTuple

from msgarchive.errors import InvalidMessage
from msgarchive.v1 import archive_service_pb2 as pb
from msgarchive.validation import (
    CAMPAIGN_ID_PATTERN,
    normalize_email,
    normalize_phone,
    violations,
)

KEY_ROOT = "sent_messages"
KEY_SUFFIX = ".json.lz4"


class ChannelSpec(NamedTuple):
    """One channel's names."""

    name: str  # the ArchiveRequest oneof field, and the name used everywhere else
    folder: str  # its folder in the key
    enum: pb.Channel.ValueType  # the API's Channel value


CHANNELS = (
    ChannelSpec("push", "Push", pb.CHANNEL_PUSH),
    ChannelSpec("email", "Email", pb.CHANNEL_EMAIL),
    ChannelSpec("sms", "Sms", pb.CHANNEL_SMS),
    ChannelSpec("whatsapp", "WhatsApp", pb.CHANNEL_WHATSAPP),
)
CHANNEL_NAMES = tuple(spec.name for spec in CHANNELS)
_BY_NAME = {spec.name: spec for spec in CHANNELS}
_BY_FOLDER = {spec.folder: spec for spec in CHANNELS}
_BY_ENUM = {spec.enum: spec for spec in CHANNELS}


def channel_named(name: str) -> ChannelSpec:
    """The channel called `name` (one of `CHANNEL_NAMES`); KeyError for any other."""
    return _BY_NAME[name]


def channel_of_enum(value: int) -> ChannelSpec | None:
    """The channel of an API `Channel` value; None for CHANNEL_UNSPECIFIED or unknown."""
    return _BY_ENUM.get(pb.Channel.ValueType(value))


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


# Strict where the sidecar relies on it (the channel folder, the 64-hex message
# id and the suffix); any single path segment in between.
_KEY = re.compile(
    r"(?P<prefix>(?:.*/)?)"
    + re.escape(KEY_ROOT)
    # Every segment as the layout writes it, so that no crafted key ('..', '.',
    # a NUL byte, a backslash, a 10 KB segment) is ever taken for a copy's.
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


def channel_of(request: pb.ArchiveRequest) -> str:
    """The request's channel: ``push``, ``email``, ``sms`` or ``whatsapp``."""
    channel = request.WhichOneof("message")
    if channel is None:
        raise ValueError("the request has no message")
    return channel


def user_id(request: pb.ArchiveRequest) -> str:
    """The device identity when present, else the customer identity."""
    return request.device_identity or request.customer_identity


def recipient(request: pb.ArchiveRequest) -> str:
    """The identity the user hash is taken of, normalized for the channel."""
    channel = channel_of(request)
    if channel == "push":
        return user_id(request)
    if channel == "email":
        return normalize_email(request.email.to)
    return normalize_phone(getattr(request, channel).to)


def user_hash(identity: str) -> str:
    """Lowercase hex MD5 of an (already normalized) recipient identity."""
    return hashlib.md5(identity.encode(), usedforsecurity=False).hexdigest()


def message_id_parts(request: pb.ArchiveRequest) -> list[str]:
    """The channel's message-id inputs, in the contract's order."""
    channel = channel_of(request)
    created = str(request.created_at_ms)
    if channel == "push":
        target = request.push.target_id or request.campaign_id
        return [
            request.account_id,
            target,
            request.batch_id,
            request.push.to,
            created,
            user_id(request),
        ]
    if channel == "email":
        return [
            request.account_id,
            request.campaign_id,
            user_id(request),
            normalize_email(request.email.to),
            request.batch_id,
            created,
        ]
    return [
        request.account_id,
        user_id(request),
        request.batch_id,
        request.campaign_id,
        normalize_phone(getattr(request, channel).to),
        created,
    ]


def message_id(request: pb.ArchiveRequest) -> str:
    """Lowercase hex SHA-256 of the message-id inputs joined with ``-``."""
    return hashlib.sha256("-".join(message_id_parts(request)).encode()).hexdigest()


def archive_key(
    channel: str, yyyymm: str, campaign_id: str, hashed_user: str, msg_id: str, prefix: str = ""
) -> str:
    """The key of a copy, below an optional prefix (``""`` or ending in ``/``)."""
    folder = _BY_NAME[channel].folder
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
        parts.append(_BY_NAME[channel].folder)
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
    spec = _BY_FOLDER.get(found["folder"])
    if spec is None:
        return None
    return KeyParts(
        found["prefix"],
        spec.name,
        found["yyyymm"],
        found["campaign_id"],
        found["user_hash"],
        found["message_id"],
    )


def normalize_prefix(prefix: str) -> str:
    """A key prefix as keys are built with it: no leading ``/``, one trailing ``/``."""
    prefix = prefix.strip("/")
    return f"{prefix}/" if prefix else ""


def location(request: pb.ArchiveRequest, prefix: str = "") -> ArchiveLocation:
    """The location of a request already known to be valid."""
    channel = channel_of(request)
    msg_id = message_id(request)
    hashed = user_hash(recipient(request))
    key = archive_key(
        channel, request.batch_id[:6], request.campaign_id, hashed, msg_id, normalize_prefix(prefix)
    )
    return ArchiveLocation(channel, msg_id, hashed, key)


def locate(request: pb.ArchiveRequest, prefix: str = "") -> ArchiveLocation:
    """Where the sidecar stores `request`'s copy, computed offline.

    `prefix` is the sidecar's configured key prefix, if any. Raises
    `InvalidMessage` (listing every bad field) for a request the sidecar
    would reject.
    """
    found = violations(request)
    if found:
        raise InvalidMessage.from_violations(found)
    return location(request, prefix)
