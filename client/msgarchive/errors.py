"""Typed errors of the msgarchive client.

Every failed call raises a `MsgArchiveError` subclass carrying the status
code, the `google.rpc.ErrorInfo` reason and metadata, and the unpacked
`google.rpc` details; a raw `grpc.RpcError` never escapes the client. Any of
these errors means the message was **not** archived and must not be sent.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol, TypeVar

import grpc
from google.protobuf import any_pb2, message
from google.rpc import error_details_pb2, status_pb2

from msgarchive.validation import FieldViolation, summarize

ERROR_DOMAIN = "msgarchive.v1"
STATUS_DETAILS_KEY = "grpc-status-details-bin"

_M = TypeVar("_M", bound=message.Message)

# The google.rpc detail types a msgarchive error may carry.
_DETAIL_TYPES: tuple[type[message.Message], ...] = (
    error_details_pb2.ErrorInfo,
    error_details_pb2.BadRequest,
    error_details_pb2.RetryInfo,
    error_details_pb2.ResourceInfo,
    error_details_pb2.DebugInfo,
)


class MsgArchiveError(Exception):
    """A call to the sidecar failed; the message was not archived."""

    code: grpc.StatusCode
    reason: str
    metadata: Mapping[str, str]
    details: tuple[message.Message, ...]

    def __init__(
        self,
        message: str,
        *,
        code: grpc.StatusCode,
        reason: str = "",
        metadata: Mapping[str, str] | None = None,
        details: Iterable[message.Message] = (),
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.reason = reason
        self.metadata = dict(metadata or {})
        self.details = tuple(details)

    def __str__(self) -> str:
        reason = f" {self.reason}" if self.reason else ""
        return f"{self.code.name}{reason}: {self.message}"

    def detail(self, kind: type[_M]) -> _M | None:
        """The first detail of type `kind`, if the error carries one."""
        for item in self.details:
            if isinstance(item, kind):
                return item
        return None


class InvalidArgument(MsgArchiveError):
    """INVALID_ARGUMENT: the request is malformed; nothing was written."""

    @property
    def field_violations(self) -> list[tuple[str, str]]:
        """Each bad field's path and what is wrong with it."""
        bad = self.detail(error_details_pb2.BadRequest)
        if bad is None:
            return []
        return [(v.field, v.description) for v in bad.field_violations]


class InvalidMessage(InvalidArgument):
    """INVALID_MESSAGE: the message breaks the archive contract; nothing was written."""

    @classmethod
    def from_violations(cls, violations: Iterable[FieldViolation]) -> InvalidMessage:
        found = list(violations)
        info = error_details_pb2.ErrorInfo(reason="INVALID_MESSAGE", domain=ERROR_DOMAIN)
        return cls(
            f"invalid message: {summarize(found)}",
            code=grpc.StatusCode.INVALID_ARGUMENT,
            reason=info.reason,
            details=(info, bad_request(found)),
        )


class InvalidLookup(InvalidArgument):
    """INVALID_LOOKUP: a read request is malformed, or its event is unsupported."""


class _Violation(Protocol):
    @property
    def field(self) -> str: ...
    @property
    def description(self) -> str: ...


def bad_request(violations: Iterable[_Violation]) -> error_details_pb2.BadRequest:
    """The google.rpc.BadRequest detail naming each bad field."""
    return error_details_pb2.BadRequest(
        field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
            for v in violations
        ]
    )


class Unavailable(MsgArchiveError):
    """UNAVAILABLE: the sidecar, or its store, did not answer. Safe to retry."""


class ArchiveFailed(Unavailable):
    """The copy was not stored (store failure, or the sidecar was unreachable).

    Safe to retry. When the sidecar gave up after its own retries the reason is
    ``FAILED_TO_ARCHIVE``; the sender marks such a message "Failed to Archive
    Message" and does not send it.
    """

    @property
    def attempts(self) -> int | None:
        value = self.metadata.get("attempts")
        return int(value) if value and value.isdigit() else None


class JournalFull(ArchiveFailed):
    """JOURNAL_FULL: the sidecar's manifest journal has no disk space, so it
    could not record the ack; the message was not archived. Safe to retry."""


class StreamIdle(Unavailable):
    """STREAM_IDLE: the sidecar closed an ArchiveStream that sent nothing for a
    while; every message it sent was answered. Open a new stream to send more."""


class StoreUnavailable(Unavailable):
    """STORE_UNAVAILABLE: the store did not answer a read. Safe to retry."""


class ArchiveUnavailable(MsgArchiveError):
    """FAILED_PRECONDITION: archiving cannot work (credentials, bucket)."""


class ResourceExhausted(MsgArchiveError):
    """RESOURCE_EXHAUSTED: retry after `retry_delay` seconds."""

    @property
    def retry_delay(self) -> float | None:
        info = self.detail(error_details_pb2.RetryInfo)
        if info is None or not info.HasField("retry_delay"):
            return None
        delay: float = info.retry_delay.ToTimedelta().total_seconds()
        return delay


class RateLimited(ResourceExhausted):
    """RATE_LIMITED: over the account's read rate limit."""


class Overloaded(ResourceExhausted):
    """OVERLOADED: the sidecar serves as many archives as it takes; nothing was written."""


class DeadlineExceeded(MsgArchiveError):
    """DEADLINE_EXCEEDED: no ack within the deadline; the copy may not exist."""


class DeadlineTooShort(DeadlineExceeded):
    """DEADLINE_TOO_SHORT: no store attempt could finish before the call's
    deadline, so none was made; nothing was written."""


