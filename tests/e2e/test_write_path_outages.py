"""The write path keeps acking where operators meet it: a restart within the hour,
a full journal disk (a real tmpfs), and starting or sealing on one."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from msgarchive import ArchiveClient, ArchiveRequest, JournalFull
from tests import samples
from tests.seaweed import SeaweedFS
from tests.sidecar import (
    SidecarProcess,
    health,
    manifest_key_pair,
    s3_sidecar,
    verify,
    wait_until_serving,
)

pytestmark = pytest.mark.e2e

JOURNAL_DISK = "256k"


def manifest_flags(journal: Path, key_file: Path) -> tuple[str, ...]:
    return (
        f"--manifests-dir={journal}",
        f"--manifest-signing-key={key_file}",
        "--manifest-writer=w1",
        "--metrics-listen=127.0.0.1:0",
    )


def request(n: int) -> ArchiveRequest:
    return samples.sms_request(created_at_ms=samples.CREATED_AT_MS + n)


def findings_of(bucket: str, public_file: Path, seaweed: SeaweedFS) -> list[dict[str, str]]:
    code, out, err = verify(bucket, public_file, seaweed.endpoint, seaweed.env)
    findings = [json.loads(line) for line in out.splitlines()]
    assert "verified" in err, err
    assert code == (1 if findings else 0)
    return findings


def manifest_objects(seaweed: SeaweedFS, bucket: str) -> list[str]:
    listed = seaweed.client().list_objects_v2(Bucket=bucket, Prefix="_msgarchive/manifests/w1/")
    return [item["Key"] for item in listed.get("Contents", [])]


def test_a_restart_within_the_hour_keeps_acking_and_every_ack_is_sealed(
    seaweed: SeaweedFS, bucket: str, tmp_path: Path
) -> None:
    key_file, public_file = manifest_key_pair(tmp_path)
    flags = manifest_flags(tmp_path / "journal", key_file)
    acked = []
    hours = []
    for run in range(3):  # start, archive, stop: three times, most often in one hour
        sidecar = s3_sidecar(bucket, seaweed.endpoint, seaweed.env, *flags)
        hours.append(sidecar.serving["timestamp"][:13])
        with ArchiveClient(sidecar.address) as client:
            acked += [client.archive(request(10 * run + n)).key for n in range(3)]
        assert sidecar.stop() == 0
        stopped = sidecar.wait_for_line(lambda line: line.get("event") == "stopped")
        hours.append(stopped["timestamp"][:13])
    assert len(acked) == 9  # every archive after every restart was acked

    assert findings_of(bucket, public_file, seaweed) == []  # each ack is in a manifest
    heads = [key for key in manifest_objects(seaweed, bucket) if "/head" in key]
    if len(set(hours)) == 1:  # all in one UTC hour: three parts of it
        assert sorted(re.sub(r".*/", "", key) for key in heads) == [
            "head.2.json",
            "head.3.json",
            "head.json",
        ]
    for key in acked:
        proved = subprocess.run(
            [sys.executable, "-m", "msgarchive_server", "prove", f"s3://{bucket}", key,
             f"--s3-endpoint-url={seaweed.endpoint}"],
            capture_output=True, text=True, env={**seaweed.env}, timeout=60, check=False,
        )  # fmt: skip
        assert proved.returncode == 0, proved.stderr
        assert json.loads(proved.stdout)["head_key"] in heads


@contextlib.contextmanager
def small_disk(path: Path) -> Iterator[Path]:
    """A tmpfs of JOURNAL_DISK mounted at `path` for the test, unmounted after."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    path.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={JOURNAL_DISK}", "tmpfs", str(path)],
                   check=True)  # fmt: skip
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(disk: Path, leave: int = 0) -> Path:
    """A file that takes all of `disk` but `leave` bytes; removing it frees them."""
    filler = disk / "filler"
    free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
    with filler.open("wb") as out, contextlib.suppress(OSError):
        out.write(b"x" * max(free - leave, 0))
        out.flush()
        os.fsync(out.fileno())
    return filler


def metric(sidecar: SidecarProcess, name: str) -> float:
    url = f"http://127.0.0.1:{sidecar.serving['metrics_port']}/metrics"
    with urllib.request.urlopen(url, timeout=10) as reply:
        text = reply.read().decode()
    values = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name)]
    assert values, f"no {name} in the metrics"
    return max(values)


