"""Where a message's copy lives: its message id, user hash and key.

This is the bit-exact contract (DESIGN §1), shared by the sidecar and by
senders, who can compute a copy's key offline with `locate()`:

    sent_messages/<Channel>/<yyyymm>/<campaign_id>/<user_hash>/<message_id>.json.lz4

The functions below expect a valid request (see `msgarchive.validation`);
`locate()` checks first and raises `InvalidMessage` for one that is not.
"""

from __future__ import annotations

import hashlib
from typing import NamedTuple

from msgarchive.errors import InvalidMessage
from msgarchive.v1 import archive_service_pb2 as pb
from msgarchive.validation import normalize_email, normalize_phone, violations

KEY_ROOT = "sent_messages"
KEY_SUFFIX = ".json.lz4"

# The oneof field name of each channel, and its folder in the key.
CHANNEL_FOLDERS = {"push": "Push", "email": "Email", "sms": "Sms", "whatsapp": "WhatsApp"}


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
    folder = CHANNEL_FOLDERS[channel]
    return f"{prefix}{KEY_ROOT}/{folder}/{yyyymm}/{campaign_id}/{hashed_user}/{msg_id}{KEY_SUFFIX}"


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
