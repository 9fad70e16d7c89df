"""The gRPC servicer: thin. The domain does the work; errors map in status.py.

Every read adds audit fields (account, rpc, key or prefix, outcome) to the
call's one summary log line, and never message content.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import NoReturn, TypeVar

import grpc
import structlog

from msgarchive.keys import channel_of_enum
from msgarchive.v1 import archive_service_pb2 as pb
from msgarchive.v1 import archive_service_pb2_grpc as pb_grpc
from msgarchive_server.domain.errors import DomainError, InternalFault
from msgarchive_server.domain.reads import ListQuery, Reader, ViewQuery
from msgarchive_server.edge import describe
from msgarchive_server.edge.access import Access, is_local_peer
from msgarchive_server.edge.calls import ArchiveCalls, Caller
from msgarchive_server.edge.response import ack_fields, file_info, summary, to_response
from msgarchive_server.edge.status import grpc_code, to_status
from msgarchive_server.edge.streams import ArchiveStreams
from msgarchive_server.telemetry.metrics import Metrics

log = structlog.get_logger("msgarchive.read")

T = TypeVar("T")

# gRPC reports "no deadline" as a deadline centuries away.
_NO_DEADLINE = 365 * 24 * 3600.0


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


def caller_of(context: grpc.ServicerContext) -> Caller:
    return Caller(authorization_of(context), is_local_peer(context.peer()), deadline_of(context))


def _channel_name(value: int) -> str:
    spec = channel_of_enum(value)
    return spec.name if spec else ""


def _abort(context: grpc.ServicerContext, err: DomainError) -> NoReturn:
    # Outside any handler: abort raises, and must not be caught.
    context.abort_with_status(to_status(err))
    raise AssertionError("abort_with_status returned")  # pragma: no cover


class ArchiveServicer(pb_grpc.ArchiveServiceServicer):
    def __init__(
        self,
        access: Access,
        metrics: Metrics,
        calls: ArchiveCalls,
        streams: ArchiveStreams,
    ) -> None:
        self.access = access
        self.metrics = metrics
        self.calls = calls
        self.streams = streams

    # --- archiving -----------------------------------------------------------

    def Archive(  # noqa: N802 (the RPC's name)
        self, request: pb.ArchiveRequest, context: grpc.ServicerContext
    ) -> pb.ArchiveResponse:
        structlog.contextvars.bind_contextvars(channel=request.WhichOneof("message"))
        try:
            self.calls.admit()
            ack = self.calls.run(request, caller_of(context))
        except DomainError as err:
            failed = err
        else:
            structlog.contextvars.bind_contextvars(**ack_fields(ack))
            return to_response(request.request_id, ack)
        structlog.contextvars.bind_contextvars(reason=failed.reason_name)
        _abort(context, failed)

    def ArchiveStream(  # noqa: N802
        self, requests: Iterator[pb.ArchiveStreamRequest], context: grpc.ServicerContext
    ) -> Iterator[pb.ArchiveStreamResponse]:
        return self.streams.serve(requests, caller_of(context), context.is_active)

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
                    _channel_name(parts.channel),
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
            channel=_channel_name(request.channel),
            yyyymm=request.yyyymm,
            campaign_id=request.campaign_id,
            recipient=request.recipient,
            page_size=request.page_size,
            page_token=request.page_token,
            newest_first=request.order == pb.LIST_ORDER_NEWEST_FIRST,
            stored_after_ms=request.stored_after_ms,
            stored_before_ms=request.stored_before_ms,
        )

        def listing(reader: Reader) -> pb.ListArchivedMessagesResponse:
            result = reader.list(query)
            structlog.contextvars.bind_contextvars(
                prefix=f"{request.yyyymm}/{request.campaign_id}", listed=len(result.items)
            )
            return pb.ListArchivedMessagesResponse(
                messages=[summary(item) for item in result.items],
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
        except DomainError as err:
            failed: DomainError = err
        except Exception:
            log.exception("read crashed")
            failed = InternalFault()
        else:
            self.metrics.reads.labels(rpc, "OK").inc()
            return answer
        self.metrics.reads.labels(rpc, grpc_code(failed).name).inc()
        _abort(context, failed)
