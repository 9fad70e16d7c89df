"""The clients senders use: archive a message, get the ack or a typed error.

    from msgarchive import ArchiveClient, ArchiveRequest, SmsMessage

    with ArchiveClient("127.0.0.1:50051") as archive:
        ack = archive.archive(ArchiveRequest(..., sms=SmsMessage(...)))
    # deliver the message only now: ack.key is where its copy is

`archive()` returns only when the copy is stored; otherwise it raises a
`msgarchive.errors.MsgArchiveError` subclass. UNAVAILABLE is retried by the
channel itself (gRPC service config), which is safe because a retried
archive lands on the same key.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import grpc
import grpc.aio
from google.protobuf.message import Message

from msgarchive.errors import MsgArchiveError, from_archive_error, from_rpc_error
from msgarchive.v1 import archive_service_pb2 as pb
from msgarchive.v1 import archive_service_pb2_grpc as pb_grpc

try:  # Tracing is the sender's choice: with OpenTelemetry, calls carry its trace.
    from opentelemetry import propagate as _propagate
except ImportError:  # pragma: no cover (the client-only install test runs without it)
    _propagate = None  # type: ignore[assignment]

DEFAULT_TARGET = "127.0.0.1:50051"
DEFAULT_TIMEOUT = 10.0
MAX_RECEIVE_BYTES = 64 * 1024 * 1024
SERVICE_NAME = "msgarchive.v1.ArchiveService"

# Retries belong in the channel (AIP-194: only UNAVAILABLE is retried).
SERVICE_CONFIG = json.dumps(
    {
        "methodConfig": [
            {
                "name": [{"service": SERVICE_NAME}],
                "retryPolicy": {
                    "maxAttempts": 3,
                    "initialBackoff": "0.1s",
                    "maxBackoff": "1s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ]
    }
)

Metadata = tuple[tuple[str, str | bytes], ...]
ChannelOptions = Sequence[tuple[str, object]]


def channel_options(extra: ChannelOptions = ()) -> list[tuple[str, object]]:
    """The channel options the clients use: retries on, then `extra`, which wins."""
    options: dict[str, object] = {
        "grpc.enable_retries": 1,
        "grpc.service_config": SERVICE_CONFIG,
        # A read answer carries a copy of up to the sidecar's message limit
        # (4 MiB) and its content again: above gRPC's 4 MiB default.
        "grpc.max_receive_message_length": MAX_RECEIVE_BYTES,
    }
    options.update(extra)
    return list(options.items())


@dataclass(frozen=True, slots=True)
class StreamResult:
    """One message's outcome on a stream: its ack, or why it was not archived."""

    request_id: str
    ack: pb.ArchiveResponse | None = None
    error: MsgArchiveError | None = None

    @property
    def archived(self) -> bool:
        return self.ack is not None


def stream_requests(requests: Iterable[pb.ArchiveRequest]) -> Iterator[pb.ArchiveStreamRequest]:
    """Stream messages, each with a request_id (its index, when it has none)."""
    for index, request in enumerate(requests):
        if not request.request_id:
            named = pb.ArchiveRequest()
            named.CopyFrom(request)
            named.request_id = str(index)
            request = named
        yield pb.ArchiveStreamRequest(archive=request)


def stream_result(response: pb.ArchiveStreamResponse) -> StreamResult:
    if response.HasField("ack"):
        return StreamResult(response.request_id, ack=response.ack)
    return StreamResult(response.request_id, error=from_archive_error(response.error))


def trace_metadata() -> Metadata:
    """The current OpenTelemetry context as W3C `traceparent` (and `tracestate`,
    `baggage`) metadata; empty without OpenTelemetry or a current span."""
    if _propagate is None:
        return ()
    carrier: dict[str, str] = {}
    _propagate.inject(carrier)
    return tuple(carrier.items())


def authorization(api_key: str, account_id: str = "") -> str:
    """The `authorization` header for an API key: Basic with an account, else Bearer."""
    if account_id:
        token = base64.b64encode(f"{account_id}:{api_key}".encode()).decode()
        return f"Basic {token}"
    return f"Bearer {api_key}"


