"""Typed errors of the msgarchive client.

Every failed call raises a `MsgArchiveError` subclass carrying the status
code, the `google.rpc.ErrorInfo` reason and metadata, and the unpacked
`google.rpc` details; a raw `grpc.RpcError` never escapes the client. Any of
these errors means the message was **not** archived and must not be sent.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import grpc
from google.protobuf import any_pb2, message
from google.rpc import error_details_pb2, status_pb2

if TYPE_CHECKING:
    from msgarchive.validation import FieldViolation

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


class InvalidMessage(MsgArchiveError):
    """INVALID_ARGUMENT: the request is malformed; nothing was written."""

    @property
    def field_violations(self) -> list[tuple[str, str]]:
        """Each bad field's path and what is wrong with it."""
        bad = self.detail(error_details_pb2.BadRequest)
        if bad is None:
            return []
        return [(v.field, v.description) for v in bad.field_violations]

    @classmethod
    def from_violations(cls, violations: Iterable[FieldViolation]) -> InvalidMessage:
        found = list(violations)
        bad = bad_request(found)
        info = error_details_pb2.ErrorInfo(reason="INVALID_MESSAGE", domain=ERROR_DOMAIN)
        summary = "; ".join(f"{v.field} {v.description}" for v in found)
        return cls(
            f"invalid message: {summary}",
            code=grpc.StatusCode.INVALID_ARGUMENT,
            reason=info.reason,
            details=(info, bad),
        )


def bad_request(violations: Iterable[FieldViolation]) -> error_details_pb2.BadRequest:
    """The google.rpc.BadRequest detail naming each bad field."""
    return error_details_pb2.BadRequest(
        field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
            for v in violations
        ]
    )


class ArchiveFailed(MsgArchiveError):
    """UNAVAILABLE: the copy was not stored (store failure, or sidecar unreachable).

    Safe to retry. When the sidecar gave up after its own retries the reason is
    ``FAILED_TO_ARCHIVE``; the sender marks such a message "Failed to Archive
    Message" and does not send it.
    """

    @property
    def attempts(self) -> int | None:
        value = self.metadata.get("attempts")
        return int(value) if value and value.isdigit() else None


class ArchiveUnavailable(MsgArchiveError):
    """FAILED_PRECONDITION: archiving cannot work (credentials, bucket)."""


class RateLimited(MsgArchiveError):
    """RESOURCE_EXHAUSTED: too many requests; retry after `retry_delay` seconds."""

    @property
    def retry_delay(self) -> float | None:
        info = self.detail(error_details_pb2.RetryInfo)
        if info is None or not info.HasField("retry_delay"):
            return None
        delay: float = info.retry_delay.ToTimedelta().total_seconds()
        return delay


class DeadlineExceeded(MsgArchiveError):
    """DEADLINE_EXCEEDED: no ack within the deadline; the copy may not exist."""


class Unauthenticated(MsgArchiveError):
    """UNAUTHENTICATED: credentials are missing or wrong."""


class PermissionDenied(MsgArchiveError):
    """PERMISSION_DENIED: the credentials may not do this."""


class NotFound(MsgArchiveError):
    """NOT_FOUND: no such copy."""


class DataLoss(MsgArchiveError):
    """DATA_LOSS: the stored copy is damaged (metadata `key` names it)."""


_ERROR_CLASSES: dict[grpc.StatusCode, type[MsgArchiveError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidMessage,
    grpc.StatusCode.UNAVAILABLE: ArchiveFailed,
    grpc.StatusCode.FAILED_PRECONDITION: ArchiveUnavailable,
    grpc.StatusCode.RESOURCE_EXHAUSTED: RateLimited,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.DATA_LOSS: DataLoss,
}


class _RpcErrorLike(Protocol):
    """What both grpc.RpcError (sync) and grpc.aio.AioRpcError expose."""

    def code(self) -> grpc.StatusCode: ...
    def details(self) -> str | None: ...
    def trailing_metadata(self) -> object: ...


def from_rpc_error(error: _RpcErrorLike) -> MsgArchiveError:
    """The typed error for a failed call, with its google.rpc details unpacked."""
    code = error.code()
    text = error.details() or code.name
    details = _unpack(_status_details(error.trailing_metadata()))
    reason, metadata = "", {}
    for item in details:
        if isinstance(item, error_details_pb2.ErrorInfo):
            reason, metadata = item.reason, dict(item.metadata)
            break
    kind = _ERROR_CLASSES.get(code, MsgArchiveError)
    return kind(text, code=code, reason=reason, metadata=metadata, details=details)


def from_archive_error(error: Any) -> MsgArchiveError:
    """The typed error for one message's error on an ArchiveStream."""
    code = (
        grpc.StatusCode[error.code]
        if error.code in grpc.StatusCode.__members__
        else (grpc.StatusCode.UNKNOWN)
    )
    details: list[message.Message] = [
        error_details_pb2.ErrorInfo(
            reason=error.reason, domain=ERROR_DOMAIN, metadata=dict(error.metadata)
        )
    ]
    if error.field_violations:
        details.append(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(
                        field=v.field, description=v.description
                    )
                    for v in error.field_violations
                ]
            )
        )
    if error.retry_delay_ms:
        retry = error_details_pb2.RetryInfo()
        retry.retry_delay.FromMilliseconds(error.retry_delay_ms)
        details.append(retry)
    kind = _ERROR_CLASSES.get(code, MsgArchiveError)
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
