"""The channels that send text to a phone number: SMS (``Sms``) and WhatsApp
(``WhatsApp``). They share their checks, their recipient and their copy."""

from __future__ import annotations

from typing import ClassVar

from msgarchive.channels.base import Addressed, Channel, CopyFields, Events, user_id
from msgarchive.rules import PHONE_RULE, FieldViolation, is_phone, normalize_phone
from msgarchive.v1 import archive_service_pb2 as pb


class PhoneChannel(Channel):
    recipient_kind = "phone number"
    lookup_rule = PHONE_RULE

    def _message(self, request: pb.ArchiveRequest) -> pb.SmsMessage | pb.WhatsAppMessage:
        message: pb.SmsMessage | pb.WhatsAppMessage = getattr(request, self.name)
        return message

    def address(self, request: pb.ArchiveRequest) -> Addressed:
        number = normalize_phone(self._message(request).to)
        return Addressed(request, self, number, number)

    def check(self, message: Addressed, found: list[FieldViolation]) -> None:
        text = self._message(message.request)
        if not text.to.strip():
            found.append(FieldViolation(f"{self.name}.to", "is required"))
        elif not is_phone(message.to):
            found.append(FieldViolation(f"{self.name}.to", PHONE_RULE))
        if not text.body:
            found.append(FieldViolation(f"{self.name}.body", "is required"))

    def lookup_identity(self, written: str) -> str | None:
        number = normalize_phone(written)
        return number if is_phone(number) else None

    def message_id_parts(self, message: Addressed) -> list[str]:
        request = message.request
        return [
            request.account_id,
            user_id(request),
            request.batch_id,
            request.campaign_id,
            message.to,
            str(request.created_at_ms),
        ]

    def copy_fields(self, message: Addressed) -> CopyFields:
        text = self._message(message.request)
        fields: CopyFields = [("to", message.to), ("body", text.body)]
        if text.provider:
            fields.append(("provider", text.provider))
        return fields


class Sms(PhoneChannel):
    name = "sms"
    folder = "Sms"
    enum = pb.CHANNEL_SMS
    events: ClassVar[Events] = {"SMS Sent": frozenset({"", "SMS"})}


class WhatsApp(PhoneChannel):
    name = "whatsapp"
    folder = "WhatsApp"
    enum = pb.CHANNEL_WHATSAPP
    events: ClassVar[Events] = {"WhatsApp Sent": frozenset({"", "WHATSAPP"})}


SMS = Sms()
WHATSAPP = WhatsApp()
