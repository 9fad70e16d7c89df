"""Domain errors to gRPC statuses with google.rpc details, in one place.

Every error carries one `ErrorInfo` (domain "msgarchive.v1", a reason from
protos/msgarchive/v1/error_reason.proto); bad input adds a `BadRequest`
naming each field. Statuses never carry message content.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping

import grpc
from google.protobuf import any_pb2, duration_pb2, message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from msgarchive.errors import ERROR_DOMAIN, bad_request
from msgarchive.v1 import archive_service_pb2 as pb
from msgarchive.validation import FieldViolation
from msgarchive_server.access import RateLimited
from msgarchive_server.accounts import AuthError
from msgarchive_server.archive import (
    ArchiveFailed,
    ArchiveUnavailable,
    DeadlineTooClose,
    InvalidRequest,
)
from msgarchive_server.reads import CopyDamaged, CopyNotFound, InvalidLookup, OutsideAccount
from msgarchive_server.stores import StoreError

# What a read (or the auth step of an archive) can fail with.
READ_ERRORS = (
    AuthError,
    RateLimited,
    InvalidLookup,
    CopyNotFound,
    CopyDamaged,
    OutsideAccount,
    StoreError,
)
# How long an overloaded sidecar asks callers to wait before retrying.
OVERLOAD_RETRY_MS = 50

DomainError = (
    InvalidRequest
    | ArchiveFailed
    | ArchiveUnavailable
    | DeadlineTooClose
    | AuthError
    | RateLimited
    | InvalidLookup
    | CopyNotFound
    | CopyDamaged
    | OutsideAccount
    | StoreError
)


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
    bad = bad_request(found)
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


def invalid_stream_request(problem: str) -> grpc.Status:
    return invalid_message([FieldViolation("archive.request_id", problem)])


def archive_error(status: grpc.Status) -> pb.ArchiveError:
    """A status as a stream answer's ArchiveError: code, reason, and the details."""
    error = pb.ArchiveError(code=grpc.StatusCode(status.code).name, message=status.details)
    for key, value in status.trailing_metadata or ():
        if key != "grpc-status-details-bin":
            continue
        for packed in status_pb2.Status.FromString(value).details:
            if packed.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                packed.Unpack(info)
                error.reason = info.reason
                error.metadata.update(info.metadata)
            elif packed.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                packed.Unpack(bad)
                error.field_violations.extend(
                    pb.FieldViolation(field=v.field, description=v.description)
                    for v in bad.field_violations
                )
            elif packed.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                retry = error_details_pb2.RetryInfo()
                packed.Unpack(retry)
                error.retry_delay_ms = retry.retry_delay.ToMilliseconds()
    return error


def overloaded(limit: int) -> grpc.Status:
    delay = duration_pb2.Duration()
    delay.FromTimedelta(datetime.timedelta(milliseconds=OVERLOAD_RETRY_MS))
    return make_status(
        code_pb2.RESOURCE_EXHAUSTED,
        f"{limit} archives are in flight, the most this sidecar takes: retry shortly",
        "OVERLOADED",
        extra=[error_details_pb2.RetryInfo(retry_delay=delay)],
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
    if isinstance(err, DeadlineTooClose):
        return deadline_too_short()
    if isinstance(err, AuthError):
        if err.wrong_account:
            return make_status(code_pb2.PERMISSION_DENIED, str(err), "WRONG_ACCOUNT")
        return make_status(code_pb2.UNAUTHENTICATED, str(err), "CREDENTIALS_MISSING")
    if isinstance(err, RateLimited):
        delay = duration_pb2.Duration()
        delay.FromTimedelta(datetime.timedelta(seconds=max(err.retry_after, 0.001)))
        retry = error_details_pb2.RetryInfo(retry_delay=delay)
        return make_status(code_pb2.RESOURCE_EXHAUSTED, str(err), "RATE_LIMITED", extra=[retry])
    if isinstance(err, InvalidLookup):
        return make_status(
            code_pb2.INVALID_ARGUMENT,
            str(err),
            "INVALID_LOOKUP",
            extra=[bad_request(err.violations)],
        )
    if isinstance(err, CopyNotFound):
        return make_status(code_pb2.NOT_FOUND, "no archived copy matches", "COPY_NOT_FOUND")
    if isinstance(err, CopyDamaged):
        return make_status(code_pb2.DATA_LOSS, str(err), "COPY_DAMAGED", {"key": err.key})
    if isinstance(err, OutsideAccount):
        return make_status(
            code_pb2.PERMISSION_DENIED,
            "the key is outside this account's copies",
            "WRONG_ACCOUNT",
        )
    return make_status(
        code_pb2.UNAVAILABLE,
        f"the store did not answer: {err.code}",
        "STORE_UNAVAILABLE",
        {"store_error": err.code},
    )


def internal_error() -> grpc.Status:
    return make_status(
        code_pb2.INTERNAL,
        "internal error: the copy may not be stored; do not send the message",
        "INTERNAL_ERROR",
    )
