"""Keys, hashes and message ids against vectors computed by hand (tests/samples.py)."""

from __future__ import annotations

import re

import pytest

from msgarchive import InvalidMessage, locate
from msgarchive.keys import (
    KeyParts,
    archive_key,
    key_prefix,
    message_id_parts,
    parse_key,
)
from msgarchive.v1 import archive_service_pb2 as pb
from tests import samples

# The reference document's example path, and the shape every key must have.
REFERENCE_EXAMPLE = (
    "sent_messages/WhatsApp/202409/1725435360/6e6d748a7cc752fbe4f72c777cc50a74/"
    "49482d489b871510eeff7db9a8ab443248ad1ea596e5108e02d16ab5b2ea47db.json.lz4"
)
KEY_SHAPE = re.compile(
    r"sent_messages/(Push|Email|Sms|WhatsApp)/[0-9]{6}/[A-Za-z0-9_-]{1,128}/"
    r"[0-9a-f]{32}/[0-9a-f]{64}\.json\.lz4"
)


def test_the_reference_example_parses_into_its_parts_and_back() -> None:
    parts = parse_key(REFERENCE_EXAMPLE)
    assert parts == KeyParts(
        prefix="",
        channel="whatsapp",
        yyyymm="202409",
        campaign_id="1725435360",
        user_hash="6e6d748a7cc752fbe4f72c777cc50a74",
        message_id="49482d489b871510eeff7db9a8ab443248ad1ea596e5108e02d16ab5b2ea47db",
    )
    assert parts.key == REFERENCE_EXAMPLE
    assert parse_key("tenant/a/" + REFERENCE_EXAMPLE) == parts._replace(prefix="tenant/a/")


@pytest.mark.parametrize(
    "key",
    [
        REFERENCE_EXAMPLE.replace("/WhatsApp/", "/Whatsapp/"),  # folders are exact
        REFERENCE_EXAMPLE.removesuffix(".lz4"),
        REFERENCE_EXAMPLE.replace("49482d48", "49482D48"),  # ids are lowercase hex
        REFERENCE_EXAMPLE.replace("/1725435360/", "/"),  # a part missing
        "sent_messages/Sms/notes.txt",
        "",
    ],
)
def test_parse_key_refuses_what_is_not_a_copys_key(key: str) -> None:
    assert parse_key(key) is None


def test_listing_prefixes_take_the_parts_in_order() -> None:
    assert key_prefix() == "sent_messages/"
    assert key_prefix("t/", "sms") == "t/sent_messages/Sms/"
    assert key_prefix("", "whatsapp", "202409", "c-1") == "sent_messages/WhatsApp/202409/c-1/"
    assert key_prefix("", "push", "202409", None, "ab") == "sent_messages/Push/202409/"
    full = key_prefix("", "email", "202409", "c", "ab")
    assert archive_key("email", "202409", "c", "ab", "0" * 64).startswith(full)


@pytest.mark.parametrize("channel", list(samples.REQUESTS))
def test_key_and_ids_match_hand_computed_vectors(channel: str) -> None:
    where = locate(samples.REQUESTS[channel]())
    message_id, user_hash = samples.IDS[channel]
    assert where.channel == channel
    assert where.message_id == message_id
    assert where.user_hash == user_hash
    assert where.key == samples.expected_key(channel)
    assert KEY_SHAPE.fullmatch(where.key)


@pytest.mark.parametrize(
    ("request_factory", "joined"),
    [
        (samples.push_request, samples.PUSH_ID_INPUT),
        (samples.email_request, samples.EMAIL_ID_INPUT),
        (samples.sms_request, samples.PHONE_ID_INPUT),
        (samples.whatsapp_request, samples.PHONE_ID_INPUT),
    ],
)
def test_message_id_inputs_are_in_contract_order(request_factory, joined) -> None:  # type: ignore[no-untyped-def]
    assert "-".join(message_id_parts(request_factory())) == joined


def test_push_target_defaults_to_campaign_and_device_identity_wins() -> None:
    request = samples.push_request(device_identity="dev-7")
    request.push.target_id = ""
    where = locate(request)
    # printf '%s' 'acc-1722529032-20240901-frfsgvrwe:APfdsa-1722443282680-dev-7' | sha256sum
    assert where.message_id == "6819f4692f06f4d5e55a8257afd2f31e13b2af30dc3d1df7413d454fbf84d876"
    # printf '%s' 'dev-7' | md5sum
    assert where.user_hash == "60673f968b13c34efba278eb7eda30ae"


def test_email_hash_ignores_case_and_surrounding_space() -> None:
    a = samples.email_request()
    b = samples.email_request()
    b.email.to = "jane.doe@example.com"
    assert locate(a) == locate(b)


def test_phone_formats_land_on_the_same_key() -> None:
    request = samples.sms_request()
    plain = samples.sms_request()
    plain.sms.to = "15555555555"
    assert locate(request).key == locate(plain).key


def test_same_inputs_same_key_and_created_at_changes_it() -> None:
    assert locate(samples.sms_request()) == locate(samples.sms_request())
    later = locate(samples.sms_request(created_at_ms=samples.CREATED_AT_MS + 1))
    assert later.message_id != samples.PHONE_MESSAGE_ID


@pytest.mark.parametrize(
    ("prefix", "expected"), [("archive", "archive/"), ("/a/b/", "a/b/"), ("", "")]
)
def test_prefix_is_normalized(prefix: str, expected: str) -> None:
    where = locate(samples.sms_request(), prefix)
    assert where.key == samples.expected_key("sms", expected)


def test_locate_refuses_invalid_request_naming_fields() -> None:
    with pytest.raises(InvalidMessage) as raised:
        locate(pb.ArchiveRequest(sms=pb.SmsMessage(to="12", body="x")))
    fields = [field for field, _ in raised.value.field_violations]
    assert fields == [
        "account_id",
        "batch_id",
        "created_at_ms",
        "customer_identity",
        "campaign_id",
        "campaign_name",
        "sms.to",
    ]
