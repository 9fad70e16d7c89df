"""End to end: the real sidecar process, called through the client library over a
socket, storing into SeaweedFS; copies read back with plain boto3 and
decompressed by the reference `lz4 -d` command."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
import pytest

from msgarchive import ArchiveClient, InvalidMessage
from msgarchive.v1 import archive_service_pb2 as pb
from tests import samples
from tests.seaweed import SeaweedFS, keys_in
from tests.sidecar import SidecarProcess, machine_env, run_to_exit, s3_sidecar
from tests.sockets import free_port

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
BUF = REPO / "node_modules" / ".bin" / "buf"


def lz4_decompress(blob: bytes, workdir: Path) -> dict[str, Any]:
    """Decompress with the reference lz4 command, as a person browsing the bucket would."""
    lz4 = shutil.which("lz4")
    assert lz4, "the lz4 command is required (make test installs it)"
    packed = workdir / "copy.json.lz4"
    packed.write_bytes(blob)
    out = subprocess.run([lz4, "-d", "-c", str(packed)], capture_output=True, check=True)
    copy: dict[str, Any] = json.loads(out.stdout)
    return copy


@pytest.fixture
def sidecar(seaweed: SeaweedFS, bucket: str) -> Iterator[SidecarProcess]:
    process = s3_sidecar(bucket, seaweed.endpoint, seaweed.env, "--s3-sse=AES256")
    try:
        yield process
    finally:
        process.kill()


@pytest.mark.parametrize("channel", list(samples.REQUESTS))
def test_every_channel_is_stored_contract_exact(
    channel: str, sidecar: SidecarProcess, bucket: str, s3: S3Client, tmp_path: Path
) -> None:
    with ArchiveClient(sidecar.address) as client:
        ack = client.archive(samples.REQUESTS[channel]())
    expected_id, _ = samples.IDS[channel]
    assert ack.message_id == expected_id
    assert ack.key == samples.expected_key(channel)
    assert ack.bucket == bucket
    assert ack.attempts == 1
    assert not ack.already_archived

    got = s3.get_object(Bucket=bucket, Key=ack.key)
    blob = got["Body"].read()
    assert len(blob) == ack.stored_bytes
    assert got["ETag"].strip('"') == ack.etag
    assert got["ServerSideEncryption"] == "AES256"
    copy = lz4_decompress(blob, tmp_path)
    expected = samples.expected_copy(channel, ack.sent_at_ms)
    for field, value in expected.items():
        assert copy[field] == value, field
    assert set(copy) == set(expected)


def test_a_retried_archive_is_acked_from_the_stored_copy(
    sidecar: SidecarProcess, bucket: str, s3: S3Client
) -> None:
    with ArchiveClient(sidecar.address) as client:
        first = client.archive(samples.push_request())
        again = client.archive(samples.push_request())
    assert again.already_archived
    assert (again.key, again.sent_at_ms, again.etag) == (first.key, first.sent_at_ms, first.etag)
    assert keys_in(s3, bucket) == [first.key]


BAD_REQUESTS = {
    "no channel": pb.ArchiveRequest(**samples.context()),
    "bad date": samples.sms_request(batch_id="20240231"),
    "unsafe campaign": samples.email_request(campaign_id="../other-tenant"),
    "short phone": pb.ArchiveRequest(
        **samples.context(), whatsapp=pb.WhatsAppMessage(to="+1 555", body="hi")
    ),
    "payload array": pb.ArchiveRequest(
        **samples.context(),
        push=pb.PushMessage(to="tok", platform=pb.PLATFORM_WEB, payload_json="[1]"),
    ),
}


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_bad_input_is_refused_and_the_bucket_stays_empty(
    case: str, sidecar: SidecarProcess, bucket: str, s3: S3Client
) -> None:
    with ArchiveClient(sidecar.address) as client, pytest.raises(InvalidMessage) as raised:
        client.archive(BAD_REQUESTS[case])
    assert raised.value.reason == "INVALID_MESSAGE"
    assert raised.value.field_violations
    assert keys_in(s3, bucket) == []


def test_buf_curl_archives_through_reflection(
    sidecar: SidecarProcess, bucket: str, s3: S3Client
) -> None:
    assert BUF.exists(), "buf is required (make test installs it with npm)"
    body = {
        "accountId": "acc",
        "batchId": "20240901",
        "createdAtMs": str(samples.CREATED_AT_MS),
        "customerIdentity": "45142169",
        "campaignId": "1722529032",
        "campaignName": "Flat Offer Sale Campaign",
        "sms": {"to": "+1 (555) 555-5555", "body": "Hi there!", "provider": "twilio"},
    }
    url = f"http://{sidecar.address}/msgarchive.v1.ArchiveService/Archive"
    done = subprocess.run(
        [
            str(BUF),
            "curl",
            "--protocol",
            "grpc",
            "--http2-prior-knowledge",
            url,
            "-d",
            json.dumps(body),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    ack = json.loads(done.stdout)
    assert ack["key"] == samples.expected_key("sms")
    assert keys_in(s3, bucket) == [ack["key"]]


def test_health_command_and_graceful_stop(sidecar: SidecarProcess) -> None:
    done = subprocess.run(
        [*sidecar.args[:3], "health", "--address", sidecar.address],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert (done.returncode, done.stdout.strip()) == (0, "SERVING")
    assert sidecar.stop(signal.SIGTERM) == 0
    events = [line.get("event") for line in sidecar.lines]
    assert events[-2:] == ["draining", "stopped"]


def test_zero_config_stores_under_archive_in_the_working_directory(tmp_path: Path) -> None:
    process = SidecarProcess(["--listen=127.0.0.1:0"], cwd=tmp_path).start()
    try:
        with ArchiveClient(process.address) as client:
            ack = client.archive(samples.sms_request())
    finally:
        assert process.stop() == 0
    assert ack.bucket == str(tmp_path / "archive")
    assert (tmp_path / "archive" / ack.key).is_file()


def _taken_port() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--store", "gs://bucket"], "unknown store URL scheme 'gs'"),
        (["--store", "s3://"], "missing bucket name"),
        (["--store", "/dev/null/archive"], "cannot write to /dev/null/archive"),
        (["--threads", "lots"], "--threads='lots': expected a number"),
        (["--http-listen", "8080"], "--http-listen 8080: expected HOST:PORT or unix:PATH"),
    ],
)
def test_bad_configuration_stops_startup_with_one_line(args: list[str], says: str) -> None:
    code, stderr = run_to_exit(["--listen=127.0.0.1:0", *args])
    assert code == 2
    assert stderr.startswith("msgarchive: error: ")
    assert says in stderr
    assert stderr.count("\n") == 1


def test_a_taken_port_stops_startup(tmp_path: Path) -> None:
    with _taken_port() as taken:
        port = taken.getsockname()[1]
        code, stderr = run_to_exit([f"--listen=127.0.0.1:{port}", f"--store={tmp_path}"])
    assert code == 2
    assert (
        stderr
        == f"msgarchive: error: --listen 127.0.0.1:{port}: cannot listen: Address already in use\n"
    )


@pytest.mark.parametrize("flag", ["--http-listen", "--metrics-listen"])
def test_a_taken_http_port_stops_startup(tmp_path: Path, flag: str) -> None:
    with _taken_port() as taken:
        port = taken.getsockname()[1]
        code, stderr = run_to_exit(
            ["--listen=127.0.0.1:0", f"{flag}=127.0.0.1:{port}", f"--store={tmp_path}"]
        )
    assert code == 2
    assert stderr == (
        f"msgarchive: error: {flag} 127.0.0.1:{port}: cannot listen: Address already in use\n"
    )


def test_the_http_view_on_a_unix_socket_is_local(tmp_path: Path) -> None:
    socket_path = tmp_path / "http.sock"
    sidecar = SidecarProcess(
        ["--listen=127.0.0.1:0", f"--http-listen=unix:{socket_path}", f"--store={tmp_path}"]
    ).start()
    try:
        done = subprocess.run(
            ["curl", "--silent", "--unix-socket", str(socket_path), "--data",
             '{"event_name": "SMS Sent"}', "http://localhost/v1/archival/view"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        # Served without credentials (local), and judged on its fields.
        assert json.loads(done.stdout)["reason"] == "INVALID_LOOKUP", done.stdout
        assert sidecar.stop() == 0
    finally:
        sidecar.kill()


def test_a_unix_socket_in_a_missing_directory_stops_startup(tmp_path: Path) -> None:
    listen = f"unix:{tmp_path}/nope/s.sock"
    code, stderr = run_to_exit([f"--listen={listen}", f"--store={tmp_path}"])
    assert code == 2
    assert stderr == f"msgarchive: error: --listen {listen}: no such directory {tmp_path}/nope\n"


def _serving_into_a_pipe(
    tmp_path: Path, port: int, stderr: int, unbuffered: str = ""
) -> subprocess.Popen[bytes]:
    """A sidecar on `port` whose stdout is a pipe of the test's, once it serves."""
    env = {**machine_env(), "MSGARCHIVE_LOG_FORMAT": "json", "PYTHONUNBUFFERED": unbuffered}
    sidecar = subprocess.Popen(
        [sys.executable, "-m", "msgarchive_server", "serve", f"--listen=127.0.0.1:{port}",
         f"--store={tmp_path / 'archive'}", "--grace-period=1"],
        stdout=subprocess.PIPE, stderr=stderr, env=env,
    )  # fmt: skip
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            grpc.channel_ready_future(channel).result(timeout=60)
    except BaseException:
        sidecar.kill()
        sidecar.wait()
        raise
    return sidecar


