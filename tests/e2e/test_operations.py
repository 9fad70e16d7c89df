"""Operating the sidecar: metrics, logs without personal data, TLS and mTLS,
a unix socket, the in-flight bound, and settings that stop startup."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from msgarchive import (
    ArchiveClient,
    ArchiveFailed,
    ArchiveUnavailable,
    InvalidMessage,
    MsgArchiveError,
    NotFound,
    Overloaded,
    Unauthenticated,
)
from msgarchive.v1 import archive_service_pb2 as pb
from msgarchive_server.domain.accounts import key_digest
from tests import samples
from tests.faults import Fault, FaultProxy
from tests.seaweed import SeaweedFS
from tests.sidecar import SidecarProcess, on_s3, run_to_exit, s3_sidecar

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

pytestmark = pytest.mark.e2e


def start(seaweed: SeaweedFS, bucket: str, proxy: FaultProxy, *extra: str) -> SidecarProcess:
    return s3_sidecar(bucket, proxy.endpoint, seaweed.env, "--probe-max-interval=0.5", *extra)


def no_retries(address: str, **kwargs: Any) -> ArchiveClient:
    return ArchiveClient(address, options=[("grpc.enable_retries", 0)], **kwargs)


# --- metrics -------------------------------------------------------------------


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_metrics_count_successes_and_failures(
    seaweed: SeaweedFS, bucket: str, proxy: FaultProxy
) -> None:
    sidecar = start(seaweed, bucket, proxy, "--metrics-listen=127.0.0.1:0")
    try:
        port = int(sidecar.serving["metrics_port"])
        with no_retries(sidecar.address) as client:
            acks = [
                client.archive(samples.sms_request(created_at_ms=samples.CREATED_AT_MS + n))
                for n in range(3)
            ]
            client.archive(samples.sms_request(created_at_ms=samples.CREATED_AT_MS))  # again
            client.archive(samples.email_request())
            with pytest.raises(InvalidMessage):
                client.archive(samples.sms_request(batch_id="20241341"))
            proxy.queue(Fault.ERROR_500, 4)
            with pytest.raises(ArchiveFailed):
                client.archive(samples.push_request())
            json_sizes = [
                len(
                    client.get_archived_message(
                        pb.GetArchivedMessageRequest(key=a.key)
                    ).archived_json
                )
                for a in acks
            ]
            with pytest.raises(NotFound):
                client.get_archived_message(
                    pb.GetArchivedMessageRequest(key=samples.expected_key("whatsapp"))
                )
        m = scrape(port)
    finally:
        sidecar.kill()

    def value(name: str, **labels: str) -> float:
        return m.get((name, tuple(sorted(labels.items()))), 0.0)

    count = "msgarchive_archive_duration_seconds_count"
    assert value(count, channel="sms", outcome="ok") == 3
    assert value(count, channel="sms", outcome="already_archived") == 1
    assert value(count, channel="email", outcome="ok") == 1
    assert value(count, channel="sms", outcome="invalid") == 1
    assert value(count, channel="push", outcome="failed") == 1
    failures = "msgarchive_archive_failures_total"
    assert value(failures, reason="FAILED_TO_ARCHIVE", store_error="InternalError") == 1
    assert value(failures, reason="INVALID_MESSAGE", store_error="-") == 1
    # 3 + 1 (412, the copy is there) + 1 writes, and the failed one's 4 attempts.
    assert value("msgarchive_store_attempts_total", result="ok") == 5
    assert value("msgarchive_store_attempts_total", result="transient") == 4
    assert value("msgarchive_store_write_duration_seconds_count", result="ok") == 5
    assert value("msgarchive_archive_json_bytes_count", channel="sms") == 3
    assert value("msgarchive_archive_stored_bytes_count", channel="email") == 1
    # Exact sizes: the acks' stored bytes, and the copies' JSON (small copies
    # grow by the LZ4 frame's ~18 bytes of header and checksum; big ones shrink).
    assert value("msgarchive_archive_stored_bytes_sum", channel="sms") == sum(
        ack.stored_bytes for ack in acks
    )
    assert value("msgarchive_archive_json_bytes_sum", channel="sms") == sum(json_sizes)
    assert value("msgarchive_archives_in_flight") == 0
    assert value("msgarchive_store_available", bucket=bucket) == 1
    assert value("msgarchive_reads_total", rpc="GetArchivedMessage", code="OK") == 3
    assert value("msgarchive_reads_total", rpc="GetArchivedMessage", code="NOT_FOUND") == 1


def test_metrics_show_the_circuit(seaweed: SeaweedFS, bucket: str, proxy: FaultProxy) -> None:
    sidecar = start(seaweed, bucket, proxy, "--metrics-listen=127.0.0.1:0")
    try:
        proxy.set_rates({Fault.ACCESS_DENIED: 1.0})
        with no_retries(sidecar.address) as client, pytest.raises(ArchiveUnavailable):
            client.archive(samples.sms_request())
        m = scrape(int(sidecar.serving["metrics_port"]))
    finally:
        sidecar.kill()
    assert m[("msgarchive_store_available", (("bucket", bucket),))] == 0
    assert m[("msgarchive_store_attempts_total", (("result", "denied"),))] == 4


# --- logs carry no personal data ---------------------------------------------------

PII = {
    "email": "pii.jane.doe@private-example.org",
    "phone": "+1 (555) 867-5309",
    "phone digits": "15558675309",
    "token": "PIItoken-fcm-7f3a9b2c",
    "device": "PII-DEVICE-9f8e",
    "customer": "PII-CUSTOMER-jane",
    "name": "PII-NAME Jane Q. Doe",
    "subject": "PII-SUBJECT statement",
    "body": "PII-BODY code 482913",
    "payload": "PII-PAYLOAD-51.5072",
    "api key": "ma_PII_API_KEY_abcdef123456",
    "wrong key": "ma_PII_WRONG_KEY_654321",
}


def pii_requests(batch: str = "20241122") -> dict[str, pb.ArchiveRequest]:
    context: dict[str, Any] = {
        "account_id": "acc-pii",
        "batch_id": batch,
        "created_at_ms": samples.CREATED_AT_MS,
        "device_identity": PII["device"],
        "customer_identity": PII["customer"],
        "campaign_id": "pii-campaign",
        "campaign_name": "PII campaign",
    }
    payload = json.dumps({"title": PII["subject"], "body": PII["body"], "geo": PII["payload"]})
    return {
        "push": pb.ArchiveRequest(
            **context,
            push=pb.PushMessage(to=PII["token"], platform=pb.PLATFORM_IOS, payload_json=payload),
        ),
        "email": pb.ArchiveRequest(
            **context,
            email=pb.EmailMessage(
                to=PII["email"],
                subject=PII["subject"],
                from_name=PII["name"],
                from_address="news@shop.example",
                cc=[PII["email"]],
                html_body=PII["body"],
                plaintext_body=PII["body"],
                headers={"X-Recipient": PII["email"]},
            ),
        ),
        "sms": pb.ArchiveRequest(**context, sms=pb.SmsMessage(to=PII["phone"], body=PII["body"])),
        "whatsapp": pb.ArchiveRequest(
            **context, whatsapp=pb.WhatsAppMessage(to=PII["phone"], body=PII["body"])
        ),
    }


def test_connections_held_open_on_the_metrics_port_take_no_thread_and_delay_no_scrape(
    tmp_path: Path,
) -> None:
    """400 connections to /metrics, silent or stopped halfway through a request
    head: a scrape is still answered at once, and they cost the sidecar no
    thread (prometheus-client's own server took a thread for each, for as long
    as the client kept it open, and accepted five at a time)."""
    sidecar = SidecarProcess(
        ["--listen=127.0.0.1:0", "--metrics-listen=127.0.0.1:0", f"--store={tmp_path / 'a'}"]
    ).start()
    try:
        assert sidecar.process is not None
        port = int(sidecar.serving["metrics_port"])
        tasks = Path(f"/proc/{sidecar.process.pid}/task")
        threads_before = len(list(tasks.iterdir()))
        held = []
        for n in range(400):
            sock = socket.create_connection(("127.0.0.1", port), timeout=60)
            if n % 2:
                sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: a")
            held.append(sock)
        try:
            assert ("msgarchive_store_available", (("bucket", str(tmp_path / "a")),)) in scrape(
                port
            )
            assert len(list(tasks.iterdir())) < threads_before + 10
        finally:
            for sock in held:
                sock.close()
    finally:
        sidecar.stop()


def test_no_personal_data_in_any_log_line(
    seaweed: SeaweedFS, bucket: str, proxy: FaultProxy, tmp_path: Path
) -> None:
    accounts = tmp_path / "accounts.toml"
    accounts.write_text(
        f'[accounts.acc-pii]\nstore = "s3://{bucket}"\n'
        f'api_key_sha256 = ["{key_digest(PII["api key"])}"]\n'
    )
    sidecar = on_s3(
        proxy.endpoint,
        seaweed.env,
        f"--accounts={accounts}",
        "--probe-max-interval=0.3",
        "--log-level=debug",
    )
    calls = 0
    try:
        with no_retries(sidecar.address, api_key=PII["api key"]) as client:
            for request in pii_requests().values():  # archived
                ack = client.archive(request)
                calls += 1
            for request in pii_requests(batch="20241341").values():  # invalid
                with pytest.raises(InvalidMessage):
                    client.archive(request)
                calls += 1
            proxy.queue(Fault.ERROR_500, 4)  # failed after retries
            with pytest.raises(ArchiveFailed):
                client.archive(pii_requests()["email"])
            proxy.set_rates({Fault.ACCESS_DENIED: 1.0})  # the circuit opens
            with pytest.raises(ArchiveUnavailable):
                client.archive(pii_requests()["sms"])
            with pytest.raises(ArchiveUnavailable):
                client.archive(pii_requests()["push"])
            proxy.clear()
            calls += 3
            view = pb.ViewMessageRequest(
                user_id=PII["phone"],
                campaign_channel="SMS",
                campaign_id="pii-campaign",
                sent_epoch_time=ack.sent_at_ms // 1000,
                event_name="SMS Sent",
            )
            # The batch is dated 2024-11 and the copy was sent now: the view looks
            # in this month's folder and finds none. Its phone number is in the
            # request all the same, which is what the logs must not repeat.
            with pytest.raises(NotFound):
                client.view_message(view)
            got = client.get_archived_message(pb.GetArchivedMessageRequest(key=ack.key))
            assert got.file_info.key == ack.key
            calls += 2
        with no_retries(sidecar.address, api_key=PII["wrong key"]) as stranger:
            with pytest.raises(Unauthenticated):
                stranger.get_archived_message(pb.GetArchivedMessageRequest(key=ack.key))
            calls += 1
    finally:
        sidecar.stop()
    lines = [json.dumps(line) for line in sidecar.lines]
    text = "\n".join(lines) + sidecar.stderr
    assert sum('"event": "rpc"' in line for line in lines) >= calls  # the calls were logged
    found = {what: value for what, value in PII.items() if value in text}
    assert found == {}, f"personal data in the logs: {sorted(found)}"


# --- transport -------------------------------------------------------------------


def tls_credentials(paths: dict[str, Path], with_client_cert: bool) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(
        root_certificates=paths["ca"].read_bytes(),
        private_key=paths["client_key"].read_bytes() if with_client_cert else None,
        certificate_chain=paths["client_cert"].read_bytes() if with_client_cert else None,
    )


def test_tls(certificates: dict[str, Path], tmp_path: Path) -> None:
    sidecar = SidecarProcess(
        [
            "--listen=127.0.0.1:0",
            f"--store={tmp_path}",
            f"--tls-cert={certificates['server_cert']}",
            f"--tls-key={certificates['server_key']}",
        ]
    ).start()
    try:
        assert sidecar.serving["tls"] == "tls"
        credentials = tls_credentials(certificates, with_client_cert=False)
        with ArchiveClient(sidecar.address, credentials=credentials) as client:
            assert client.archive(samples.sms_request()).key == samples.expected_key("sms")
        with no_retries(sidecar.address, timeout=3) as plaintext, pytest.raises(MsgArchiveError):
            plaintext.archive(samples.sms_request())
        health = subprocess.run(
            [sys.executable, "-m", "msgarchive_server", "health", "--address", sidecar.address,
             "--tls-ca", str(certificates["ca"])],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        assert (health.returncode, health.stdout.strip()) == (0, "SERVING")
    finally:
        assert sidecar.stop() == 0


def test_mtls_requires_a_client_certificate(certificates: dict[str, Path], tmp_path: Path) -> None:
    sidecar = SidecarProcess(
        [
            "--listen=127.0.0.1:0",
            f"--store={tmp_path}",
            f"--tls-cert={certificates['server_cert']}",
            f"--tls-key={certificates['server_key']}",
            f"--tls-client-ca={certificates['ca']}",
        ]
    ).start()
    try:
        assert sidecar.serving["tls"] == "mtls"
        with ArchiveClient(
            sidecar.address, credentials=tls_credentials(certificates, with_client_cert=True)
        ) as client:
            assert client.archive(samples.email_request()).key == samples.expected_key("email")
        anonymous = tls_credentials(certificates, with_client_cert=False)
        with (
            no_retries(sidecar.address, credentials=anonymous, timeout=3) as client,
            pytest.raises(MsgArchiveError) as raised,
        ):
            client.archive(samples.email_request())
        assert raised.value.code is grpc.StatusCode.UNAVAILABLE
    finally:
        assert sidecar.stop() == 0


def test_unix_socket(tmp_path: Path) -> None:
    socket_path = tmp_path / "msgarchive.sock"
    sidecar = SidecarProcess([f"--listen=unix:{socket_path}", f"--store={tmp_path / 'a'}"]).start()
    try:
        assert sidecar.address == f"unix:{socket_path}"
        with ArchiveClient(f"unix:{socket_path}") as client:
            ack = client.archive(samples.whatsapp_request())
            found = client.get_archived_message(pb.GetArchivedMessageRequest(key=ack.key))
        assert found.message_details.message_id == samples.PHONE_MESSAGE_ID
    finally:
        assert sidecar.stop() == 0


# --- backpressure ------------------------------------------------------------------


def test_the_in_flight_bound_trips_under_a_burst_and_recovers(
    seaweed: SeaweedFS, bucket: str, proxy: FaultProxy, s3: S3Client
) -> None:
    sidecar = start(seaweed, bucket, proxy, "--max-in-flight=2", "--max-streams=2", "--threads=8")
    proxy.set_rates({Fault.HOLD: 1.0})  # from now on writes wait in the store until released
    outcomes: list[object] = []
    lock = threading.Lock()

    def archive(n: int) -> None:
        with no_retries(sidecar.address) as client:
            try:
                result: object = client.archive(
                    samples.sms_request(created_at_ms=samples.CREATED_AT_MS + n)
                )
            except MsgArchiveError as err:
                result = err
        with lock:
            outcomes.append(result)

    try:
        held = [threading.Thread(target=archive, args=(n,)) for n in range(2)]
        for thread in held:
            thread.start()
        assert proxy.wait_for_write(count=2), "the first two never reached the store"
        # Both places are taken while the store holds them: the rest are refused.
        for n in range(2, 8):
            archive(n)
        refused = [o for o in outcomes if isinstance(o, MsgArchiveError)]
        assert len(refused) == 6
        for err in refused:
            assert isinstance(err, Overloaded)
            assert err.reason == "OVERLOADED"
            assert err.retry_delay == pytest.approx(0.05)
        proxy.release.set()
        for thread in held:
            thread.join(60)
        acked = [o for o in outcomes if isinstance(o, pb.ArchiveResponse)]
        assert len(acked) == 2
        proxy.clear()
        with no_retries(sidecar.address) as client:  # recovered
            client.archive(samples.email_request())
    finally:
        sidecar.kill()


# --- settings that stop startup -------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--tls-client-ca=ca.pem"], "--tls-client-ca (mTLS) needs --tls-cert and --tls-key"),
        (["--tls-cert=/nonexistent/c.pem", "--tls-key=/nonexistent/k.pem"],
         "--tls-cert /nonexistent/c.pem: No such file or directory"),
        (["--max-in-flight=80"], "--max-in-flight 80 plus --max-streams 8 must be below"),
    ],
)  # fmt: skip
def test_invalid_transport_settings_stop_startup(
    tmp_path: Path, args: list[str], says: str
) -> None:
    code, stderr = run_to_exit(["--listen=127.0.0.1:0", f"--store={tmp_path}", *args])
    assert code == 2
    assert says in stderr
    assert stderr.count("\n") == 1
