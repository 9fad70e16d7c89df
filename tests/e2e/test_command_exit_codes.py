"""The proof commands say why they could not check in one line, with exit code 2
(1 is for findings): a missing bucket, an endpoint that does not answer."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.seaweed import SeaweedFS
from tests.sidecar import manifest_key_pair
from tests.sockets import free_port

pytestmark = pytest.mark.e2e

KEY = "sent_messages/Sms/202409/c1/" + "b" * 32 + "/" + "a" * 64 + ".json.lz4"


def closed_port() -> str:
    return f"http://127.0.0.1:{free_port()}"  # nothing listens once closed


def commands(bucket: str, endpoint: str, keys: tuple[Path, Path]) -> dict[str, list[str]]:
    private, public = keys
    at = f"--s3-endpoint-url={endpoint}"
    return {
        "verify": ["verify", f"s3://{bucket}", f"--public-key={public}", at],
        "prove": ["prove", f"s3://{bucket}", KEY, at],
        "hold": ["hold", "on", f"s3://{bucket}", "--campaign-id=c1", "--reason=r",
                 f"--signing-key={private}", at],
        "cat": ["cat", f"s3://{bucket}/{KEY}", at],
        "seal": ["seal", f"--store=s3://{bucket}", at, "--s3-path-style=true",
                 f"--manifests-dir={private.parent / 'journal'}",
                 f"--manifest-signing-key={private}", "--s3-connect-timeout=1",
                 "--max-retries=0"],
    }  # fmt: skip


@pytest.mark.parametrize("where", ["missing bucket", "unreachable endpoint"])
@pytest.mark.parametrize("command", ["verify", "prove", "hold", "cat", "seal"])
def test_could_not_check_is_one_line_and_exit_2(
    seaweed: SeaweedFS, tmp_path: Path, where: str, command: str
) -> None:
    endpoint = seaweed.endpoint if where == "missing bucket" else closed_port()
    argv = commands("no-such-bucket-here", endpoint, manifest_key_pair(tmp_path))[command]
    done = subprocess.run(
        [sys.executable, "-m", "msgarchive_server", *argv],
        capture_output=True, text=True, env={**seaweed.env}, timeout=300, check=False,
    )  # fmt: skip
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("msgarchive: error: "), done.stderr
    assert "Traceback" not in done.stderr
