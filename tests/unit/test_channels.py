"""The channel registry: every channel in every table, and no channel taken for another."""

from __future__ import annotations

import json
from importlib import resources

import pytest

from msgarchive import channels, rules
from msgarchive.channels import UnknownChannel, phone
from msgarchive.v1 import archive_service_pb2 as pb
from msgarchive.validation import validated, violations
from msgarchive_server.domain import describe, renditions
from msgarchive_server.domain.archive import Archiver
from msgarchive_server.domain.errors import InvalidLookup
from msgarchive_server.domain.reads import SUPPORTED_EVENTS, recipient_hash
from tests import samples
from tests.unit.fakes import FakeStore


def test_the_registry_agrees_with_the_api() -> None:
    assert channels.NAMES == ("push", "email", "sms", "whatsapp")
    oneof = pb.ArchiveRequest.DESCRIPTOR.oneofs_by_name["message"]
    assert [f.name for f in oneof.fields] == list(channels.NAMES)
    values = [v.number for v in pb.Channel.DESCRIPTOR.values if v.number]
    assert [c.enum for c in channels.CHANNELS] == values
    assert channels.of_enum(pb.CHANNEL_UNSPECIFIED) is None
    assert [c.api_name for c in channels.CHANNELS] == ["PUSH", "EMAIL", "SMS", "WHATSAPP"]
    assert [c.folder for c in channels.CHANNELS] == ["Push", "Email", "Sms", "WhatsApp"]
    for channel in channels.CHANNELS:
        assert channels.named(channel.name) is channel
        assert channels.of_folder(channel.folder) is channel
        assert channels.of_enum(channel.enum) is channel


@pytest.mark.parametrize("channel", channels.CHANNELS, ids=channels.NAMES)
def test_every_table_covers_every_channel(channel: channels.Channel) -> None:
    assert channel in describe.CONTENT
    assert channel in renditions.RENDITIONS
    assert channel.events, "a channel the view API cannot find"
    assert {c for c, _ in SUPPORTED_EVENTS.values()} >= {channel}
    assert channel.recipient_kind
    request = samples.REQUESTS[channel.name]()
    message, found = validated(request)
    assert found == []
    assert message is not None
    assert message.channel is channel
    assert channel.message_id_parts(message)
    assert channel.copy_fields(message)[0][0] == "to"


def test_the_openapi_document_names_every_channel_and_event() -> None:
    document = json.loads(
        resources.files("msgarchive_server.edge").joinpath("openapi.json").read_text()
    )
    schemas = document["components"]["schemas"]
    view = schemas["ViewRequest"]["properties"]
    assert view["campaign_channel"]["enum"] == [c.api_name for c in channels.CHANNELS]
    assert view["event_name"]["enum"] == list(SUPPORTED_EVENTS)
    assert schemas["MessageDetails"]["properties"]["channel"]["enum"] == list(channels.NAMES)


def test_the_view_events_keep_the_reference_order() -> None:
    assert list(SUPPORTED_EVENTS)[:2] == ["Email Sent", "SMS Sent"]
    assert list(SUPPORTED_EVENTS)[-3:] == [
        "Notification Sent iOS",
        "Notification Received Android",
        "Notification Received Web",
    ]


def test_an_unknown_channel_raises_instead_of_taking_another_channels_rules(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(UnknownChannel):
        channels.named("fax")
    # A channel the proto has but no module declares is not hashed as a phone.
    monkeypatch.delitem(channels._BY_NAME, "whatsapp")
    with pytest.raises(UnknownChannel):
        violations(samples.whatsapp_request())


def test_a_lookup_recipient_is_normalized_as_the_key_was() -> None:
    email, sms, push = channels.EMAIL, channels.SMS, channels.PUSH
    assert recipient_hash(email, " Jane@Example.COM ", "r") == recipient_hash(
        email, "jane@example.com", "r"
    )
    assert recipient_hash(sms, "+1 (555) 010-2030", "r") == recipient_hash(sms, "15550102030", "r")
    assert recipient_hash(push, "dev-7", "r") != recipient_hash(push, "DEV-7", "r")
    with pytest.raises(InvalidLookup, match="email address"):
        recipient_hash(email, "not-an-address", "recipient")
    with pytest.raises(InvalidLookup, match="phone number"):
        recipient_hash(sms, "12", "recipient")


def test_a_phone_number_is_normalized_once_per_archive(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    original = rules.normalize_phone

    def counted(number: str) -> str:
        calls.append(number)
        return original(number)

    monkeypatch.setattr(phone, "normalize_phone", counted)
    ack = Archiver(FakeStore()).archive(samples.sms_request())
    assert ack.key == samples.expected_key("sms")
    assert len(calls) == 1
