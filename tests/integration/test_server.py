"""The gRPC server in this process, over a real socket, storing into SeaweedFS."""

from __future__ import annotations

import asyncio
import datetime
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from msgarchive import (
    ArchiveClient,
    ArchiveFailed,
    AsyncArchiveClient,
    InvalidArgument,
    InvalidMessage,
    MsgArchiveError,
    NotFound,
    StoreUnavailable,
)
from msgarchive.errors import from_rpc_error
from msgarchive.v1 import archive_service_pb2 as pb
from msgarchive_server.process.app import Sidecar, build_server
from msgarchive_server.process.config import Settings
from tests import samples
from tests.seaweed import SeaweedFS, keys_in

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

pytestmark = pytest.mark.integration


@pytest.fixture
def sidecar(seaweed: SeaweedFS, bucket: str) -> Iterator[Sidecar]:
    store = seaweed.store(bucket, prefix="tenant-a/")
    running = build_server(
        Settings(listen="127.0.0.1:0", threads=8, max_in_flight=4, max_streams=2), store
    )
    running.start()
    try:
        yield running
    finally:
        running.stop(grace=1)


def test_health_reports_serving(sidecar: Sidecar) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{sidecar.port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for service in ("", "msgarchive.v1.ArchiveService"):
            reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_reflection_lists_the_services(sidecar: Sidecar) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{sidecar.port}") as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        (reply,) = list(stub.ServerReflectionInfo(iter([request]), timeout=5))
    names = {s.name for s in reply.list_services_response.service}
    assert {"msgarchive.v1.ArchiveService", "grpc.health.v1.Health"} <= names


def test_archive_over_the_socket_lands_under_the_prefix(
    sidecar: Sidecar, bucket: str, s3: S3Client
) -> None:
    with ArchiveClient(f"127.0.0.1:{sidecar.port}") as client:
        ack = client.archive(samples.whatsapp_request(), metadata=(("x-request-id", "r-1"),))
    assert ack.key == samples.expected_key("whatsapp", "tenant-a/")
    assert ack.bucket == bucket
    assert keys_in(s3, bucket) == [ack.key]


def test_async_client(sidecar: Sidecar, bucket: str, s3: S3Client) -> None:
    async def run() -> str:
        async with AsyncArchiveClient(f"127.0.0.1:{sidecar.port}") as client:
            ack = await client.archive(samples.email_request())
            with pytest.raises(InvalidMessage):
                await client.archive(samples.email_request(batch_id="19990231"))
            return ack.key

    key = asyncio.run(run())
    assert keys_in(s3, bucket) == [key]


def test_over_size_message_is_invalid_argument_not_transport_error(
    seaweed: SeaweedFS, bucket: str, s3: S3Client
) -> None:
    store = seaweed.store(bucket)
    running = build_server(Settings(listen="127.0.0.1:0", max_message_bytes=64 * 1024), store)
    running.start()
    try:
        request = samples.sms_request()
        request.sms.body = "x" * 200_000  # over the limit, under the transport's headroom
        with (
            ArchiveClient(f"127.0.0.1:{running.port}") as client,
            pytest.raises(InvalidMessage) as raised,
        ):
            client.archive(request)
    finally:
        running.stop(grace=1)
    ((field, description),) = raised.value.field_violations
    assert field == "sms"
    assert "over the limit of 65536" in description
    assert keys_in(s3, bucket) == []


def test_reads_during_a_store_outage_are_store_unavailable(seaweed: SeaweedFS, bucket: str) -> None:
    # A real S3 store whose endpoint answers nothing: a port nobody listens on.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{probe.getsockname()[1]}"
    store = seaweed.store(bucket, endpoint=endpoint, connect_timeout=1)
    running = build_server(
        Settings(listen="127.0.0.1:0", threads=8, max_in_flight=4, max_streams=2), store
    )
    running.start()
    key = samples.expected_key("sms")
    try:
        with ArchiveClient(f"127.0.0.1:{running.port}", timeout=30) as client:
            with pytest.raises(StoreUnavailable) as raised:
                client.get_archived_message(pb.GetArchivedMessageRequest(key=key))
            assert raised.value.reason == "STORE_UNAVAILABLE"
            assert raised.value.metadata["store_error"] == "EndpointConnectionError"
            with pytest.raises(StoreUnavailable):
                client.list_archived_messages(
                    pb.ListArchivedMessagesRequest(channel=pb.CHANNEL_SMS, yyyymm="202409")
                )
            with pytest.raises(ArchiveFailed) as failed:  # and archiving fails closed
                client.archive(samples.sms_request())
            assert failed.value.reason == "FAILED_TO_ARCHIVE"
    finally:
        running.stop(grace=1)


def raw_call(sidecar: Sidecar, method: str, payload: bytes) -> MsgArchiveError:
    """Send `payload` as the request bytes of `method`: the typed error it gets."""
    with grpc.insecure_channel(f"127.0.0.1:{sidecar.port}") as channel:
        call = channel.unary_unary(
            method, request_serializer=lambda raw: raw, response_deserializer=lambda raw: raw
        )
        with pytest.raises(grpc.RpcError) as raised:
            call(payload, timeout=10)
    return from_rpc_error(raised.value)


# Field 1, a string in each request (request_id, key, user_id): "a\\xffb", not UTF-8.
INVALID_UTF8 = bytes.fromhex("0a0361ff62")


@pytest.mark.parametrize(
    ("method", "reason"),
    [
        ("/msgarchive.v1.ArchiveService/Archive", "INVALID_MESSAGE"),
        ("/msgarchive.v1.ArchiveService/GetArchivedMessage", "INVALID_LOOKUP"),
        ("/msgarchive.v1.ArchiveService/ViewMessage", "INVALID_LOOKUP"),
    ],
)
def test_a_request_that_does_not_parse_is_the_callers_error(
    sidecar: Sidecar, method: str, reason: str
) -> None:
    for payload in (INVALID_UTF8, b"\xff\xff\xff"):  # and bytes that are no protobuf
        err = raw_call(sidecar, method, payload)
        assert err.code is grpc.StatusCode.INVALID_ARGUMENT, err
        assert err.reason == reason
        assert isinstance(err, InvalidArgument)
        assert [field for field, _ in err.field_violations] == ["request"]
    registry = sidecar.metrics.registry
    if reason == "INVALID_MESSAGE":
        labels = {"reason": "INVALID_MESSAGE", "store_error": "-"}
        assert registry.get_sample_value("msgarchive_archive_failures_total", labels) == 2
    else:
        labels = {"rpc": method.rsplit("/", 1)[-1], "code": "INVALID_ARGUMENT"}
        assert registry.get_sample_value("msgarchive_reads_total", labels) == 2


def test_a_stream_message_that_does_not_parse_ends_the_stream_after_the_rest(
    sidecar: Sidecar,
) -> None:
    good = pb.ArchiveStreamRequest(archive=samples.sms_request())
    good.archive.request_id = "m-1"
    with grpc.insecure_channel(f"127.0.0.1:{sidecar.port}") as channel:
        call = channel.stream_stream(
            "/msgarchive.v1.ArchiveService/ArchiveStream",
            request_serializer=lambda raw: raw,
            response_deserializer=pb.ArchiveStreamResponse.FromString,
        )(iter([good.SerializeToString(), b"\x0a\x05" + INVALID_UTF8]), timeout=30)  # archive=…
        answers: list[pb.ArchiveStreamResponse] = []
        with pytest.raises(grpc.RpcError) as raised:
            answers.extend(call)
    assert [a.request_id for a in answers] == ["m-1"]
    assert answers[0].HasField("ack")
    err = from_rpc_error(raised.value, archiving=True)
    assert (err.code, err.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_MESSAGE")


@pytest.mark.parametrize(("tolerance", "found"), [(5.0, False), (60.0, True)])
def test_view_tolerance_is_the_sidecars_setting(
    tmp_path: Path, tolerance: float, found: bool
) -> None:
    """A copy 10 s from the asked send time: outside --view-tolerance 5, inside 60."""
    running = build_server(
        Settings(listen="127.0.0.1:0", store=str(tmp_path), view_tolerance=tolerance)
    )
    running.start()
    try:
        with ArchiveClient(f"127.0.0.1:{running.port}") as client:
            today = datetime.datetime.now(datetime.UTC).strftime("%Y%m%d")
            request = samples.sms_request(batch_id=today)  # a view looks in the send's month
            ack = client.archive(request)
            view = pb.ViewMessageRequest(
                user_id=request.sms.to, campaign_channel="SMS", campaign_id=request.campaign_id,
                sent_epoch_time=ack.sent_at_ms // 1000 + 10, event_name="SMS Sent",
                platform="SMS",
            )  # fmt: skip
            if found:
                assert client.view_message(view).file_info.key == ack.key
            else:
                with pytest.raises(NotFound):
                    client.view_message(view)
    finally:
        running.stop(grace=1)
