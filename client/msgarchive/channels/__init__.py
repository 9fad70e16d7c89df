"""The channels, each in one module, and the registry that finds them.

A channel module declares everything the archive knows of its channel: its
names (the request's oneof field, the key's folder, the API's enum, the view
API's events and platforms), its checks, how its recipient is normalized (once
per archive), its message-id parts and its copy's fields. Every per-channel
table in the sidecar dispatches on these; an unknown channel raises
`UnknownChannel`, never falls through to another channel's rules.

Adding a channel: its message in the proto (the ArchiveRequest oneof and the
Channel enum), one module here listed in `CHANNELS`, and its read description
(`msgarchive_server.domain.describe`). `tests/unit/test_channels.py` fails until
every table covers it.
"""

from __future__ import annotations

from msgarchive.channels.base import (
    Addressed,
    Channel,
    CopyFields,
    JSONValue,
    RawJSON,
    user_id,
)
from msgarchive.channels.email import EMAIL
from msgarchive.channels.phone import SMS, WHATSAPP
from msgarchive.channels.push import PUSH
from msgarchive.v1 import archive_service_pb2 as pb

__all__ = [
    "CHANNELS",
    "EMAIL",
    "NAMES",
    "PUSH",
    "SMS",
    "WHATSAPP",
    "Addressed",
    "Channel",
    "CopyFields",
    "JSONValue",
    "RawJSON",
    "UnknownChannel",
    "address",
    "named",
    "of_enum",
    "of_folder",
    "of_request",
    "user_id",
]

# In the order of the API's Channel enum.
CHANNELS: tuple[Channel, ...] = (PUSH, EMAIL, SMS, WHATSAPP)
NAMES = tuple(channel.name for channel in CHANNELS)

_BY_NAME = {channel.name: channel for channel in CHANNELS}
_BY_FOLDER = {channel.folder: channel for channel in CHANNELS}
_BY_ENUM = {channel.enum: channel for channel in CHANNELS}


class UnknownChannel(LookupError):
    """A channel name, or a request's message, that no channel module declares."""


def named(name: str) -> Channel:
    """The channel called `name` (one of `NAMES`)."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise UnknownChannel(name) from None


def of_folder(folder: str) -> Channel | None:
    """The channel of a key's folder (``Sms``); None for any other folder."""
    return _BY_FOLDER.get(folder)


def of_enum(value: int) -> Channel | None:
    """The channel of an API `Channel` value; None for CHANNEL_UNSPECIFIED or unknown."""
    return _BY_ENUM.get(pb.Channel.ValueType(value))


def of_request(request: pb.ArchiveRequest) -> Channel | None:
    """The channel of the request's message; None when it has none."""
    field = request.WhichOneof("message")
    return None if field is None else named(field)


def address(request: pb.ArchiveRequest) -> Addressed:
    """The request with its channel and its recipient normalized (ValueError when
    it has no message)."""
    channel = of_request(request)
    if channel is None:
        raise ValueError("the request has no message")
    return channel.address(request)
