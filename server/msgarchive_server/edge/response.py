"""Domain results as API messages: an ack, a copy's file info, a listed copy."""

from __future__ import annotations

from msgarchive.keys import parse_key
from msgarchive.v1 import archive_service_pb2 as pb
from msgarchive_server.domain.archive import Ack
from msgarchive_server.domain.reads import Copy
from msgarchive_server.stores import ObjectSummary

_RETENTION_MODES = {
    "GOVERNANCE": pb.RETENTION_MODE_GOVERNANCE,
    "COMPLIANCE": pb.RETENTION_MODE_COMPLIANCE,
}


def to_response(request_id: str, ack: Ack) -> pb.ArchiveResponse:
    return pb.ArchiveResponse(
        request_id=request_id,
        message_id=ack.message_id,
        bucket=ack.bucket,
        key=ack.key,
        sent_at_ms=ack.sent_at_ms,
        attempts=ack.attempts,
        etag=ack.etag,
        version_id=ack.version_id,
        already_archived=ack.already_archived,
        stored_bytes=ack.stored_bytes,
        retention=retention(ack.retention_mode, ack.retain_until_ms),
    )


def retention(mode: str, retain_until_ms: int, legal_hold: bool = False) -> pb.Retention | None:
    """A copy's retention as the API says it; None for a copy without either."""
    if not mode and not legal_hold:
        return None
    return pb.Retention(
        mode=_RETENTION_MODES.get(mode, pb.RETENTION_MODE_UNSPECIFIED),
        retain_until_ms=retain_until_ms,
        legal_hold=legal_hold,
    )


def ack_fields(ack: Ack) -> dict[str, object]:
    """What a log line says about an ack (ids and sizes, never content)."""
    return {
        "attempts": ack.attempts,
        "message_id": ack.message_id,
        "already_archived": ack.already_archived,
        "stored_bytes": ack.stored_bytes,
    }


def file_info(copy: Copy) -> pb.FileInfo:
    return pb.FileInfo(
        bucket=copy.bucket,
        key=copy.key,
        version_id=copy.stored.version_id,
        etag=copy.stored.etag,
        size_bytes=len(copy.stored.body),
        retention=retention(
            copy.stored.retention_mode, copy.stored.retain_until_ms, copy.stored.legal_hold
        ),
    )


def summary(item: ObjectSummary) -> pb.ArchivedMessageSummary:
    """A listed object; the id parts stay empty for a key that is not a copy's."""
    parts = parse_key(item.key)
    return pb.ArchivedMessageSummary(
        key=item.key,
        message_id=parts.message_id if parts else "",
        user_hash=parts.user_hash if parts else "",
        campaign_id=parts.campaign_id if parts else "",
        stored_at_ms=item.stored_at_ms,
        size_bytes=item.size,
        etag=item.etag,
    )
