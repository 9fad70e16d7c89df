"""Domain errors as gRPC (and HTTP) answers: a lookup in the catalogue, in one place.

Every error carries one `ErrorInfo` (domain "msgarchive.v1", the reason from
protos/msgarchive/v1/error_reason.proto, its metadata); bad input adds a
`BadRequest` naming each field, and a "retry later" adds `RetryInfo`. The
same error on an ArchiveStream is an `ArchiveError` with the same parts.
Neither ever carries message content.
"""

from __future__ import annotations

import datetime

import grpc
from google.protobuf import any_pb2, duration_pb2, message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from msgarchive.errors import ERROR_DOMAIN, bad_request
from msgarchive.v1 import archive_service_pb2 as pb
from msgarchive_server.domain.errors import DomainError

# google.rpc.Code value -> grpc.StatusCode (whose value is (int, name)).
_GRPC_CODES = {code.value[0]: code for code in grpc.StatusCode}


def grpc_code(err: DomainError) -> grpc.StatusCode:
    return _GRPC_CODES[err.code]


def _retry_delay(seconds: float) -> duration_pb2.Duration:
    delay = duration_pb2.Duration()
    delay.FromTimedelta(datetime.timedelta(seconds=seconds))
    return delay


def _details(err: DomainError) -> list[message.Message]:
    details: list[message.Message] = [
        error_details_pb2.ErrorInfo(
            reason=err.reason_name, domain=ERROR_DOMAIN, metadata=err.metadata
        )
    ]
    if err.violations:
        details.append(bad_request(err.violations))
    if err.retry_after is not None:
        details.append(error_details_pb2.RetryInfo(retry_delay=_retry_delay(err.retry_after)))
    return details


def to_status(err: DomainError) -> grpc.Status:
    """The status a domain error is answered with."""
    packed = []
    for detail in _details(err):
        item = any_pb2.Any()
        item.Pack(detail)
        packed.append(item)
    status: grpc.Status = rpc_status.to_status(
        status_pb2.Status(code=err.code, message=err.message, details=packed)
    )
    return status


def to_archive_error(err: DomainError) -> pb.ArchiveError:
    """The same error as one stream message's answer."""
    error = pb.ArchiveError(
        code=grpc_code(err).name,
        message=err.message,
        reason=err.reason_name,
        metadata=err.metadata,
        field_violations=[
            pb.FieldViolation(field=v.field, description=v.description) for v in err.violations
        ],
    )
    if err.retry_after is not None:
        error.retry_delay_ms = _retry_delay(err.retry_after).ToMilliseconds()
    return error


# google.rpc.Code value -> the HTTP status the HTTP view answers with.
_HTTP_STATUSES = {
    code_pb2.INVALID_ARGUMENT: 400,
    code_pb2.UNAUTHENTICATED: 401,
    code_pb2.PERMISSION_DENIED: 403,
    code_pb2.NOT_FOUND: 404,
    code_pb2.RESOURCE_EXHAUSTED: 429,
    code_pb2.FAILED_PRECONDITION: 503,
    code_pb2.UNAVAILABLE: 503,
    code_pb2.DEADLINE_EXCEEDED: 504,
}


def http_status(err: DomainError) -> int:
    """The HTTP status of a domain error: 500 for a damaged copy or a crash."""
    return _HTTP_STATUSES.get(err.code, 500)
