"""The gRPC servicer: thin. The pipeline does the work; errors map in errors.py."""

from __future__ import annotations

import time

import grpc
import structlog

from msgarchive.v1 import archive_service_pb2 as pb
from msgarchive.v1 import archive_service_pb2_grpc as pb_grpc
from msgarchive_server.archive import (
    Ack,
    ArchiveFailed,
    Archiver,
    ArchiveUnavailable,
    DeadlineTooClose,
    InvalidRequest,
)
from msgarchive_server.errors import internal_error, status_for

log = structlog.get_logger("msgarchive.archive")

# gRPC reports "no deadline" as a deadline centuries away.
_NO_DEADLINE = 365 * 24 * 3600.0


def deadline_of(context: grpc.ServicerContext) -> float | None:
    """The caller's deadline as a `time.monotonic()` instant, or None."""
    remaining = context.time_remaining()
    if remaining is None or remaining > _NO_DEADLINE:
        return None
    return time.monotonic() + remaining


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
    )


class ArchiveServicer(pb_grpc.ArchiveServiceServicer):
    def __init__(self, archiver: Archiver) -> None:
        self.archiver = archiver

    def Archive(  # noqa: N802 (the RPC's name)
        self, request: pb.ArchiveRequest, context: grpc.ServicerContext
    ) -> pb.ArchiveResponse:
        structlog.contextvars.bind_contextvars(channel=request.WhichOneof("message"))
        try:
            ack = self.archiver.archive(request, deadline_of(context))
        except InvalidRequest as err:
            structlog.contextvars.bind_contextvars(invalid_fields=[v.field for v in err.violations])
            status = status_for(err)
        except ArchiveFailed as err:
            structlog.contextvars.bind_contextvars(
                attempts=err.attempts, store_error=err.error.code, reason="FAILED_TO_ARCHIVE"
            )
            log.warning("failed to archive", store_error=err.error.code, attempts=err.attempts)
            status = status_for(err)
        except ArchiveUnavailable as err:
            structlog.contextvars.bind_contextvars(
                attempts=err.attempts, store_error=err.store_error, reason="ARCHIVE_UNAVAILABLE"
            )
            status = status_for(err)
        except DeadlineTooClose as err:
            structlog.contextvars.bind_contextvars(reason="DEADLINE_TOO_SHORT")
            status = status_for(err)
        except Exception:
            log.exception("archive crashed")
            status = internal_error()
        else:
            structlog.contextvars.bind_contextvars(
                attempts=ack.attempts,
                message_id=ack.message_id,
                already_archived=ack.already_archived,
                stored_bytes=ack.stored_bytes,
            )
            return to_response(request.request_id, ack)
        # Outside the handlers: abort raises, and must not be caught here.
        context.abort_with_status(status)
        raise AssertionError("abort_with_status returned")  # pragma: no cover
