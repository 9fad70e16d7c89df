"""One sample message per channel, with its key and copy worked out by hand.

The hashes below were computed with coreutils, not with the code under test:
    printf '%s' 'acc-42-20240901-frfsgvrwe:APfdsa-1722443282680-45142169' | sha256sum
and likewise for each `*_ID_INPUT` and `*_HASH_INPUT`.
"""

from __future__ import annotations

from typing import Any

from msgarchive.v1 import archive_service_pb2 as pb

CREATED_AT_MS = 1722443282680
PUSH_PAYLOAD_JSON = (
    '{"alert":{"title":"Flat 20% off","body":"Today only"},"badge":3,'
    '"price":1.50,"big":123456789012345678901234567890,"nested":{"ratio":2.0e-3}}'
)


def context(**overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "account_id": "acc",
        "batch_id": "20240901",
        "created_at_ms": CREATED_AT_MS,
        "customer_identity": "45142169",
        "campaign_id": "1722529032",
        "campaign_name": "Flat Offer Sale Campaign",
    }
    fields.update(overrides)
    return fields


def push_request(**overrides: Any) -> pb.ArchiveRequest:
    return pb.ArchiveRequest(
        **context(**overrides),
        push=pb.PushMessage(
            to="frfsgvrwe:APfdsa",
            platform=pb.PLATFORM_IOS,
            payload_json=PUSH_PAYLOAD_JSON,
            target_id="42",
        ),
    )


PUSH_ID_INPUT = "acc-42-20240901-frfsgvrwe:APfdsa-1722443282680-45142169"
PUSH_MESSAGE_ID = "d41040d4c9635362d4860fe6ff4d58ae2391014ded3bd03c4e273e68c493266a"
PUSH_USER_HASH = "7358f56e701f36602dd9817d75e6f95a"  # md5("45142169")


def email_request(**overrides: Any) -> pb.ArchiveRequest:
    return pb.ArchiveRequest(
        **context(**overrides),
        journey_id="2450",
        journey_node_id="1",
        journey_name="Flat Offer Sale Journey",
        email=pb.EmailMessage(
            to="  Jane.Doe@Example.com ",
            subject="20% off coupon inside!",
            from_name="Shop",
            from_address="news@shop.example",
            cc=["cc@example.org"],
            html_body="<p>Hi Jane</p>",
            plaintext_body="Hi Jane",
            headers={"List-Unsubscribe": "<mailto:u@shop.example>"},
        ),
    )


EMAIL_ID_INPUT = "acc-1722529032-45142169-jane.doe@example.com-20240901-1722443282680"
EMAIL_MESSAGE_ID = "9c4b3acede12a977e7a136ba8f1ddc4a95970b7d5865078d4ee3bf5f7e848d8e"
EMAIL_USER_HASH = "0cba00ca3da1b283a57287bcceb17e35"  # md5("jane.doe@example.com")


def sms_request(**overrides: Any) -> pb.ArchiveRequest:
    return pb.ArchiveRequest(
        **context(**overrides),
        sms=pb.SmsMessage(to="+1 (555) 555-5555", body="Hi there!", provider="twilio"),
    )


def whatsapp_request(**overrides: Any) -> pb.ArchiveRequest:
    return pb.ArchiveRequest(
        **context(**overrides),
        whatsapp=pb.WhatsAppMessage(to="+1 555.555.5555", body="Hi there!", provider="twilio"),
    )


PHONE_ID_INPUT = "acc-45142169-20240901-1722529032-15555555555-1722443282680"
PHONE_MESSAGE_ID = "6d30816d5cd60e4704412c299e371b5f43daf3e5458e17fa984ab742c6a88b5f"
PHONE_USER_HASH = "b3e2048d6e5378173713705fde6a93da"  # md5("15555555555")


def expected_copy(channel: str, sent_at: int) -> dict[str, Any]:
    """The JSON copy of the sample request of `channel`, field by field."""
    common = {
        "sent_at": sent_at,
        "campaign_id": 1722529032,
        "campaign_name": "Flat Offer Sale Campaign",
        "user_id": 45142169,
    }
    if channel == "push":
        return {
            "version": 1,
            "to": "frfsgvrwe:APfdsa",
            "payload": {
                "alert": {"title": "Flat 20% off", "body": "Today only"},
                "badge": 3,
                "price": 1.50,
                "big": 123456789012345678901234567890,
                "nested": {"ratio": 2.0e-3},
            },
            "platform": "iOS",
            "message_id": PUSH_MESSAGE_ID,
            **common,
        }
    if channel == "email":
        return {
            "version": 1,
            "to": "Jane.Doe@Example.com",
            "subject": "20% off coupon inside!",
            "from_name": "Shop",
            "from_address": "news@shop.example",
            "cc": ["cc@example.org"],
            "html_body": "<p>Hi Jane</p>",
            "plaintext_body": "Hi Jane",
            "headers": {"List-Unsubscribe": "<mailto:u@shop.example>"},
            "message_id": EMAIL_MESSAGE_ID,
            "journey_id": 2450,
            "journey_node_id": 1,
            "journey_name": "Flat Offer Sale Journey",
            **common,
        }
    return {
        "version": 1,
        "to": "15555555555",
        "body": "Hi there!",
        "provider": "twilio",
        "message_id": PHONE_MESSAGE_ID,
        **common,
    }


REQUESTS = {
    "push": push_request,
    "email": email_request,
    "sms": sms_request,
    "whatsapp": whatsapp_request,
}
FOLDERS = {"push": "Push", "email": "Email", "sms": "Sms", "whatsapp": "WhatsApp"}
IDS = {
    "push": (PUSH_MESSAGE_ID, PUSH_USER_HASH),
    "email": (EMAIL_MESSAGE_ID, EMAIL_USER_HASH),
    "sms": (PHONE_MESSAGE_ID, PHONE_USER_HASH),
    "whatsapp": (PHONE_MESSAGE_ID, PHONE_USER_HASH),
}


def expected_key(channel: str, prefix: str = "") -> str:
    message_id, user_hash = IDS[channel]
    return (
        f"{prefix}sent_messages/{FOLDERS[channel]}/202409/1722529032/"
        f"{user_hash}/{message_id}.json.lz4"
    )
