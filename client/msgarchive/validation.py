"""What makes an ArchiveRequest valid: the bad-input rules of the contract.

`violations(request)` lists every problem at once, each naming the field by
its proto path (``push.payload_json``, ``email.cc[1]``), so that a sender can
fix a message in one round trip. The sidecar rejects a request with any
violation before anything is written; the client's offline helper uses the
same rules. The fields every request has are checked here; its message, by
its channel (`msgarchive.channels`).
"""

from __future__ import annotations

import datetime

from msgarchive import channels
from msgarchive.channels import Addressed
from msgarchive.rules import (
    BATCH_ID_PATTERN,
    CAMPAIGN_ID_PATTERN,
    CAMPAIGN_ID_RULE,
    EMAIL_PATTERN,
    MAX_ID_LENGTH,
    PHONE_PATTERN,
    FieldViolation,
    check_id,
    is_campaign_id,
    is_email,
    normalize_email,
    normalize_phone,
    parse_json_object,
    summarize,
)
from msgarchive.v1 import archive_service_pb2 as pb

__all__ = [
    "BATCH_ID_PATTERN",
    "CAMPAIGN_ID_PATTERN",
    "CAMPAIGN_ID_RULE",
    "EMAIL_PATTERN",
    "JOURNEY_FIELDS",
    "MAX_ID_LENGTH",
    "PHONE_PATTERN",
    "FieldViolation",
    "is_campaign_id",
    "is_email",
    "normalize_email",
    "normalize_phone",
    "parse_json_object",
    "summarize",
    "validated",
    "violations",
]

JOURNEY_FIELDS = ("journey_id", "journey_node_id", "journey_name")


def violations(request: pb.ArchiveRequest) -> list[FieldViolation]:
    """Every reason `request` cannot be archived; empty when it can."""
    return validated(request)[1]


def validated(
    request: pb.ArchiveRequest,
) -> tuple[Addressed | None, list[FieldViolation]]:
    """The request addressed (None when it has no message), and its violations."""
    found: list[FieldViolation] = []
    _check_context(request, found)
    channel = channels.of_request(request)
    if channel is None:
        names = ", ".join(channels.NAMES)
        found.append(FieldViolation("message", f"one of {names} is required"))
        return None, found
    message = channel.address(request)
    channel.check(message, found)
    return message, found


def _check_context(request: pb.ArchiveRequest, found: list[FieldViolation]) -> None:
    check_id(found, "account_id", request.account_id, required=True)
    if check_id(found, "batch_id", request.batch_id, required=True):
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
        check_id(found, field, getattr(request, field), required=False)
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
