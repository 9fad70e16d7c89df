"""Push notifications (APNs, FCM, web push): the ``Push`` folder."""

from __future__ import annotations

from typing import ClassVar

from msgarchive.channels.base import Addressed, Channel, CopyFields, Events, RawJSON, user_id
from msgarchive.rules import FieldViolation, check_id, parse_json_object
from msgarchive.v1 import archive_service_pb2 as pb

# The platforms as the copy writes them.
PLATFORM_NAMES = {pb.PLATFORM_IOS: "iOS", pb.PLATFORM_ANDROID: "Android", pb.PLATFORM_WEB: "Web"}


class Push(Channel):
    name = "push"
    folder = "Push"
    enum = pb.CHANNEL_PUSH
    events: ClassVar[Events] = {
        "Notification Sent iOS": frozenset({"IOS"}),
        "Notification Received Android": frozenset({"ANDROID"}),
        "Notification Received Web": frozenset({"WEB"}),
    }
    platforms = tuple(PLATFORM_NAMES.values())
    recipient_kind = "push identity"

    def address(self, request: pb.ArchiveRequest) -> Addressed:
        # A push's folder is its device's (or customer's) identity, not its token.
        return Addressed(request, self, request.push.to, user_id(request))

    def check(self, message: Addressed, found: list[FieldViolation]) -> None:
        push = message.request.push
        # Web push "tokens" are endpoint URLs of any length: only the size limit applies.
        if not push.to.strip():
            found.append(FieldViolation("push.to", "is required"))
        if push.platform not in PLATFORM_NAMES:
            *others, last = (pb.Platform.Name(p) for p in PLATFORM_NAMES)
            found.append(FieldViolation("push.platform", f"must be {', '.join(others)} or {last}"))
        if not push.payload_json.strip():
            found.append(FieldViolation("push.payload_json", "is required: a JSON object"))
        else:
            why = parse_json_object(push.payload_json)
            if why:
                found.append(FieldViolation("push.payload_json", why))
        check_id(found, "push.target_id", push.target_id, required=False)

    def lookup_identity(self, written: str) -> str | None:
        return written

    def message_id_parts(self, message: Addressed) -> list[str]:
        request = message.request
        return [
            request.account_id,
            request.push.target_id or request.campaign_id,
            request.batch_id,
            request.push.to,
            str(request.created_at_ms),
            message.recipient,
        ]

    def copy_fields(self, message: Addressed) -> CopyFields:
        push = message.request.push
        return [
            ("to", push.to),
            ("payload", RawJSON(push.payload_json.strip())),
            ("platform", PLATFORM_NAMES[push.platform]),
        ]


PUSH = Push()
