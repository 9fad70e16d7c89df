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

import json
from collections.abc import Sequence
from types import TracebackType
from typing import Self

import grpc
import grpc.aio

from msgarchive.errors import from_rpc_error
from msgarchive.v1 import archive_service_pb2 as pb
from msgarchive.v1 import archive_service_pb2_grpc as pb_grpc

DEFAULT_TARGET = "127.0.0.1:50051"
DEFAULT_TIMEOUT = 10.0
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
    }
    options.update(extra)
    return list(options.items())


class ArchiveClient:
    """A blocking client of the sidecar.

    `target` is ``host:port`` or ``unix:/path``. Pass `credentials` (from
    `grpc.ssl_channel_credentials`) for TLS or mTLS; without them the channel
    is plaintext, as it is to a sidecar on loopback. `timeout` is the default
    deadline of each call, in seconds.
    """

    def __init__(
        self,
        target: str = DEFAULT_TARGET,
        *,
        credentials: grpc.ChannelCredentials | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        options: ChannelOptions = (),
    ) -> None:
        opts = channel_options(options)
        if credentials is None:
            self._channel = grpc.insecure_channel(target, options=opts)
        else:
            self._channel = grpc.secure_channel(target, credentials, options=opts)
        self._stub = pb_grpc.ArchiveServiceStub(self._channel)
        self.timeout = timeout

    def archive(
        self,
        request: pb.ArchiveRequest,
        *,
        timeout: float | None = None,
        metadata: Metadata = (),
    ) -> pb.ArchiveResponse:
        """Archive one message; return the ack once its copy is stored."""
        try:
            response: pb.ArchiveResponse = self._stub.Archive(
                request, timeout=timeout or self.timeout, metadata=metadata
            )
        except grpc.RpcError as err:
            raise from_rpc_error(err) from None
        return response

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


class AsyncArchiveClient:
    """The asyncio client of the sidecar; the same API as `ArchiveClient`."""

    def __init__(
        self,
        target: str = DEFAULT_TARGET,
        *,
        credentials: grpc.ChannelCredentials | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        options: ChannelOptions = (),
    ) -> None:
        opts = channel_options(options)
        if credentials is None:
            self._channel = grpc.aio.insecure_channel(target, options=opts)
        else:
            self._channel = grpc.aio.secure_channel(target, credentials, options=opts)
        self._stub = pb_grpc.ArchiveServiceStub(self._channel)
        self.timeout = timeout

    async def archive(
        self,
        request: pb.ArchiveRequest,
        *,
        timeout: float | None = None,
        metadata: Metadata = (),
    ) -> pb.ArchiveResponse:
        """Archive one message; return the ack once its copy is stored."""
        try:
            response: pb.ArchiveResponse = await self._stub.Archive(
                request, timeout=timeout or self.timeout, metadata=metadata
            )
        except grpc.aio.AioRpcError as err:
            raise from_rpc_error(err) from None
        return response

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
