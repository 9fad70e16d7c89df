"""The TypeScript client (client/typescript), tested for real: Node's own test
runner runs its tests (client/typescript/test) against a sidecar on SeaweedFS,
with the fault proxy between them for the store fault, and the copies the
Node sender was acknowledged are checked in the bucket from here."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults import Fault, FaultProxy
from tests.seaweed import SeaweedFS, keys_in
from tests.sidecar import SidecarProcess, s3_sidecar

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "client" / "typescript"


@pytest.fixture(scope="module")
def built() -> Path:
    """The package and its tests compiled (tsc, strict), into its dist/."""
    tsc = PACKAGE / "node_modules" / ".bin" / "tsc"
    assert tsc.exists(), "client/typescript/node_modules is missing: run make tools"
    done = subprocess.run(
        [str(tsc), "-p", str(PACKAGE / "tsconfig.json")],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return PACKAGE / "dist" / "test"


@pytest.fixture
def sidecar(seaweed: SeaweedFS, bucket: str, proxy: FaultProxy) -> Iterator[SidecarProcess]:
    running = s3_sidecar(bucket, proxy.endpoint, seaweed.env)
    yield running
    running.kill()


def node_test(test_file: Path, address: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["node", "--test", "--test-reporter=tap", str(test_file)],
        capture_output=True, text=True, timeout=600, check=False, cwd=PACKAGE,
        env={**os.environ, "MSGARCHIVE_ADDRESS": address, **env},
    )  # fmt: skip


def test_a_node_sender_archives_every_channel_and_reads_the_copies_back(
    built: Path, sidecar: SidecarProcess, seaweed: SeaweedFS, bucket: str, tmp_path: Path
) -> None:
    acked = tmp_path / "acked.txt"
    done = node_test(built / "archive.test.js", sidecar.address, MSGARCHIVE_ACKED_FILE=str(acked))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "# fail 0" in done.stdout
    # Four channels, bad input, a copy not found, the stream, a deadline.
    assert "# pass 8" in done.stdout, done.stdout
    keys = set(acked.read_text().split())
    assert len(keys) == 4 + 1000  # one a channel (SMS and WhatsApp: two folders), the stream's
    assert keys <= set(keys_in(seaweed.client(), bucket))


def test_a_store_fault_reaches_a_node_sender_as_archive_failed(
    built: Path, sidecar: SidecarProcess, seaweed: SeaweedFS, bucket: str, proxy: FaultProxy
) -> None:
    proxy.set_rates({Fault.ERROR_500: 1.0})  # every write
    try:
        done = node_test(built / "fault.test.js", sidecar.address)
    finally:
        proxy.clear()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "# pass 2" in done.stdout, done.stdout
    assert keys_in(seaweed.client(), bucket) == []


def test_a_node_sender_connects_over_mtls_and_over_a_unix_socket(
    built: Path, certificates: dict[str, Path], tmp_path: Path
) -> None:
    tls = SidecarProcess(
        [
            "--listen=127.0.0.1:0",
            f"--store={tmp_path / 'tls-copies'}",
            f"--tls-cert={certificates['server_cert']}",
            f"--tls-key={certificates['server_key']}",
            f"--tls-client-ca={certificates['ca']}",
        ]
    ).start()
    unix = SidecarProcess(
        [f"--listen=unix:{tmp_path / 'msgarchive.sock'}", f"--store={tmp_path / 'unix-copies'}"]
    ).start()
    try:
        done = node_test(
            built / "transport.test.js",
            "",
            MSGARCHIVE_TLS_ADDRESS=tls.address,
            MSGARCHIVE_TLS_DIR=str(certificates["ca"].parent),
            MSGARCHIVE_UNIX_ADDRESS=unix.address,
        )
    finally:
        tls.kill()
        unix.kill()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "# pass 2" in done.stdout, done.stdout
    assert list((tmp_path / "tls-copies").rglob("*.json.lz4"))
    assert list((tmp_path / "unix-copies").rglob("*.json.lz4"))


def test_the_package_readme_example_runs_as_written(
    built: Path, sidecar: SidecarProcess, seaweed: SeaweedFS, bucket: str
) -> None:
    readme = (PACKAGE / "README.md").read_text()
    (example,) = re.findall(r"```js\n(.*?)```", readme, re.DOTALL)
    # Inside the package folder, Node resolves "@msgarchive/client" to the package itself.
    script = PACKAGE / "dist" / "readme-example.mjs"
    script.write_text(example)
    done = subprocess.run(
        ["node", str(script)],
        capture_output=True, text=True, timeout=120, check=False, cwd=PACKAGE,
        env={**os.environ, "MSGARCHIVE_ADDRESS": sidecar.address},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    (line,) = done.stdout.splitlines()
    key = line.removeprefix("archived at ")
    assert key.startswith("sent_messages/Sms/")
    assert key in keys_in(seaweed.client(), bucket)
