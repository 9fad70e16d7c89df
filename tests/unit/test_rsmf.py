"""RSMF 2.0 conversations, read back with the email parser and zipfile, and held
to what the RSMF 2.0 manifest schema requires (written out here from it)."""

from __future__ import annotations

import datetime
import email
import email.policy
import io
import json
import zipfile
from typing import Any

from msgarchive_server.domain import rsmf

EVENT_TYPES = {"message", "disclaimer", "join", "leave", "history", "unknown"}


def copy(n: int, body: str, *, day: int = 1) -> rsmf.Message:
    sent = datetime.datetime(2024, 9, day, 10, n, tzinfo=datetime.UTC)
    fields = {
        "to": "15555555555", "body": body, "provider": "twilio",
        "sent_at": int(sent.timestamp() * 1000), "message_id": f"{n:064x}",
        "campaign_id": 1722529032, "campaign_name": "Flat Offer",
    }  # fmt: skip
    return rsmf.Message("sms", fields, f"sent_messages/Sms/202409/c/h/{n:064x}.json.lz4")


def unpack(data: bytes) -> tuple[email.message.EmailMessage, dict[str, Any]]:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, email.message.EmailMessage)
    (attachment,) = list(message.iter_attachments())
    assert attachment.get_filename() == "rsmf.zip"
    assert attachment["Content-Transfer-Encoding"] == "base64"
    assert attachment.get_content_disposition() == "attachment"
    with zipfile.ZipFile(io.BytesIO(attachment.get_content())) as packed:
        assert packed.namelist() == ["rsmf_manifest.json"]  # at the root
        manifest: dict[str, Any] = json.loads(packed.read("rsmf_manifest.json"))
    return message, manifest


def test_a_conversation_is_an_rsmf_file_review_tools_read() -> None:
    later, earlier = copy(2, "Sale ends tonight"), copy(1, "Flat 20% off today")
    message, manifest = unpack(rsmf.rsmf([later, earlier]))
    assert message["X-RSMF-Version"] == "2.0.0"
    assert message["X-RSMF-EventCount"] == "2"
    assert message["X-RSMF-BeginDate"] == "2024-09-01T10:01:00.000Z"
    assert message["X-RSMF-EndDate"] == "2024-09-01T10:02:00.000Z"
    # What the 2.0.0 schema requires.
    assert set(manifest) >= {"version", "participants", "conversations", "events"}
    assert len(manifest["version"]) >= 5
    participants = {p["id"] for p in manifest["participants"]}
    conversations = {c["id"] for c in manifest["conversations"]}
    for conversation in manifest["conversations"]:
        assert conversation["platform"] == "sms"
        assert conversation["type"] in ("direct", "channel")
        assert set(conversation["participants"]) <= participants
    for event in manifest["events"]:
        assert event["type"] in EVENT_TYPES
        assert event["participant"] in participants
        assert event["conversation"] in conversations
        assert event["direction"] in ("incoming", "outgoing")
        datetime.datetime.fromisoformat(event["timestamp"])
    for item in [*manifest["participants"], *manifest["events"]]:
        for custom in item.get("custom", []):
            assert custom["name"]
            assert custom["value"]  # minLength 1
    assert [e["body"] for e in manifest["events"]] == ["Flat 20% off today", "Sale ends tonight"]


def test_the_same_messages_give_the_same_bytes_and_a_day_its_own_file() -> None:
    first, second = copy(1, "a"), copy(2, "b")
    assert rsmf.rsmf([first, second]) == rsmf.rsmf([second, first])
    assert rsmf.conversation_name(first) == "sms-15555555555-2024-09-01.rsmf"
    assert rsmf.conversation_name(copy(3, "c", day=2)) == "sms-15555555555-2024-09-02.rsmf"