def _archive_and_find_stored(tmp_path: Path, port: int, count: int) -> None:
    """Archive `count` messages one by one; every acked copy is in the store."""
    with ArchiveClient(f"127.0.0.1:{port}") as client:
        acks = [
            client.archive(samples.sms_request(created_at_ms=samples.CREATED_AT_MS + n))
            for n in range(count)
        ]
    assert all((tmp_path / "archive" / ack.key).is_file() for ack in acks)


@pytest.mark.parametrize("unbuffered", ["1", ""])
def test_a_stdout_nobody_reads_neither_stops_archiving_nor_holds_the_stop(
    tmp_path: Path, unbuffered: str
) -> None:
    """A log collector that stops reading the sidecar's stdout: archives are
    still acked, every acked copy is stored, and SIGTERM still ends the
    process (it waited for stdout forever, with stdout buffered or not)."""
    port = free_port()
    sidecar = _serving_into_a_pipe(tmp_path, port, subprocess.DEVNULL, unbuffered)
    try:
        # 1,000 `rpc` lines, ~370 KB, six times what the pipe holds.
        _archive_and_find_stored(tmp_path, port, 1000)
        sidecar.send_signal(signal.SIGTERM)
        started = time.monotonic()
        assert sidecar.wait(60) == 0
        print(f"\nexited {time.monotonic() - started:.1f} s after SIGTERM")
    finally:
        if sidecar.poll() is None:
            sidecar.kill()
        sidecar.wait()


@pytest.mark.parametrize("unbuffered", ["1", ""])
def test_a_stdout_whose_reader_is_gone_is_said_once_and_archiving_goes_on(
    tmp_path: Path, unbuffered: str
) -> None:
    """The log collector died and closed the pipe: archives are still acked and
    stored, stderr says so in one line (it had a traceback for every batch),
    and SIGTERM ends the process with 0 (buffered, it was 120: the exit's
    flush of stdout failed again)."""
    port = free_port()
    sidecar = _serving_into_a_pipe(tmp_path, port, subprocess.PIPE, unbuffered)
    try:
        assert sidecar.stdout is not None
        sidecar.stdout.close()  # the reader goes: writes now fail with EPIPE
        _archive_and_find_stored(tmp_path, port, 500)
        sidecar.send_signal(signal.SIGTERM)
        _, stderr = sidecar.communicate(timeout=60)
        assert sidecar.returncode == 0
        said = stderr.decode().splitlines()
        assert said == [
            "msgarchive: cannot write log lines to stdout (BrokenPipeError: [Errno 32] "
            "Broken pipe); they are dropped and counted until it takes them again"
        ]
    finally:
        if sidecar.poll() is None:
            sidecar.kill()
        sidecar.wait()
