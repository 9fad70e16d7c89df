"""The gRPC servicer: thin. The domain does the work; errors map in errors.py.

Every read adds audit fields (account, rpc, key or prefix, outcome) to the
call's one summary log line, and never message content.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass
from typing import TypeVar

import grpc
import structlog

from msgarchive.v1 import archive_service_pb2 as pb
from msgarchive.v1 import archive_service_pb2_grpc as pb_grpc
from msgarchive.validation import FieldViolation, violations
from msgarchive_server import describe
from msgarchive_server.access import Access, is_local_peer
from msgarchive_server.accounts import AuthError
from msgarchive_server.archive import (
    Ack,
    ArchiveFailed,
    ArchiveUnavailable,
    DeadlineTooClose,
    InvalidRequest,
)
from msgarchive_server.backpressure import InFlightLimit
from msgarchive_server.errors import READ_ERRORS, internal_error, overloaded, status_for
from msgarchive_server.metrics import Metrics
from msgarchive_server.reads import Copy, ListQuery, Reader, ViewQuery
from msgarchive_server.stores import ObjectSummary
from msgarchive_server.streams import archive_stream

log = structlog.get_logger("msgarchive.archive")

T = TypeVar("T")

# gRPC reports "no deadline" as a deadline centuries away.
_NO_DEADLINE = 365 * 24 * 3600.0
_CHANNELS = {
    pb.CHANNEL_PUSH: "push",
    pb.CHANNEL_EMAIL: "email",
    pb.CHANNEL_SMS: "sms",
    pb.CHANNEL_WHATSAPP: "whatsapp",
}


def deadline_of(context: grpc.ServicerContext) -> float | None:
    """The caller's deadline as a `time.monotonic()` instant, or None."""
    remaining = context.time_remaining()
    if remaining is None or remaining > _NO_DEADLINE:
        return None
    return time.monotonic() + remaining


def authorization_of(context: grpc.ServicerContext) -> str:
    for key, value in context.invocation_metadata() or ():
        if key == "authorization" and isinstance(value, str):
            return value
    return ""


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


def file_info(copy: Copy) -> pb.FileInfo:
    return pb.FileInfo(
        bucket=copy.bucket,
        key=copy.key,
        version_id=copy.stored.version_id,
        etag=copy.stored.etag,
        size_bytes=len(copy.stored.body),
    )


@dataclass(frozen=True, slots=True)
class Outcome:
    """How an archive call ended, for the log line and the metrics."""

    name: str  # ok, already_archived, invalid, failed, unavailable, deadline, denied, internal
    reason: str = ""
    store_error: str = ""


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is archiving, as the call's metadata and peer say."""

    authorization: str
    local: bool
    deadline: float | None

    @classmethod
    def of(cls, context: grpc.ServicerContext) -> Caller:
        return cls(authorization_of(context), is_local_peer(context.peer()), deadline_of(context))


