"""Text messages as RSMF 2.0 (Relativity Short Message Format), the short-message
format of review tools (Relativity, Reveal, and others that read it).

An RSMF file is an RFC 5322 message whose one attachment, `rsmf.zip`, holds
`rsmf_manifest.json`: the participants, the conversations and the events.
Each file here is one conversation: one recipient's messages on one channel
on one UTC day (the slice review tools expect), sent by the account to the
recipient (`direction: outgoing`). Every event names its copy (message id,
key, campaign) in `custom` fields, so that a reviewer can go from a bubble to
the native copy. Like the rest of a production, the same messages give the
same bytes: fixed zip times, a boundary of the conversation's own.
"""

from __future__ import annotations

import datetime
import email.policy
import hashlib
import io
import json
import zipfile
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

VERSION = "2.0.0"
GENERATOR = "msgarchive"
ZIP_TIME = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True, slots=True)
class Message:
    """One text message of a conversation, from its copy."""

    channel: str  # sms or whatsapp
    fields: dict[str, Any]  # the copy's JSON
    key: str

    @property
    def sent_at(self) -> datetime.datetime:
        return datetime.datetime.fromtimestamp(int(self.fields["sent_at"]) / 1000, datetime.UTC)

    @property
    def day(self) -> str:
        return self.sent_at.strftime("%Y-%m-%d")


def conversation_name(message: Message) -> str:
    """The file a message's conversation is written to: channel, recipient, day."""
    return f"{message.channel}-{message.fields.get('to', '')}-{message.day}.rsmf"


def _timestamp(instant: datetime.datetime) -> str:
    return instant.strftime("%Y-%m-%dT%H:%M:%S") + f".{instant.microsecond // 1000:03d}Z"


def manifest(messages: list[Message]) -> dict[str, Any]:
    """The rsmf_manifest.json of one conversation's messages (oldest first)."""
    first = messages[0]
    to = str(first.fields.get("to", ""))
    providers = sorted({str(m.fields.get("provider", "")) for m in messages} - {""})
    sender_name = ", ".join(providers) or "the sender"
    conversation = f"{first.channel}:{to}:{first.day}"
    return {
        "version": VERSION,
        "participants": [
            {"id": "sender", "display": f"Sender ({sender_name})"},
            {
                "id": "recipient",
                "display": f"+{to}",
                "custom": [{"name": "Phone Number", "value": f"+{to}"}],
            },
        ],
        "conversations": [
            {
                "id": conversation,
                "display": f"{first.channel.upper()} to +{to}, {first.day}",
                "platform": first.channel,
                "type": "direct",
                "participants": ["sender", "recipient"],
            }
        ],
        "events": [
            {
                "id": str(m.fields.get("message_id", "")),
                "type": "message",
                "body": str(m.fields.get("body", "")),
                "participant": "sender",
                "conversation": conversation,
                "timestamp": _timestamp(m.sent_at),
                "direction": "outgoing",
                "custom": [
                    {"name": "Campaign", "value": str(m.fields.get("campaign_name", ""))},
                    {"name": "Campaign ID", "value": str(m.fields.get("campaign_id", ""))},
                    {"name": "Archive Key", "value": m.key},
                ],
            }
            for m in messages
        ],
        "eventcollectionid": conversation,
    }


def rsmf(messages: list[Message]) -> bytes:
    """One conversation as an RSMF file (messages in sent order)."""
    messages = sorted(messages, key=lambda m: (m.sent_at, m.key))
    data = manifest(messages)
    packed = io.BytesIO()
    with zipfile.ZipFile(packed, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        entry = zipfile.ZipInfo("rsmf_manifest.json", date_time=ZIP_TIME)
        entry.compress_type = zipfile.ZIP_DEFLATED
        archive.writestr(entry, json.dumps(data, indent=1, ensure_ascii=False, sort_keys=True))
    participants = data["participants"]
    wrapper = EmailMessage(policy=email.policy.SMTP)
    wrapper["From"] = participants[0]["display"]
    wrapper["To"] = participants[1]["display"]
    wrapper["Subject"] = data["conversations"][0]["display"]
    wrapper["X-RSMF-Version"] = VERSION
    wrapper["X-RSMF-Generator"] = GENERATOR
    wrapper["X-RSMF-BeginDate"] = data["events"][0]["timestamp"]
    wrapper["X-RSMF-EndDate"] = data["events"][-1]["timestamp"]
    wrapper["X-RSMF-EventCount"] = str(len(messages))
    preview = "\n".join(f"{e['timestamp']}  {e['body']}" for e in data["events"])
    wrapper.set_content(preview, subtype="plain", cte="quoted-printable")
    wrapper.add_attachment(
        packed.getvalue(), maintype="application", subtype="zip", filename="rsmf.zip"
    )
    digest = hashlib.sha256(data["conversations"][0]["id"].encode()).hexdigest()[:32]
    wrapper.set_boundary(f"=_msgarchive_rsmf_{digest}")
    return wrapper.as_bytes()
