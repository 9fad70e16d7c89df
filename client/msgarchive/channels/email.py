"""Email: the ``Email`` folder."""

from __future__ import annotations

from typing import ClassVar

from msgarchive.channels.base import Addressed, Channel, CopyFields, Events, user_id
from msgarchive.rules import EMAIL_RULE, FieldViolation, is_email, normalize_email
from msgarchive.v1 import archive_service_pb2 as pb


class Email(Channel):
    name = "email"
    folder = "Email"
    enum = pb.CHANNEL_EMAIL
    events: ClassVar[Events] = {"Email Sent": frozenset({"", "EMAIL"})}
    recipient_kind = "email address"
    lookup_rule = EMAIL_RULE

    def address(self, request: pb.ArchiveRequest) -> Addressed:
        # The copy keeps the address as written (trimmed); its hash, lowercased.
        to = request.email.to.strip()
        return Addressed(request, self, to, normalize_email(to))

    def check(self, message: Addressed, found: list[FieldViolation]) -> None:
        email = message.request.email
        for field in ("to", "from_address"):
            value = getattr(email, field)
            if not value.strip():
                found.append(FieldViolation(f"email.{field}", "is required"))
            elif not is_email(value):
                found.append(FieldViolation(f"email.{field}", EMAIL_RULE))
        for field in ("cc", "bcc"):
            for index, address in enumerate(getattr(email, field)):
                if not is_email(address):
                    found.append(FieldViolation(f"email.{field}[{index}]", EMAIL_RULE))

    def lookup_identity(self, written: str) -> str | None:
        return normalize_email(written) if is_email(written) else None

    def message_id_parts(self, message: Addressed) -> list[str]:
        request = message.request
        return [
            request.account_id,
            request.campaign_id,
            user_id(request),
            message.recipient,
            request.batch_id,
            str(request.created_at_ms),
        ]

    def copy_fields(self, message: Addressed) -> CopyFields:
        email = message.request.email
        fields: CopyFields = [
            ("to", message.to),
            ("subject", email.subject),
            ("from_name", email.from_name),
            ("from_address", email.from_address.strip()),
        ]
        fields += [
            (name, [a.strip() for a in getattr(email, name)])
            for name in ("cc", "bcc")
            if getattr(email, name)
        ]
        fields += [("html_body", email.html_body), ("plaintext_body", email.plaintext_body)]
        if email.amp_body:
            fields.append(("amp_body", email.amp_body))
        fields.append(("headers", dict(email.headers)))
        return fields


EMAIL = Email()
