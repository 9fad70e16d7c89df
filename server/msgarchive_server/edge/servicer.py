"""The gRPC servicer: thin. The domain does the work; errors map in status.py;
reads go through `ReadCalls` (auth, rate limit, audit), as the HTTP view does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import NoReturn, TypeVar

import grpc
import structlog

from msgarchive import channels
from msgarchive.v1 import archive_service_pb2 as pb
from msgarchive.v1 import archive_service_pb2_grpc as pb_grpc
from msgarchive_server.domain.errors import DomainError
from msgarchive_server.domain.reads import ListQuery, Reader
from msgarchive_server.edge.access import is_local_peer
from msgarchive_server.edge.calls import ArchiveCalls, authorization_of, caller_of
from msgarchive_server.edge.reads import Described, ReadCalls, described, view
from msgarchive_server.edge.response import ack_fields, file_info, summary, to_response
from msgarchive_server.edge.status import to_status
from msgarchive_server.edge.streams import ArchiveStreams

log = structlog.get_logger("msgarchive.read")

T = TypeVar("T")


def _channel_name(value: int) -> str:
    channel = channels.of_enum(value)
    return channel.name if channel else ""


CopyAnswer = TypeVar("CopyAnswer", pb.ViewMessageResponse, pb.GetArchivedMessageResponse)


def _copy_answer(kind: type[CopyAnswer], answer: Described) -> CopyAnswer:
    """A response carrying one copy: its details, content, file and JSON."""
    return kind(
        message_details=pb.MessageDetails(**answer.details),
        message_content=pb.MessageContent(**answer.content),
        file_info=file_info(answer.copy),
        archived_json=answer.copy.json_text,
    )


def _abort(context: grpc.ServicerContext, err: DomainError) -> NoReturn:
    # Outside any handler: abort raises, and must not be caught.
    context.abort_with_status(to_status(err))
    raise AssertionError("abort_with_status returned")  # pragma: no cover


class ArchiveServicer(pb_grpc.ArchiveServiceServicer):
    def __init__(
        self,
        calls: ArchiveCalls,
        streams: ArchiveStreams,
        reads: ReadCalls,
    ) -> None:
        self.calls = calls
        self.reads = reads
        self.streams = streams

    # --- archiving -----------------------------------------------------------

    def Archive(  # noqa: N802 (the RPC's name)
        self, request: pb.ArchiveRequest, context: grpc.ServicerContext
    ) -> pb.ArchiveResponse:
        structlog.contextvars.bind_contextvars(channel=request.WhichOneof("message"))
        try:
            ack = self.calls.admit().run(request, caller_of(context))
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
        caller = caller_of(context)
        try:
            # Credentials that can archive for no account end the stream at once,
            # rather than hold a thread until each message is refused.
            self.calls.access.check_archiver(caller.authorization, caller.local)
            yield from self.streams.serve(requests, caller, context.is_active)
        except DomainError as err:
            structlog.contextvars.bind_contextvars(reason=err.reason_name)
            _abort(context, err)

    # --- reads ---------------------------------------------------------------

    def ViewMessage(  # noqa: N802
        self, request: pb.ViewMessageRequest, context: grpc.ServicerContext
    ) -> pb.ViewMessageResponse:
        def answer(reader: Reader) -> pb.ViewMessageResponse:
            return _copy_answer(pb.ViewMessageResponse, view(reader, request))

        structlog.contextvars.bind_contextvars(campaign_id=request.campaign_id)
        return self._read(context, "ViewMessage", answer)

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
            return _copy_answer(pb.GetArchivedMessageResponse, described(copy))

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
        try:
            return self.reads.run(
                rpc, authorization_of(context), is_local_peer(context.peer()), run
            )
        except DomainError as err:
            _abort(context, err)
