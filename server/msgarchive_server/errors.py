"""Domain errors to gRPC statuses with google.rpc details, in one place.

Every error carries one `ErrorInfo` (domain "msgarchive.v1", a reason from
protos/msgarchive/v1/error_reason.proto); bad input adds a `BadRequest`
naming each field. Statuses never carry message content.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import grpc
from google.protobuf import any_pb2, message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from msgarchive.errors import ERROR_DOMAIN
from msgarchive.validation import FieldViolation
from msgarchive_server.archive import (
    ArchiveFailed,
    ArchiveUnavailable,
    DeadlineTooClose,
    InvalidRequest,
)

DomainError = InvalidRequest | ArchiveFailed | ArchiveUnavailable | DeadlineTooClose


def make_status(
    code: int,
    message_text: str,
    reason: str,
    metadata: Mapping[str, str] | None = None,
    extra: Iterable[message.Message] = (),
) -> grpc.Status:
    """A status with one ErrorInfo and any further google.rpc details."""
    info = error_details_pb2.ErrorInfo(reason=reason, domain=ERROR_DOMAIN, metadata=metadata)
    details = []
    for detail in (info, *extra):
        packed = any_pb2.Any()
        packed.Pack(detail)
        details.append(packed)
    status: grpc.Status = rpc_status.to_status(
        status_pb2.Status(code=code, message=message_text, details=details)
    )
    return status


def invalid_message(found: list[FieldViolation]) -> grpc.Status:
    bad = error_details_pb2.BadRequest(
        field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
            for v in found
        ]
    )
    summary = "; ".join(f"{v.field} {v.description}" for v in found)
    return make_status(
        code_pb2.INVALID_ARGUMENT, f"invalid message: {summary}", "INVALID_MESSAGE", extra=[bad]
    )


def failed_to_archive(err: ArchiveFailed) -> grpc.Status:
    return make_status(
        code_pb2.UNAVAILABLE,
        f"the copy was not stored: {err.error.code} after {err.attempts} attempt(s); "
        "do not send the message",
        "FAILED_TO_ARCHIVE",
        {"attempts": str(err.attempts), "store_error": err.error.code},
    )


def archive_unavailable(err: ArchiveUnavailable) -> grpc.Status:
    metadata = {"store_error": err.store_error}
    if err.attempts:
        metadata["attempts"] = str(err.attempts)
    return make_status(
        code_pb2.FAILED_PRECONDITION,
        f"archiving is unavailable ({err.store_error}): check the store's credentials "
        "and bucket; do not send the message",
        "ARCHIVE_UNAVAILABLE",
        metadata,
    )


def deadline_too_short() -> grpc.Status:
    return make_status(
        code_pb2.DEADLINE_EXCEEDED,
        "the deadline left no time to store the copy; nothing was written",
        "DEADLINE_TOO_SHORT",
    )


def status_for(err: DomainError) -> grpc.Status:
    """The status a domain error is answered with."""
    if isinstance(err, InvalidRequest):
        return invalid_message(err.violations)
    if isinstance(err, ArchiveFailed):
        return failed_to_archive(err)
    if isinstance(err, ArchiveUnavailable):
        return archive_unavailable(err)
    return deadline_too_short()


def internal_error() -> grpc.Status:
    return make_status(
        code_pb2.INTERNAL,
        "internal error: the copy may not be stored; do not send the message",
        "INTERNAL_ERROR",
    )
