"""--workers: processes sharing one port, with health and metrics that add up."""

from __future__ import annotations

import os
import signal
import time
import urllib.request
from pathlib import Path

import pytest

from msgarchive import ArchiveClient
from tests import samples
from tests.seaweed import SeaweedFS
from tests.sidecar import SidecarProcess, manifest_key_pair, on_s3, run_to_exit, verify
from tests.sockets import free_port

pytestmark = pytest.mark.e2e


def wait_for_workers(sidecar: SidecarProcess, count: int) -> None:
    """Wait until `count` workers have each logged that they serve."""
    deadline = time.monotonic() + 60
    while sum(line.get("event") == "serving" for line in sidecar.lines) < count:
        assert time.monotonic() < deadline, "the workers did not all start"
        time.sleep(0.05)


def start_workers(tmp_path: Path, workers: int = 2) -> tuple[SidecarProcess, int]:
    metrics = free_port()
    sidecar = SidecarProcess(
        [
            f"--workers={workers}",
            f"--listen=127.0.0.1:{free_port()}",
            f"--metrics-listen=127.0.0.1:{metrics}",
            f"--store={tmp_path / 'archive'}",
        ]
    ).start()
    wait_for_workers(sidecar, workers)
    return sidecar, metrics


def test_workers_share_the_port_and_their_metrics_add_up(tmp_path: Path) -> None:
    sidecar, metrics_port = start_workers(tmp_path)
    try:
        for n in range(40):  # a connection each: the kernel spreads them
            # Its own subchannel pool, or gRPC may hand the new channel the
            # previous one's connection while that is still open.
            own_connection = [("grpc.use_local_subchannel_pool", 1)]
            with ArchiveClient(sidecar.address, options=own_connection) as client:
                client.archive(samples.sms_request(created_at_ms=samples.CREATED_AT_MS + n))
        url = f"http://127.0.0.1:{metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as reply:
            text = reply.read().decode()
    finally:
        assert sidecar.stop() == 0
    served_by = {
        line["worker"]
        for line in sidecar.lines
        if line.get("event") == "rpc" and line.get("method", "").endswith("/Archive")
    }
    assert served_by == {0, 1}
    assert 'msgarchive_archive_duration_seconds_count{channel="sms",outcome="ok"} 40.0' in text
    assert "msgarchive_archives_in_flight 0.0" in text
    assert len(list((tmp_path / "archive").rglob("*.json.lz4"))) == 40
    stopped = [line for line in sidecar.lines if line.get("event") == "stopped"]
    assert len(stopped) == 2  # each worker drained


def test_a_dead_worker_stops_the_whole(tmp_path: Path) -> None:
    sidecar, _ = start_workers(tmp_path)
    pids = [line["pid"] for line in sidecar.lines if line.get("event") == "serving"]
    os.kill(pids[0], signal.SIGKILL)
    assert sidecar.wait(30) == 1
    assert any(line.get("event", "").startswith("a worker stopped") for line in sidecar.lines)


def test_workers_need_a_fixed_tcp_port() -> None:
    code, stderr = run_to_exit(["--workers=2", "--listen=127.0.0.1:0"])
    assert code == 2
    assert "--workers needs a TCP address with a fixed port" in stderr


def test_workers_journal_apart_and_their_acks_end_in_one_chain(
    seaweed: SeaweedFS, bucket: str, tmp_path: Path
) -> None:
    key_file, public_file = manifest_key_pair(tmp_path)
    sidecar = on_s3(
        seaweed.endpoint,
        seaweed.env,
        "--workers=2",
        f"--store=s3://{bucket}",
        f"--manifests-dir={tmp_path / 'journal'}",
        f"--manifest-signing-key={key_file}",
        "--manifest-writer=pod-1",
        listen=f"127.0.0.1:{free_port()}",
    )
    wait_for_workers(sidecar, 2)
    acked = set()
    for n in range(30):  # a connection each: both workers journal some
        own_connection = [("grpc.use_local_subchannel_pool", 1)]
        with ArchiveClient(sidecar.address, options=own_connection) as client:
            acked.add(client.archive(samples.sms_request(created_at_ms=n + 1)).key)
    assert len(list((tmp_path / "journal").rglob("*.w1-*.jsonl"))) == 1  # worker 1's own
    assert sidecar.stop() == 0  # the supervisor seals once both have drained
    assert list((tmp_path / "journal").rglob("*.jsonl")) == []
    code, out, err = verify(bucket, public_file, seaweed.endpoint, seaweed.env)
    assert (code, out) == (0, ""), out + err
    assert f"{len(acked)} manifest entries" in err


def test_a_bare_metrics_port_means_loopback_for_the_supervisor_too(tmp_path: Path) -> None:
    """`--metrics-listen :PORT` with --workers: the supervisor parses it as the
    workers do (it crashed in getaddrinfo), and serves on 127.0.0.1."""
    metrics = free_port()
    sidecar = SidecarProcess(
        [
            "--workers=2",
            f"--listen=:{free_port()}",
            f"--metrics-listen=:{metrics}",
            f"--store={tmp_path / 'archive'}",
        ]
    ).start()
    try:
        wait_for_workers(sidecar, 2)
        with ArchiveClient(sidecar.address) as client:
            client.archive(samples.sms_request())
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics}/metrics", timeout=10) as reply:
            assert b"msgarchive_archive_duration_seconds" in reply.read()
    finally:
        assert sidecar.stop() == 0
    assert "Traceback" not in sidecar.stderr