class Unauthenticated(MsgArchiveError):
    """UNAUTHENTICATED: credentials are missing or wrong."""


class CredentialsMissing(Unauthenticated):
    """CREDENTIALS_MISSING: no API key, or one the sidecar does not know."""


class PermissionDenied(MsgArchiveError):
    """PERMISSION_DENIED: the credentials may not do this."""


class WrongAccount(PermissionDenied):
    """WRONG_ACCOUNT: the API key belongs to another account than the one named."""


class NotFound(MsgArchiveError):
    """NOT_FOUND: no such copy."""


class CopyNotFound(NotFound):
    """COPY_NOT_FOUND: no copy is stored at the key or matches the lookup."""


class DataLoss(MsgArchiveError):
    """DATA_LOSS: the stored copy is damaged (metadata `key` names it)."""


class CopyDamaged(DataLoss):
    """COPY_DAMAGED: the stored copy does not decompress, parse, or match its key."""


class InternalError(MsgArchiveError):
    """INTERNAL: a fault in the sidecar; the copy may not be stored."""


# The typed error of each ErrorReason the sidecar sends (error_reason.proto).
ERROR_CLASSES: dict[str, type[MsgArchiveError]] = {
    "INVALID_MESSAGE": InvalidMessage,
    "FAILED_TO_ARCHIVE": ArchiveFailed,
    "ARCHIVE_UNAVAILABLE": ArchiveUnavailable,
    "INTERNAL_ERROR": InternalError,
    "DEADLINE_TOO_SHORT": DeadlineTooShort,
    "INVALID_LOOKUP": InvalidLookup,
    "COPY_NOT_FOUND": CopyNotFound,
    "COPY_DAMAGED": CopyDamaged,
    "CREDENTIALS_MISSING": CredentialsMissing,
    "WRONG_ACCOUNT": WrongAccount,
    "RATE_LIMITED": RateLimited,
    "STORE_UNAVAILABLE": StoreUnavailable,
    "OVERLOADED": Overloaded,
    "JOURNAL_FULL": JournalFull,
    "STREAM_IDLE": StreamIdle,
}
# Errors without a msgarchive reason (the sidecar was not reached, the call
# timed out in transit), by status code.
_BY_CODE: dict[grpc.StatusCode, type[MsgArchiveError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.FAILED_PRECONDITION: ArchiveUnavailable,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.DATA_LOSS: DataLoss,
    grpc.StatusCode.INTERNAL: InternalError,
}


def error_class(code: grpc.StatusCode, reason: str, *, archiving: bool) -> type[MsgArchiveError]:
    """The typed error for a status: by its reason, else by its code.

    An archive call that failed without a reason (the sidecar was unreachable)
    is `ArchiveFailed`: the copy was not stored, and retrying is safe.
    """
    kind = ERROR_CLASSES.get(reason) or _BY_CODE.get(code, MsgArchiveError)
    if archiving and kind is Unavailable:
        return ArchiveFailed
    return kind


class _RpcErrorLike(Protocol):
    """What both grpc.RpcError (sync) and grpc.aio.AioRpcError expose."""

    def code(self) -> grpc.StatusCode: ...
    def details(self) -> str | None: ...
    def trailing_metadata(self) -> object: ...


def from_rpc_error(error: _RpcErrorLike, *, archiving: bool = False) -> MsgArchiveError:
    """The typed error for a failed call, with its google.rpc details unpacked."""
    code = error.code()
    text = error.details() or code.name
    details = _unpack(_status_details(error.trailing_metadata()))
    reason, metadata = "", {}
    for item in details:
        if isinstance(item, error_details_pb2.ErrorInfo):
            reason, metadata = item.reason, dict(item.metadata)
            break
    kind = error_class(code, reason, archiving=archiving)
    return kind(text, code=code, reason=reason, metadata=metadata, details=details)


def from_archive_error(error: Any) -> MsgArchiveError:
    """The typed error for one message's error on an ArchiveStream (a `pb.ArchiveError`)."""
    code = grpc.StatusCode.__members__.get(error.code, grpc.StatusCode.UNKNOWN)
    details: list[message.Message] = [
        error_details_pb2.ErrorInfo(
            reason=error.reason, domain=ERROR_DOMAIN, metadata=dict(error.metadata)
        )
    ]
    if error.field_violations:
        details.append(bad_request(error.field_violations))
    if error.retry_delay_ms:
        retry = error_details_pb2.RetryInfo()
        retry.retry_delay.FromMilliseconds(error.retry_delay_ms)
        details.append(retry)
    kind = error_class(code, error.reason, archiving=True)
    return kind(
        error.message or code.name,
        code=code,
        reason=error.reason,
        metadata=dict(error.metadata),
        details=details,
    )


def _status_details(trailing: object) -> list[any_pb2.Any]:
    if not trailing:
        return []
    for key, value in trailing:  # type: ignore[attr-defined]
        if key == STATUS_DETAILS_KEY and isinstance(value, bytes):
            return list(status_pb2.Status.FromString(value).details)
    return []


def _unpack(packed: Iterable[any_pb2.Any]) -> list[message.Message]:
    out: list[message.Message] = []
    for item in packed:
        for kind in _DETAIL_TYPES:
            if item.TypeName() == kind.DESCRIPTOR.full_name:
                detail = kind()
                item.Unpack(detail)
                out.append(detail)
                break
        else:
            out.append(item)
    return out