class ArchiveServicer(pb_grpc.ArchiveServiceServicer):
    def __init__(
        self,
        access: Access,
        metrics: Metrics,
        in_flight: InFlightLimit,
        stream_window: int = 64,
    ) -> None:
        self.access = access
        self.metrics = metrics
        self.in_flight = in_flight
        self.stream_window = stream_window
        # Stream messages are archived here, never more than the in-flight bound.
        self.stream_pool = futures.ThreadPoolExecutor(
            max_workers=in_flight.limit, thread_name_prefix="stream"
        )

    # --- Archive -------------------------------------------------------------

    def Archive(  # noqa: N802 (the RPC's name)
        self, request: pb.ArchiveRequest, context: grpc.ServicerContext
    ) -> pb.ArchiveResponse:
        structlog.contextvars.bind_contextvars(channel=request.WhichOneof("message"))
        if not self.in_flight.try_enter():
            self.metrics.rejected.inc()
            structlog.contextvars.bind_contextvars(reason="OVERLOADED")
            context.abort_with_status(overloaded(self.in_flight.limit))
        try:
            answer = self._archive_counted(request, Caller.of(context))
        finally:
            self.in_flight.leave()
        if isinstance(answer, pb.ArchiveResponse):
            return answer
        # Outside any handler: abort raises, and must not be caught.
        context.abort_with_status(answer)
        raise AssertionError("abort_with_status returned")  # pragma: no cover

    def ArchiveStream(  # noqa: N802
        self, requests: Iterator[pb.ArchiveStreamRequest], context: grpc.ServicerContext
    ) -> Iterator[pb.ArchiveStreamResponse]:
        return archive_stream(self, requests, Caller.of(context), context)

    def _archive_counted(
        self, request: pb.ArchiveRequest, caller: Caller
    ) -> pb.ArchiveResponse | grpc.Status:
        """Archive one message (a place in flight already taken), with its metrics
        and log fields."""
        channel = request.WhichOneof("message") or "none"
        self.metrics.in_flight.inc()
        started = time.perf_counter()
        try:
            answer, outcome = self._archive(request, caller)
        finally:
            self.metrics.in_flight.dec()
        self.metrics.archive_seconds.labels(channel, outcome.name).observe(
            time.perf_counter() - started
        )
        if outcome.reason:
            self.metrics.failures.labels(outcome.reason, outcome.store_error or "-").inc()
            structlog.contextvars.bind_contextvars(reason=outcome.reason)
        return answer

    def _archive(
        self, request: pb.ArchiveRequest, caller: Caller
    ) -> tuple[pb.ArchiveResponse | grpc.Status, Outcome]:
        try:
            tenant = self.access.archive_tenant(
                request.account_id, caller.authorization, caller.local
            )
            if tenant is None:
                raise InvalidRequest(
                    [
                        *violations(request),
                        FieldViolation("account_id", "is not a configured account"),
                    ]
                )
            ack = tenant.archiver.archive(request, caller.deadline)
        except InvalidRequest as err:
            structlog.contextvars.bind_contextvars(invalid_fields=[v.field for v in err.violations])
            return status_for(err), Outcome("invalid", "INVALID_MESSAGE")
        except ArchiveFailed as err:
            structlog.contextvars.bind_contextvars(
                attempts=err.attempts, store_error=err.error.code
            )
            log.warning("failed to archive", store_error=err.error.code, attempts=err.attempts)
            return status_for(err), Outcome("failed", "FAILED_TO_ARCHIVE", err.error.code)
        except ArchiveUnavailable as err:
            structlog.contextvars.bind_contextvars(
                attempts=err.attempts, store_error=err.store_error
            )
            return status_for(err), Outcome("unavailable", "ARCHIVE_UNAVAILABLE", err.store_error)
        except DeadlineTooClose as err:
            return status_for(err), Outcome("deadline", "DEADLINE_TOO_SHORT")
        except AuthError as err:
            reason = "WRONG_ACCOUNT" if err.wrong_account else "CREDENTIALS_MISSING"
            return status_for(err), Outcome("denied", reason)
        except Exception:
            log.exception("archive crashed")
            return internal_error(), Outcome("internal", "INTERNAL_ERROR")
        structlog.contextvars.bind_contextvars(
            attempts=ack.attempts,
            message_id=ack.message_id,
            already_archived=ack.already_archived,
            stored_bytes=ack.stored_bytes,
        )
        outcome = Outcome("already_archived" if ack.already_archived else "ok")
        return to_response(request.request_id, ack), outcome

    # --- reads ---------------------------------------------------------------

    def ViewMessage(  # noqa: N802
        self, request: pb.ViewMessageRequest, context: grpc.ServicerContext
    ) -> pb.ViewMessageResponse:
        query = ViewQuery(
            user_id=request.user_id,
            campaign_channel=request.campaign_channel,
            campaign_id=request.campaign_id,
            sent_epoch_time=request.sent_epoch_time,
            event_name=request.event_name,
            platform=request.platform,
            delivery_type=request.delivery_type,
            campaign_type=request.campaign_type,
            event_id=request.event_id,
        )

        def view(reader: Reader) -> pb.ViewMessageResponse:
            copy = reader.view(query)
            structlog.contextvars.bind_contextvars(key=copy.key)
            details = pb.MessageDetails(
                **describe.details(copy),
                delivery_type=request.delivery_type,
                campaign_type=request.campaign_type,
                event_id=request.event_id,
            )
            return pb.ViewMessageResponse(
                message_details=details,
                message_content=pb.MessageContent(**describe.content(copy)),
                file_info=file_info(copy),
                archived_json=copy.json_text,
            )

        structlog.contextvars.bind_contextvars(campaign_id=request.campaign_id)
        return self._read(context, "ViewMessage", view)

    def GetArchivedMessage(  # noqa: N802
        self, request: pb.GetArchivedMessageRequest, context: grpc.ServicerContext
    ) -> pb.GetArchivedMessageResponse:
        def get(reader: Reader) -> pb.GetArchivedMessageResponse:
            if request.WhichOneof("locator") == "key":
                structlog.contextvars.bind_contextvars(key=request.key)
                copy = reader.get(request.key)
            else:
                parts = request.parts
                copy = reader.get_by_parts(
                    _CHANNELS.get(parts.channel, ""),
                    parts.yyyymm,
                    parts.campaign_id,
                    parts.recipient,
                    parts.message_id,
                )
                structlog.contextvars.bind_contextvars(key=copy.key)
            return pb.GetArchivedMessageResponse(
                message_details=pb.MessageDetails(**describe.details(copy)),
                message_content=pb.MessageContent(**describe.content(copy)),
                file_info=file_info(copy),
                archived_json=copy.json_text,
            )

        return self._read(context, "GetArchivedMessage", get)

    def ListArchivedMessages(  # noqa: N802
        self, request: pb.ListArchivedMessagesRequest, context: grpc.ServicerContext
    ) -> pb.ListArchivedMessagesResponse:
        query = ListQuery(
            channel=_CHANNELS.get(request.channel, ""),
            yyyymm=request.yyyymm,
            campaign_id=request.campaign_id,
            recipient=request.recipient,
            page_size=request.page_size,
            page_token=request.page_token,
            newest_first=request.order == pb.LIST_ORDER_NEWEST_FIRST,
            sent_after_ms=request.sent_after_ms,
            sent_before_ms=request.sent_before_ms,
        )

        def listing(reader: Reader) -> pb.ListArchivedMessagesResponse:
            result = reader.list(query)
            structlog.contextvars.bind_contextvars(
                prefix=f"{request.yyyymm}/{request.campaign_id}", listed=len(result.items)
            )
            return pb.ListArchivedMessagesResponse(
                messages=[_summary(item) for item in result.items],
                next_page_token=result.next_page_token,
            )

        return self._read(context, "ListArchivedMessages", listing)

    def _read(self, context: grpc.ServicerContext, rpc: str, run: Callable[[Reader], T]) -> T:
        structlog.contextvars.bind_contextvars(audit=True)
        try:
            account, tenant = self.access.read_tenant(
                authorization_of(context), is_local_peer(context.peer())
            )
            structlog.contextvars.bind_contextvars(account=account)
            answer = run(tenant.reader)
        except READ_ERRORS as err:
            status = status_for(err)
        except Exception:
            log.exception("read crashed")
            status = internal_error()
        else:
            self.metrics.reads.labels(rpc, "OK").inc()
            return answer
        self.metrics.reads.labels(rpc, grpc.StatusCode(status.code).name).inc()
        context.abort_with_status(status)
        raise AssertionError("abort_with_status returned")  # pragma: no cover


def _summary(item: ObjectSummary) -> pb.ArchivedMessageSummary:
    parts = item.key.rsplit("/", 3)
    return pb.ArchivedMessageSummary(
        key=item.key,
        message_id=parts[-1].removesuffix(".json.lz4"),
        user_hash=parts[-2],
        campaign_id=parts[-3],
        stored_at_ms=item.stored_at_ms,
        size_bytes=item.size,
        etag=item.etag,
    )