def test_a_full_journal_disk_refuses_with_journal_full_then_recovers_without_restart(
    seaweed: SeaweedFS, bucket: str, tmp_path: Path
) -> None:
    key_file, public_file = manifest_key_pair(tmp_path)
    with small_disk(tmp_path / "journal") as disk:
        filler = fill(disk, leave=192 * 1024)  # the journal's reserve (64 KiB), then ~2 files
        sidecar = s3_sidecar(bucket, seaweed.endpoint, seaweed.env, *manifest_flags(disk, key_file))
        acked, refused = [], None
        with ArchiveClient(sidecar.address) as client:
            for n in range(5000):
                try:
                    acked.append(client.archive(request(n), timeout=30).key)
                except JournalFull as err:
                    refused = err
                    break
            assert refused is not None, "the disk never filled"
            assert refused.metadata["journal_error"] == "No space left on device"
            assert sidecar.process is not None
            assert sidecar.process.poll() is None  # alive: no SIGBUS
            assert health(sidecar.address) == "NOT_SERVING"
            assert metric(sidecar, "msgarchive_journal_full") == 1
            sidecar.wait_for_line(lambda line: line.get("event") == "manifest journal full")
            stored = len(seaweed.client().list_objects_v2(Bucket=bucket).get("Contents", []))
            with pytest.raises(JournalFull):  # refused at once: nothing more is stored
                client.archive(request(9000))
            assert len(seaweed.client().list_objects_v2(Bucket=bucket)["Contents"]) == stored

            filler.unlink()  # space is freed: it serves again, no restart
            wait_until_serving(sidecar.address)
            assert metric(sidecar, "msgarchive_journal_full") == 0
            acked.append(client.archive(request(9001)).key)
        assert sidecar.stop() == 0
    print(f"\nfull journal disk: {len(acked)} acked before and after")
    findings = findings_of(bucket, public_file, seaweed)
    # The copy whose journal entry did not fit is stored but was never acked.
    assert [f["kind"] for f in findings] == ["copy_unlisted"], findings
    assert findings[0]["key"] not in acked


def acked_then_killed(seaweed: SeaweedFS, bucket: str, flags: tuple[str, ...]) -> set[str]:
    """Five acks from a sidecar then killed with SIGKILL: its journal stays, unsealed."""
    first = s3_sidecar(bucket, seaweed.endpoint, seaweed.env, *flags)
    with ArchiveClient(first.address) as client:
        acked = {client.archive(request(n)).key for n in range(5)}
    first.stop(signal.SIGKILL)
    return acked


def test_a_sidecar_started_on_a_full_journal_disk_serves_and_seals_its_way_out(
    seaweed: SeaweedFS, bucket: str, tmp_path: Path
) -> None:
    key_file, public_file = manifest_key_pair(tmp_path)
    with small_disk(tmp_path / "journal") as disk:
        flags = manifest_flags(disk, key_file)
        acked_then_killed(seaweed, bucket, flags)
        fill(disk)  # not a byte left

        again = s3_sidecar(bucket, seaweed.endpoint, seaweed.env, *flags)  # starts, no traceback
        assert health(again.address) == "NOT_SERVING"
        assert metric(again, "msgarchive_journal_full") == 1
        with ArchiveClient(again.address) as client, pytest.raises(JournalFull):
            client.archive(request(100))
        assert list(disk.rglob("*.jsonl"))  # the killed sidecar's journal, unsealed
        # Stopping seals what the killed sidecar acked: the journal's reserve
        # records the seal, and the sealed hour's files are deleted.
        assert again.stop() == 0
        assert "Traceback" not in again.stderr
        again.wait_for_line(lambda line: line.get("event") == "sealed at shutdown")
        assert not list(disk.rglob("*.jsonl"))
    assert findings_of(bucket, public_file, seaweed) == []  # the five acks are listed


def test_seal_on_a_full_disk_fails_in_one_line_and_succeeds_with_room(
    seaweed: SeaweedFS, bucket: str, tmp_path: Path
) -> None:
    key_file, public_file = manifest_key_pair(tmp_path)
    with small_disk(tmp_path / "journal") as disk:
        flags = manifest_flags(disk, key_file)
        acked_then_killed(seaweed, bucket, flags)
        for reserve in disk.rglob(".reserve"):  # used up by an earlier seal, say
            reserve.unlink()
        filler = fill(disk)

        store_flags = [f"--store=s3://{bucket}", f"--s3-endpoint-url={seaweed.endpoint}",
                       "--s3-path-style=true", *flags[:3]]  # fmt: skip
        seal = [sys.executable, "-m", "msgarchive_server", "seal", *store_flags]
        full = subprocess.run(seal, capture_output=True, text=True, env={**seaweed.env},
                              timeout=120, check=False)  # fmt: skip
        assert full.returncode != 0
        errors = [line for line in full.stderr.splitlines() if "error" in line.lower()]
        assert len(errors) == 1, full.stderr
        assert errors[0].startswith("msgarchive: error: "), full.stderr
        assert "No space left on device" in errors[0]

        filler.unlink()
        sealed = subprocess.run(seal, capture_output=True, text=True, env={**seaweed.env},
                                timeout=120, check=False)  # fmt: skip
        assert sealed.returncode == 0, sealed.stderr
        assert not list(disk.rglob("*.jsonl"))  # sealed hours leave the journal
    # Nothing unlisted: the killed sidecar's five acks are in the sealed manifests.
    assert findings_of(bucket, public_file, seaweed) == []
