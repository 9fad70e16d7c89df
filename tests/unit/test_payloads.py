"""The JSON copy of each channel, to the byte, and its LZ4 frame."""

from __future__ import annotations

import json

import lz4.frame
import pytest

from msgarchive.channels import address
from msgarchive.keys import message_id
from msgarchive_server.domain.payloads import compress, decompress, id_value, render
from tests import samples

SENT_AT = 1722443282999


@pytest.mark.parametrize("channel", list(samples.REQUESTS))
def test_copy_matches_the_contract_field_by_field(channel: str) -> None:
    request = samples.REQUESTS[channel]()
    body = render(address(request), message_id=message_id(request), sent_at_ms=SENT_AT)
    assert json.loads(body) == samples.expected_copy(channel, SENT_AT)


def test_sms_copy_is_exact_bytes_in_contract_order() -> None:
    request = samples.sms_request()
    body = render(address(request), message_id=samples.PHONE_MESSAGE_ID, sent_at_ms=SENT_AT)
    assert body == (
        b'{"version":1,"to":"15555555555","body":"Hi there!","provider":"twilio",'
        b'"sent_at":1722443282999,"message_id":"' + samples.PHONE_MESSAGE_ID.encode() + b'",'
        b'"campaign_id":1722529032,"campaign_name":"Flat Offer Sale Campaign","user_id":45142169}'
    )


def test_email_field_order_and_optional_fields() -> None:
    request = samples.email_request()
    keys = list(json.loads(render(address(request), message_id="m", sent_at_ms=1)))
    assert keys == [
        "version", "to", "subject", "from_name", "from_address", "cc", "html_body",
        "plaintext_body", "headers", "sent_at", "message_id", "campaign_id", "campaign_name",
        "user_id", "journey_id", "journey_node_id", "journey_name",
    ]  # fmt: skip
    request.email.amp_body = "<amp>"
    del request.email.cc[:]
    copy = json.loads(render(address(request), message_id="m", sent_at_ms=1))
    assert copy["amp_body"] == "<amp>"
    assert "cc" not in copy
    assert "bcc" not in copy
    assert None not in copy.values()


def test_push_payload_numbers_are_kept_as_written() -> None:
    request = samples.push_request()
    body = render(address(request), message_id="m", sent_at_ms=1).decode()
    assert '"payload":' + samples.PUSH_PAYLOAD_JSON + "," in body
    assert '"price":1.50' in body
    assert "123456789012345678901234567890" in body
    assert '"platform":"iOS"' in body


def test_absent_optionals_are_omitted_never_null() -> None:
    request = samples.sms_request()
    request.sms.provider = ""
    copy = json.loads(render(address(request), message_id="m", sent_at_ms=1))
    assert "provider" not in copy
    assert "journey_id" not in copy
    assert None not in copy.values()


@pytest.mark.parametrize(
    ("raw", "value"),
    [("1722529032", 1722529032), ("0", 0), ("007", "007"), ("12a", "12a"), ("", ""), ("-5", "-5")],
)
def test_ids_are_numbers_only_when_canonical_digits(raw: str, value: object) -> None:
    assert id_value(raw) == value


def test_non_ascii_is_utf8_not_escaped() -> None:
    request = samples.sms_request()
    request.sms.body = "Grüße, 東京 🎉"
    body = render(address(request), message_id="m", sent_at_ms=1)
    assert "Grüße, 東京 🎉".encode() in body
    assert json.loads(body)["body"] == "Grüße, 東京 🎉"


def test_compressed_copy_is_a_standard_lz4_frame() -> None:
    body = render(address(samples.email_request()), message_id="m", sent_at_ms=1)
    blob = compress(body)
    assert blob[:4] == b"\x04\x22\x4d\x18"  # the LZ4 frame magic number
    assert lz4.frame.decompress(blob) == body
    assert decompress(blob) == body
    # Its header carries the content size, and it ends in a content checksum.
    info = lz4.frame.get_frame_info(blob)
    assert info["content_size"] == len(body)
    assert info["content_checksum"] is True
