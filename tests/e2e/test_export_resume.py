"""An export cut short, by a kill, a store that fails or a disk that fills, and
finished with --resume: what it leaves is no production, and what it finishes
is the production a run that was never interrupted makes, reading no copy
twice. Real parts: SeaweedFS behind the fault proxy, the CLI as a process, a
real tmpfs that fills."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shlex
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from msgarchive import ArchiveClient
from msgarchive.v1 import archive_service_pb2 as pb
from tests import samples
from tests.faults import Fault, FaultProxy
from tests.seaweed import SeaweedFS
from tests.sidecar import manifest_key_pair, s3_sidecar

pytestmark = pytest.mark.e2e

COPIES = 24
MSGARCHIVE = [sys.executable, "-m", "msgarchive_server"]


class Archive:
    """A bucket of COPIES text messages to 6 numbers, with signed manifests,
    read through a fault proxy."""

    def __init__(self, seaweed: SeaweedFS, root: Path) -> None:
        self.root = root
        self.bucket = seaweed.new_bucket(object_lock=True)
        manifest_key, self.manifest_public = manifest_key_pair(root / "manifests")
        self.producer_key, self.producer_public = manifest_key_pair(root / "producer")
        sidecar = s3_sidecar(
            self.bucket, seaweed.endpoint, seaweed.env,
            f"--manifests-dir={root / 'journal'}", f"--manifest-signing-key={manifest_key}",
        )  # fmt: skip
        try:
            with ArchiveClient(sidecar.address) as client:
                for n in range(COPIES):
                    number = f"+1 555 555 010{n % 6}"
                    client.archive(
                        pb.ArchiveRequest(
                            **samples.context(created_at_ms=samples.CREATED_AT_MS + n),
                            sms=pb.SmsMessage(to=number, body=f"Hi, #{n}", provider="twilio"),
                        )
                    )
        finally:
            assert sidecar.stop() == 0
        self.proxy = FaultProxy(int(seaweed.endpoint.rsplit(":", 1)[1])).start()
        self.env = dict(seaweed.env)

    def command(self, out: Path, *args: str, cache: str = "cache") -> list[str]:
        return [
            *MSGARCHIVE, "export", str(out),
            f"--store=s3://{self.bucket}", f"--s3-endpoint-url={self.proxy.endpoint}",
            f"--cache-dir={self.root / cache}", f"--signing-key={self.producer_key}",
            f"--manifest-key={self.manifest_public}", "--handed-to=test", *args,
        ]  # fmt: skip

    def export(self, out: Path, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command(out, *args), capture_output=True, text=True, env=self.env,
            timeout=300, check=False,
        )  # fmt: skip

    def check(self, production: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                *MSGARCHIVE, "check-production", str(production),
                f"--public-key={self.producer_public}", f"--manifest-key={self.manifest_public}",
            ],
            capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip


@pytest.fixture(scope="module")
def archive(seaweed: SeaweedFS, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Archive]:
    root = tmp_path_factory.mktemp("resume")
    for name in ("manifests", "producer"):
        (root / name).mkdir()
    made = Archive(seaweed, root)
    yield made
    made.proxy.stop()


@pytest.fixture
def proxy(archive: Archive) -> FaultProxy:
    archive.proxy.clear()
    archive.proxy.release.clear()
    archive.proxy.read_held.clear()
    return archive.proxy


def wait_for_what_can_be_written(
    work: Path, proxy: FaultProxy, since: int, timeout: float = 120.0
) -> int:
    """The items a held export can write: those before the first whose copy was
    not let through (reads run ahead, and in parallel, so they arrive out of
    order). Waits until its state records them all; their number."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(sqlite3.Error):
            db = sqlite3.connect(f"file:{work / 'state.sqlite'}?mode=ro", uri=True)
            try:
                listed = db.execute("SELECT key, row IS NOT NULL FROM items ORDER BY n").fetchall()
            finally:
                db.close()
            read = proxy.copies_read[since:]  # this export's reads let through
            through = {path.split("/", 2)[2] for path in read}  # /bucket/key
            can = next((n for n, (key, _) in enumerate(listed) if key not in through), len(listed))
            if listed and sum(done for _, done in listed) == can:
                return can
        time.sleep(0.05)
    raise AssertionError("the export never wrote what its reads let through")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_killed_export_resumes_to_the_same_bytes_reading_each_copy_once(
    archive: Archive, proxy: FaultProxy, tmp_path: Path
) -> None:
    whole = tmp_path / "whole.zip"
    made = archive.export(whole, "--zip")
    assert made.returncode == 0, made.stderr
    out = tmp_path / "cut.zip"
    proxy.fault_reads(after=9, fault=Fault.HOLD)
    since = len(proxy.copies_read)
    export = subprocess.Popen(
        archive.command(out, "--zip"), env=archive.env,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proxy.read_held.wait(120), "the export never reached its tenth copy"
        # Every read from the tenth on is held: the export writes what it can, then waits.
        done = wait_for_what_can_be_written(tmp_path / "cut.zip.partial", proxy, since)
        os.kill(export.pid, signal.SIGKILL)
        export.wait(60)
    finally:
        proxy.clear()
        proxy.release.set()
        if export.poll() is None:
            export.kill()
    assert not out.exists()
    partial = tmp_path / "cut.zip.partial"
    assert partial.is_dir()

    again = archive.export(out, "--zip")  # without --resume: refused, nothing lost
    assert again.returncode == 2
    assert "rerun with --resume" in again.stderr
    assert partial.is_dir()

    reads_before = proxy.copy_reads
    resumed = archive.export(out, "--zip", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert 0 < done <= 9
    assert f"resumed: {done} were done" in resumed.stderr
    assert proxy.copy_reads - reads_before == COPIES - done  # none read twice
    assert not partial.exists()
    assert sha256(out) == sha256(whole)  # the production an unbroken run makes
    checked = archive.check(out)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_a_store_that_fails_mid_way_leaves_no_production_and_resume_finishes(
    archive: Archive, proxy: FaultProxy, tmp_path: Path
) -> None:
    out = tmp_path / "production"
    proxy.fault_reads(after=5, fault=Fault.ERROR_500)
    failed = archive.export(out)
    assert failed.returncode == 2
    assert len(failed.stderr.strip().splitlines()) == 1, failed.stderr
    assert "the store refused" in failed.stderr
    assert "--resume" in failed.stderr
    assert not out.exists()
    assert archive.check(tmp_path / "production.partial").returncode == 2  # not a production
    proxy.clear()
    other = archive.export(out, "--resume", "--recipient=+1 555 555 0101")
    assert other.returncode == 2
    assert "begun for another selection" in other.stderr
    resumed = archive.export(out, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert f"produced {COPIES} copies ({COPIES} with proofs)" in resumed.stderr
    assert archive.check(out).returncode == 0


def _in_a_small_tmpfs(
    script: str, size: str, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """Run `script` (sh) with a fresh tmpfs of `size` at $FULL, in a mount
    namespace of its own: a real file system that fills, mounted by no root."""
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("util-linux's unshare is not installed")
    namespace = [unshare, "--user", "--map-root-user", "--mount"]
    probe = subprocess.run([*namespace, "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"no user namespaces here: {probe.stderr.decode().strip()}")
    mounted = 'FULL=$(mktemp -d); mount -t tmpfs -o "size=$SIZE" tmpfs "$FULL"; export FULL\n'
    return subprocess.run(
        [*namespace, "sh", "-c", mounted + script],
        capture_output=True, text=True, env={**env, "SIZE": size}, timeout=600, check=False,
    )  # fmt: skip


def test_a_disk_that_fills_fails_in_one_line_and_leaves_nothing_that_checks(
    archive: Archive, proxy: FaultProxy
) -> None:
    export = shlex.join(archive.command(Path("OUT"), cache="full-cache"))
    export = export.replace(" OUT ", ' "$FULL/out" ')
    check = shlex.join(
        [
            *MSGARCHIVE, "check-production", "PRODUCTION",
            f"--public-key={archive.producer_public}", f"--manifest-key={archive.manifest_public}",
        ]
    )  # fmt: skip
    script = f"""
        {export} 2>&1; echo "export=$?"
        test -e "$FULL/out" && echo "out=present" || echo "out=absent"
        test -d "$FULL/out.partial/tree/items" && echo "partial=present"
        {check.replace("PRODUCTION", '"$FULL/out.partial/tree"')} >/dev/null 2>&1
        echo "check=$?"
        mount -o remount,size=64m "$FULL"
        {export} --resume 2>&1; echo "resume=$?"
        {check.replace("PRODUCTION", '"$FULL/out"')} 2>&1; echo "final=$?"
    """
    ran = _in_a_small_tmpfs(script, "256k", archive.env)
    lines = [line.strip() for line in ran.stdout.splitlines()]
    assert "export=2" in lines, ran.stdout + ran.stderr
    (error,) = lines[: lines.index("export=2")]  # one line, and only one
    assert "No space left on device" in error or "disk is full" in error, ran.stdout
    assert "rerun with --resume" in error
    assert "out=absent" in lines
    assert "partial=present" in lines  # it failed with items written: mid-way
    assert "check=2" in lines  # what is left is no production: check-production says so
    assert "resume=0" in lines, ran.stdout
    assert any("(resumed: " in line for line in lines), ran.stdout
    assert "final=0" in lines, ran.stdout
    assert any("the production checks" in line for line in lines)
