"""Each store fault, injected between the sidecar process and SeaweedFS.

Whatever the fault, a caller gets an ack only for a copy that is in the store
and decodes to the message's JSON; otherwise it gets an error status.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from msgarchive import (
    ArchiveClient,
    ArchiveFailed,
    ArchiveUnavailable,
    DeadlineExceeded,
    MsgArchiveError,
)
from msgarchive.v1 import archive_service_pb2 as pb
from msgarchive_server.domain.payloads import decompress
from msgarchive_server.stores.s3 import PROBE_KEY
from tests import samples
from tests.faults import Fault, FaultProxy
from tests.seaweed import SeaweedFS, keys_in
from tests.sidecar import SidecarProcess, s3_sidecar

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

pytestmark = pytest.mark.e2e


@dataclass
class Rig:
    sidecar: SidecarProcess
    proxy: FaultProxy
    bucket: str
    s3: S3Client

    def client(self, timeout: float = 10.0) -> ArchiveClient:
        # No channel-level retries here: each test sees the sidecar's own answer.
        return ArchiveClient(
            self.sidecar.address, timeout=timeout, options=[("grpc.enable_retries", 0)]
        )

    def copy_of(self, key: str) -> dict[str, object]:
        blob = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        copy: dict[str, object] = json.loads(decompress(blob))
        return copy

    def health(self) -> int:
        with grpc.insecure_channel(self.sidecar.address) as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=5
            )
        return reply.status  # type: ignore[no-any-return]

    def wait_for_health(self, status: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while self.health() != status:
            assert time.monotonic() < deadline, f"health did not become {status}"
            time.sleep(0.1)


def start_rig(seaweed: SeaweedFS, bucket: str, s3: S3Client, *extra: str) -> Rig:
    proxy = FaultProxy(int(seaweed.endpoint.rsplit(":", 1)[1])).start()
    sidecar = s3_sidecar(
        bucket,
        proxy.endpoint,
        seaweed.env,
        "--s3-read-timeout=3",
        "--probe-max-interval=0.5",
        *extra,
    )
    return Rig(sidecar, proxy, bucket, s3)


@pytest.fixture
def rig(seaweed: SeaweedFS, bucket: str, s3: S3Client) -> Iterator[Rig]:
    running = start_rig(seaweed, bucket, s3)
    try:
        yield running
    finally:
        running.sidecar.kill()
        running.proxy.stop()


def test_throttling_backs_off_without_using_up_retries(rig: Rig) -> None:
    rig.proxy.queue(Fault.SLOWDOWN, 5)
    with rig.client() as client:
        ack = client.archive(samples.sms_request())
    assert ack.attempts == 6
    assert rig.copy_of(ack.key) == samples.expected_copy("sms", ack.sent_at_ms)


@pytest.mark.parametrize("fault", [Fault.ERROR_500, Fault.RESET, Fault.ACCESS_DENIED])
def test_transient_faults_are_retried(rig: Rig, fault: Fault) -> None:
    rig.proxy.queue(fault, 3)
    with rig.client() as client:
        ack = client.archive(samples.email_request())
    assert ack.attempts == 4
    assert rig.copy_of(ack.key) == samples.expected_copy("email", ack.sent_at_ms)


def test_a_corrupted_body_is_refused_by_the_store_and_retried(rig: Rig) -> None:
    rig.proxy.queue(Fault.CORRUPT, 2)
    with rig.client() as client:
        ack = client.archive(samples.push_request())
    assert ack.attempts == 3
    assert rig.proxy.applied[Fault.CORRUPT] == 2
    assert rig.copy_of(ack.key) == samples.expected_copy("push", ack.sent_at_ms)


def test_a_body_corrupted_every_time_is_never_acked(rig: Rig) -> None:
    rig.proxy.set_rates({Fault.CORRUPT: 1.0})
    with rig.client() as client, pytest.raises(ArchiveFailed) as raised:
        client.archive(samples.push_request())
    assert raised.value.reason == "FAILED_TO_ARCHIVE"
    assert raised.value.attempts == 4
    assert raised.value.metadata["store_error"] in ("BadDigest", "XAmzContentSHA256Mismatch")
    assert keys_in(rig.s3, rig.bucket) == []


def test_failure_after_the_last_retry_is_unavailable_and_nothing_is_acked(rig: Rig) -> None:
    rig.proxy.queue(Fault.ERROR_500, 4)
    with rig.client() as client, pytest.raises(ArchiveFailed) as raised:
        client.archive(samples.sms_request())
    assert raised.value.code is grpc.StatusCode.UNAVAILABLE
    assert (raised.value.reason, raised.value.attempts) == ("FAILED_TO_ARCHIVE", 4)
    assert raised.value.metadata["store_error"] == "InternalError"
    assert keys_in(rig.s3, rig.bucket) == []
    assert rig.health() == health_pb2.HealthCheckResponse.SERVING  # a 500 is no circuit matter


def test_a_lost_response_is_acked_from_the_stored_copy(rig: Rig) -> None:
    rig.proxy.queue(Fault.LOST_RESPONSE)
    with rig.client() as client:
        ack = client.archive(samples.whatsapp_request())
    assert ack.attempts == 2
    assert ack.already_archived  # the first attempt wrote it; the retry found it
    assert keys_in(rig.s3, rig.bucket) == [ack.key]
    assert rig.copy_of(ack.key) == samples.expected_copy("whatsapp", ack.sent_at_ms)


def test_a_store_slower_than_the_deadline_never_acks(rig: Rig) -> None:
    rig.proxy.queue(Fault.HOLD)  # the store answers only when the test says so
    with rig.client(timeout=1.0) as client, pytest.raises(DeadlineExceeded):
        client.archive(samples.sms_request())
    # The caller was released at its deadline while the store still held the write.
    assert rig.proxy.concurrent_writes == 1
    rig.proxy.release.set()
    # The late write may land; a retry is then acked from that copy, or writes it.
    with rig.client() as client:
        ack = client.archive(samples.sms_request())
    assert rig.copy_of(ack.key)["message_id"] == samples.PHONE_MESSAGE_ID


def test_a_deadline_shorter_than_one_attempt_writes_nothing(
    seaweed: SeaweedFS, bucket: str, s3: S3Client
) -> None:
    rig = start_rig(seaweed, bucket, s3, "--s3-read-timeout=60")  # slow writes succeed
    try:
        rig.proxy.delay = 15.0
        rig.proxy.set_rates({Fault.DELAY: 1.0})
        with rig.client(timeout=120) as client:
            # Teach the sidecar's running estimate that a write is slow: eight
            # 15 s writes (at once: the test waits 15 s) bring it to about 13.5 s,
            # far past the next call's 5 s deadline, which leaves a busy machine
            # ample time to deliver the call.
            teachers = [
                threading.Thread(
                    target=client.archive,
                    args=(samples.sms_request(created_at_ms=samples.CREATED_AT_MS + n),),
                )
                for n in range(8)
            ]
            for teacher in teachers:
                teacher.start()
            for teacher in teachers:
                teacher.join()
            writes = rig.proxy.writes
            with pytest.raises(DeadlineExceeded) as raised:
                client.archive(samples.email_request(), timeout=5.0)
        assert raised.value.reason == "DEADLINE_TOO_SHORT"
        assert rig.proxy.writes == writes  # no attempt was started
    finally:
        rig.sidecar.kill()
        rig.proxy.stop()


def test_the_store_down_entirely_fails_then_recovers(rig: Rig) -> None:
    rig.proxy.stop()
    with rig.client() as client, pytest.raises(ArchiveFailed) as raised:
        client.archive(samples.sms_request())
    assert raised.value.attempts == 4
    assert raised.value.metadata["store_error"] == "EndpointConnectionError"
    assert keys_in(rig.s3, rig.bucket) == []
    rig.proxy.start()
    with rig.client() as client:
        ack = client.archive(samples.sms_request())
    assert keys_in(rig.s3, rig.bucket) == [ack.key]


def test_access_denied_on_every_attempt_opens_the_circuit_until_writes_work(rig: Rig) -> None:
    rig.proxy.set_rates({Fault.ACCESS_DENIED: 1.0})
    with rig.client() as client:
        with pytest.raises(ArchiveUnavailable) as raised:
            client.archive(samples.sms_request())
        assert raised.value.code is grpc.StatusCode.FAILED_PRECONDITION
        assert raised.value.reason == "ARCHIVE_UNAVAILABLE"
        assert raised.value.metadata == {"store_error": "AccessDenied", "attempts": "4"}
        assert rig.health() == health_pb2.HealthCheckResponse.NOT_SERVING
        writes = rig.proxy.writes
        with pytest.raises(ArchiveUnavailable) as fast:
            client.archive(samples.email_request())
        assert "attempts" not in fast.value.metadata  # failed fast, no store attempt
        # Only the background probe touches the store while the circuit is open.
        since = rig.proxy.written_paths[writes:]
        assert all(path.endswith(PROBE_KEY) for path in since), since
        rig.proxy.clear()  # permissions fixed
        rig.wait_for_health(health_pb2.HealthCheckResponse.SERVING)
        ack = client.archive(samples.email_request())
    assert keys_in(rig.s3, rig.bucket) == [ack.key]


def test_a_store_without_conditional_writes_falls_back_and_keeps_the_first_copy(
    seaweed: SeaweedFS, bucket: str, s3: S3Client
) -> None:
    def delete(bucket: str, key: str) -> None:
        s3.delete_object(Bucket=bucket, Key=key)

    proxy = FaultProxy(int(seaweed.endpoint.rsplit(":", 1)[1]), delete=delete).start()
    proxy.set_rates({Fault.IGNORE_CONDITIONAL: 1.0})
    sidecar = s3_sidecar(bucket, proxy.endpoint, seaweed.env)
    try:
        warnings = [
            line for line in sidecar.lines if line.get("event", "").startswith("conditional")
        ]
        assert warnings, "the fallback is logged"
        with ArchiveClient(sidecar.address) as client:
            first = client.archive(samples.push_request())
            again = client.archive(samples.push_request())
    finally:
        sidecar.kill()
        proxy.stop()
    assert not first.already_archived
    assert again.already_archived
    assert again.sent_at_ms == first.sent_at_ms
    blob = s3.get_object(Bucket=bucket, Key=first.key)["Body"].read()
    assert json.loads(decompress(blob))["sent_at"] == first.sent_at_ms


def test_sigterm_drains_in_flight_calls_and_refuses_new_ones(rig: Rig) -> None:
    rig.proxy.queue(Fault.HOLD)  # in flight until the drain has begun
    results: list[object] = []

    def archive_slowly() -> None:
        with rig.client() as client:
            results.append(client.archive(samples.sms_request()))

    with grpc.insecure_channel(rig.sidecar.address) as channel:
        watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest())
        assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
        worker = threading.Thread(target=archive_slowly)
        worker.start()
        assert rig.proxy.wait_for_write()  # the call is in flight, held up in the store
        assert rig.sidecar.process is not None
        rig.sidecar.process.send_signal(signal.SIGTERM)
        assert next(watch).status == health_pb2.HealthCheckResponse.NOT_SERVING
        # Refused, never acked (UNAVAILABLE or CANCELLED, by where the drain is).
        with rig.client(timeout=10) as late, pytest.raises(MsgArchiveError):
            late.archive(samples.email_request())
        rig.proxy.release.set()  # the held write completes inside the drain
        worker.join(60)
    assert rig.sidecar.wait() == 0  # the first SIGTERM's drain ends the process
    (ack,) = results
    assert isinstance(ack, pb.ArchiveResponse)
    assert keys_in(rig.s3, rig.bucket) == [ack.key]
