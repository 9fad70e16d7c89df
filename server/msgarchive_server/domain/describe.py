"""What a copy says, for people: its details and its content per channel.

Push content is drawn from the payload, whose shape depends on the platform:
the title and text are looked for where FCM (`notification.*`), APNs
(`aps.alert.*`) and web push (top level) put them, and every http(s) URL in
the payload (images, deep links) is listed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from msgarchive import channels
from msgarchive.channels import Channel
from msgarchive_server.domain.reads import Copy, sent_time

_TITLE_PATHS = (
    ("title",),
    ("notification", "title"),
    ("aps", "alert", "title"),
    ("alert", "title"),
    ("data", "title"),
)
_TEXT_PATHS = (
    ("body",),
    ("message",),
    ("alert",),
    ("notification", "body"),
    ("aps", "alert", "body"),
    ("aps", "alert"),
    ("alert", "body"),
    ("data", "body"),
    ("data", "message"),
)


def details(copy: Copy) -> dict[str, Any]:
    """MessageDetails fields of a copy."""
    fields = copy.fields
    channel = channels.named(copy.parts.channel)
    sent_at = int(fields.get("sent_at", 0))
    return {
        "message_id": str(fields.get("message_id", "")),
        "channel": channel.name,
        # A channel without platforms is its own.
        "platform": str(fields.get("platform", "")) if channel.platforms else channel.name,
        "sent_at_ms": sent_at,
        "sent_time": sent_time(sent_at),
        "message_to": _text(fields.get("to")),
        "campaign_id": _text(fields.get("campaign_id")),
        "campaign_name": _text(fields.get("campaign_name")),
        "user_id": _text(fields.get("user_id")),
        "journey_id": _text(fields.get("journey_id")),
        "journey_node_id": _text(fields.get("journey_node_id")),
        "journey_name": _text(fields.get("journey_name")),
    }


def content(copy: Copy) -> dict[str, Any]:
    """MessageContent fields of a copy, as its channel describes them."""
    return content_of(copy.parts.channel, copy.fields)


def content_of(channel: str, fields: dict[str, Any]) -> dict[str, Any]:
    """MessageContent fields of a copy's JSON fields (`channel`: its channel's name)."""
    return CONTENT[channels.named(channel)](fields)


def _email_content(fields: dict[str, Any]) -> dict[str, Any]:
    return {
        "subject": _text(fields.get("subject")),
        "html_body": _text(fields.get("html_body")),
        "plaintext_body": _text(fields.get("plaintext_body")),
        "amp_body": _text(fields.get("amp_body")),
    }


def _text_message_content(fields: dict[str, Any]) -> dict[str, Any]:
    return {"message": _text(fields.get("body"))}


def _push_content(fields: dict[str, Any]) -> dict[str, Any]:
    payload = fields.get("payload")
    if not isinstance(payload, dict):
        return {}
    return {
        "title": _first_text(payload, _TITLE_PATHS),
        "message": _first_text(payload, _TEXT_PATHS),
        "related_urls": list(dict.fromkeys(_urls(payload))),
    }


# Each channel's read description: a copy's JSON fields -> MessageContent fields.
CONTENT: dict[Channel, Callable[[dict[str, Any]], dict[str, Any]]] = {
    channels.PUSH: _push_content,
    channels.EMAIL: _email_content,
    channels.SMS: _text_message_content,
    channels.WHATSAPP: _text_message_content,
}


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _first_text(payload: dict[str, Any], paths: tuple[tuple[str, ...], ...]) -> str:
    for path in paths:
        value: Any = payload
        for name in path:
            value = value.get(name) if isinstance(value, dict) else None
        if isinstance(value, str) and value:
            return value
    return ""


def _urls(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        if value.startswith(("https://", "http://")):
            yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _urls(item)
    elif isinstance(value, list):
        for item in value:
            yield from _urls(item)
