"""What makes an ArchiveRequest valid: the bad-input rules of the contract.

`violations(request)` lists every problem at once, each naming the field by
its proto path (``push.payload_json``, ``email.cc[1]``), so that a sender can
fix a message in one round trip. The sidecar rejects a request with any
violation before anything is written; the client's offline helper uses the
same rules.
"""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Iterable
from typing import NamedTuple

from msgarchive.v1 import archive_service_pb2 as pb

CAMPAIGN_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,128}")
BATCH_ID_PATTERN = re.compile(r"[0-9]{8}")
# Separators people write inside phone numbers; removed before counting digits.
PHONE_SEPARATORS = re.compile(r"[\s().-]")
PHONE_PATTERN = re.compile(r"[0-9]{8,15}")
# Pragmatic, not RFC 5322: one @, no spaces, a dotted domain of sane labels.
EMAIL_PATTERN = re.compile(
    r"[^@\s]{1,64}@(?=.{1,253}$)(?:[^@\s.]{1,63}\.)+[^@\s.0-9][^@\s.]{0,62}",
)
MAX_ID_LENGTH = 256

JOURNEY_FIELDS = ("journey_id", "journey_node_id", "journey_name")


class FieldViolation(NamedTuple):
    """One bad field: its proto path and what is wrong with it (never its value)."""

    field: str
    description: str


def summarize(found: Iterable[FieldViolation]) -> str:
    """The violations in one line, for a status message: ``field problem; ...``."""
    return "; ".join(f"{v.field} {v.description}" for v in found)


def normalize_phone(number: str) -> str:
    """A phone number in country-code format: digits only, no ``+``."""
    digits = PHONE_SEPARATORS.sub("", number.strip())
    return digits.removeprefix("+")


def normalize_email(address: str) -> str:
    """An email address as it is hashed: trimmed and lowercased."""
    return address.strip().lower()


# What a campaign id must be: it is a folder of the key.
CAMPAIGN_ID_RULE = "must be 1 to 128 characters of A-Z a-z 0-9 _ -"


def is_campaign_id(value: str) -> bool:
    return CAMPAIGN_ID_PATTERN.fullmatch(value) is not None


def is_email(address: str) -> bool:
    return EMAIL_PATTERN.fullmatch(address.strip()) is not None


def parse_json_object(text: str) -> str | None:
    """Why `text` is not a JSON object, or None when it is one."""

    def reject_constant(name: str) -> object:
        raise ValueError(f"{name} is not valid JSON")

    try:
        value = json.loads(text, parse_constant=reject_constant)
    except RecursionError:
        return "is nested too deeply"
    except json.JSONDecodeError as err:
        # Where, not what: no message content leaks into the error.
        return f"is not valid JSON: {err.msg} (line {err.lineno}, column {err.colno})"
    except ValueError as err:
        return f"is not valid JSON: {err}"
    if not isinstance(value, dict):
        return f"must be a JSON object, not a JSON {type(value).__name__}"
    return None


def violations(request: pb.ArchiveRequest) -> list[FieldViolation]:
    """Every reason `request` cannot be archived; empty when it can."""
    found: list[FieldViolation] = []
    _check_context(request, found)
    channel = request.WhichOneof("message")
    if channel is None:
        found.append(FieldViolation("message", "one of push, email, sms, whatsapp is required"))
    elif channel == "push":
        _check_push(request.push, found)
    elif channel == "email":
        _check_email(request.email, found)
    else:
        _check_phone_message(channel, getattr(request, channel), found)
    return found


def _check_id(found: list[FieldViolation], field: str, value: str, *, required: bool) -> bool:
    """Check an identifier: present (when required) and of bounded length."""
    if not value.strip():
        if required:
            found.append(FieldViolation(field, "is required"))
        return False
    if len(value) > MAX_ID_LENGTH:
        found.append(FieldViolation(field, f"must be at most {MAX_ID_LENGTH} characters"))
        return False
    return True


def _check_context(request: pb.ArchiveRequest, found: list[FieldViolation]) -> None:
    _check_id(found, "account_id", request.account_id, required=True)
    if _check_id(found, "batch_id", request.batch_id, required=True):
        why = _batch_id_problem(request.batch_id)
        if why:
            found.append(FieldViolation("batch_id", why))
    if request.created_at_ms <= 0:
        found.append(FieldViolation("created_at_ms", "is required: epoch milliseconds, positive"))
    if not request.device_identity.strip() and not request.customer_identity.strip():
        found.append(
            FieldViolation("customer_identity", "is required when device_identity is empty")
        )
    for field in ("device_identity", "customer_identity"):
        _check_id(found, field, getattr(request, field), required=False)
    if not request.campaign_id:
        found.append(FieldViolation("campaign_id", "is required"))
    elif not is_campaign_id(request.campaign_id):
        found.append(FieldViolation("campaign_id", CAMPAIGN_ID_RULE))
    if not request.campaign_name.strip():
        found.append(FieldViolation("campaign_name", "is required"))
    given = [f for f in JOURNEY_FIELDS if getattr(request, f)]
    if given:
        for field in JOURNEY_FIELDS:
            if field not in given:
                found.append(FieldViolation(field, "is required when any journey field is set"))


def _batch_id_problem(batch_id: str) -> str | None:
    if not BATCH_ID_PATTERN.fullmatch(batch_id):
        return "must be a date written yyyymmdd"
    try:
        datetime.date(int(batch_id[:4]), int(batch_id[4:6]), int(batch_id[6:]))
    except ValueError:
        return "is not a real calendar date (yyyymmdd)"
    return None


def _check_push(push: pb.PushMessage, found: list[FieldViolation]) -> None:
    # Web push "tokens" are endpoint URLs of any length: only the size limit applies.
    if not push.to.strip():
        found.append(FieldViolation("push.to", "is required"))
    if push.platform not in (pb.PLATFORM_IOS, pb.PLATFORM_ANDROID, pb.PLATFORM_WEB):
        found.append(
            FieldViolation(
                "push.platform", "must be PLATFORM_IOS, PLATFORM_ANDROID or PLATFORM_WEB"
            )
        )
    if not push.payload_json.strip():
        found.append(FieldViolation("push.payload_json", "is required: a JSON object"))
    else:
        why = parse_json_object(push.payload_json)
        if why:
            found.append(FieldViolation("push.payload_json", why))
    _check_id(found, "push.target_id", push.target_id, required=False)


def _check_email(email: pb.EmailMessage, found: list[FieldViolation]) -> None:
    for field in ("to", "from_address"):
        value = getattr(email, field)
        if not value.strip():
            found.append(FieldViolation(f"email.{field}", "is required"))
        elif not is_email(value):
            found.append(FieldViolation(f"email.{field}", "must be an email address"))
    for field in ("cc", "bcc"):
        for index, address in enumerate(getattr(email, field)):
            if not is_email(address):
                found.append(FieldViolation(f"email.{field}[{index}]", "must be an email address"))


def _check_phone_message(
    channel: str, message: pb.SmsMessage | pb.WhatsAppMessage, found: list[FieldViolation]
) -> None:
    if not message.to.strip():
        found.append(FieldViolation(f"{channel}.to", "is required"))
    elif not PHONE_PATTERN.fullmatch(normalize_phone(message.to)):
        found.append(
            FieldViolation(
                f"{channel}.to", "must be a phone number with country code: 8 to 15 digits"
            )
        )
    if not message.body:
        found.append(FieldViolation(f"{channel}.body", "is required"))