class _ClientBase:
    """What the blocking and asyncio clients share: settings and call metadata."""

    def __init__(self, timeout: float, api_key: str | None, account_id: str | None) -> None:
        self.timeout = timeout
        self._auth: Metadata = ()
        if api_key:
            self._auth = (("authorization", authorization(api_key, account_id or "")),)

    def _metadata(self, metadata: Metadata) -> Metadata:
        return (*self._auth, *trace_metadata(), *metadata)


class ArchiveClient(_ClientBase):
    """A blocking client of the sidecar.

    `target` is ``host:port`` or ``unix:/path``. Pass `credentials` (from
    `grpc.ssl_channel_credentials`) for TLS or mTLS; without them the channel
    is plaintext, as it is to a sidecar on loopback. `timeout` is the default
    deadline of each call, in seconds. `api_key` (with `account_id` for Basic
    credentials, else sent as Bearer) authenticates the calls; the read RPCs
    need it once the sidecar has API keys configured.
    """

    def __init__(
        self,
        target: str = DEFAULT_TARGET,
        *,
        credentials: grpc.ChannelCredentials | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        options: ChannelOptions = (),
        api_key: str | None = None,
        account_id: str | None = None,
    ) -> None:
        super().__init__(timeout, api_key, account_id)
        opts = channel_options(options)
        if credentials is None:
            self._channel = grpc.insecure_channel(target, options=opts)
        else:
            self._channel = grpc.secure_channel(target, credentials, options=opts)
        self._stub = pb_grpc.ArchiveServiceStub(self._channel)

    def archive(
        self, request: pb.ArchiveRequest, *, timeout: float | None = None, metadata: Metadata = ()
    ) -> pb.ArchiveResponse:
        """Archive one message; return the ack once its copy is stored."""
        response: pb.ArchiveResponse = self._call(
            self._stub.Archive, request, timeout, metadata, archiving=True
        )
        return response

    def archive_many(
        self,
        requests: Iterable[pb.ArchiveRequest],
        *,
        timeout: float | None = None,
        metadata: Metadata = (),
    ) -> Iterator[StreamResult]:
        """Archive many messages on one ArchiveStream, pipelined.

        Yields one result per message as it completes (not in order), matched
        by `request_id` (a message without one gets its index). Send a message
        only once its result has an ack. `timeout` bounds the whole stream (none
        by default). Raises `MsgArchiveError` if the stream itself fails: the
        messages without a result were then not archived.
        """
        responses = self._stub.ArchiveStream(
            stream_requests(requests), timeout=timeout, metadata=self._metadata(metadata)
        )
        try:
            for response in responses:
                yield stream_result(response)
        except grpc.RpcError as err:
            raise from_rpc_error(err, archiving=True) from None

    def view_message(
        self,
        request: pb.ViewMessageRequest,
        *,
        timeout: float | None = None,
        metadata: Metadata = (),
    ) -> pb.ViewMessageResponse:
        """The copy a recipient got from a campaign near a send time."""
        response: pb.ViewMessageResponse = self._call(
            self._stub.ViewMessage, request, timeout, metadata
        )
        return response

    def get_archived_message(
        self,
        request: pb.GetArchivedMessageRequest,
        *,
        timeout: float | None = None,
        metadata: Metadata = (),
    ) -> pb.GetArchivedMessageResponse:
        """One copy, by key or by the parts of its key."""
        response: pb.GetArchivedMessageResponse = self._call(
            self._stub.GetArchivedMessage, request, timeout, metadata
        )
        return response

    def list_archived_messages(
        self,
        request: pb.ListArchivedMessagesRequest,
        *,
        timeout: float | None = None,
        metadata: Metadata = (),
    ) -> pb.ListArchivedMessagesResponse:
        """One page of copies under a prefix."""
        response: pb.ListArchivedMessagesResponse = self._call(
            self._stub.ListArchivedMessages, request, timeout, metadata
        )
        return response

    def iter_archived_messages(
        self, request: pb.ListArchivedMessagesRequest, *, timeout: float | None = None
    ) -> Iterator[pb.ArchivedMessageSummary]:
        """Every copy under a prefix, page after page."""
        page_request = pb.ListArchivedMessagesRequest()
        page_request.CopyFrom(request)
        while True:
            page = self.list_archived_messages(page_request, timeout=timeout)
            yield from page.messages
            if not page.next_page_token:
                return
            page_request.page_token = page.next_page_token

    def _call(
        self,
        method: Any,
        request: Message,
        timeout: float | None,
        metadata: Metadata,
        *,
        archiving: bool = False,
    ) -> Any:
        try:
            return method(
                request, timeout=timeout or self.timeout, metadata=self._metadata(metadata)
            )
        except grpc.RpcError as err:
            raise from_rpc_error(err, archiving=archiving) from None

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncArchiveClient(_ClientBase):
    """The asyncio client of the sidecar; the same API as `ArchiveClient`."""

    def __init__(
        self,
        target: str = DEFAULT_TARGET,
        *,
        credentials: grpc.ChannelCredentials | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        options: ChannelOptions = (),
        api_key: str | None = None,
        account_id: str | None = None,
    ) -> None:
        super().__init__(timeout, api_key, account_id)
        opts = channel_options(options)
        if credentials is None:
            self._channel = grpc.aio.insecure_channel(target, options=opts)
        else:
            self._channel = grpc.aio.secure_channel(target, credentials, options=opts)
        self._stub = pb_grpc.ArchiveServiceStub(self._channel)

    async def archive(
        self, request: pb.ArchiveRequest, *, timeout: float | None = None, metadata: Metadata = ()
    ) -> pb.ArchiveResponse:
        """Archive one message; return the ack once its copy is stored."""
        response: pb.ArchiveResponse = await self._call(
            self._stub.Archive, request, timeout, metadata, archiving=True
        )
        return response

    async def archive_many(
        self,
        requests: Iterable[pb.ArchiveRequest],
        *,
        timeout: float | None = None,
        metadata: Metadata = (),
    ) -> AsyncIterator[StreamResult]:
        """Archive many messages on one ArchiveStream; as `ArchiveClient.archive_many`."""
        call = self._stub.ArchiveStream(
            stream_requests(requests), timeout=timeout, metadata=self._metadata(metadata)
        )
        try:
            async for response in call:
                yield stream_result(response)
        except grpc.aio.AioRpcError as err:
            raise from_rpc_error(err, archiving=True) from None

    async def view_message(
        self,
        request: pb.ViewMessageRequest,
        *,
        timeout: float | None = None,
        metadata: Metadata = (),
    ) -> pb.ViewMessageResponse:
        """The copy a recipient got from a campaign near a send time."""
        response: pb.ViewMessageResponse = await self._call(
            self._stub.ViewMessage, request, timeout, metadata
        )
        return response

    async def get_archived_message(
        self,
        request: pb.GetArchivedMessageRequest,
        *,
        timeout: float | None = None,
        metadata: Metadata = (),
    ) -> pb.GetArchivedMessageResponse:
        """One copy, by key or by the parts of its key."""
        response: pb.GetArchivedMessageResponse = await self._call(
            self._stub.GetArchivedMessage, request, timeout, metadata
        )
        return response

    async def list_archived_messages(
        self,
        request: pb.ListArchivedMessagesRequest,
        *,
        timeout: float | None = None,
        metadata: Metadata = (),
    ) -> pb.ListArchivedMessagesResponse:
        """One page of copies under a prefix."""
        response: pb.ListArchivedMessagesResponse = await self._call(
            self._stub.ListArchivedMessages, request, timeout, metadata
        )
        return response

    async def iter_archived_messages(
        self, request: pb.ListArchivedMessagesRequest, *, timeout: float | None = None
    ) -> AsyncIterator[pb.ArchivedMessageSummary]:
        """Every copy under a prefix, page after page."""
        page_request = pb.ListArchivedMessagesRequest()
        page_request.CopyFrom(request)
        while True:
            page = await self.list_archived_messages(page_request, timeout=timeout)
            for summary in page.messages:
                yield summary
            if not page.next_page_token:
                return
            page_request.page_token = page.next_page_token

    async def _call(
        self,
        method: Any,
        request: Message,
        timeout: float | None,
        metadata: Metadata,
        *,
        archiving: bool = False,
    ) -> Any:
        try:
            return await method(
                request, timeout=timeout or self.timeout, metadata=self._metadata(metadata)
            )
        except grpc.aio.AioRpcError as err:
            raise from_rpc_error(err, archiving=archiving) from None

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
