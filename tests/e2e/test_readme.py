"""The README's examples run as written, against a real sidecar."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.sidecar import SidecarProcess

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
BUF = REPO / "node_modules" / ".bin" / "buf"
README = (REPO / "README.md").read_text()
SH_BLOCKS = re.findall(r"```sh\n(.*?)```", README, flags=re.DOTALL)
BUF_CURL_EXAMPLES = [block for block in SH_BLOCKS if block.startswith("buf curl")]
INLINE_BUF_CURL = re.findall(r"`(buf curl [^`]+)`", README)


@pytest.fixture(scope="module")
def sidecar(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SidecarProcess]:
    workdir = tmp_path_factory.mktemp("readme")
    process = SidecarProcess(["--listen=127.0.0.1:0"], cwd=workdir).start()
    try:
        yield process
    finally:
        process.kill()


def run(example: str, sidecar: SidecarProcess) -> dict[str, object]:
    command = example.replace("127.0.0.1:50051", sidecar.address).replace(
        "buf curl", f"{BUF} curl", 1
    )
    done = subprocess.run(
        ["bash", "-c", command], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    reply: dict[str, object] = json.loads(done.stdout)
    return reply


def test_the_readme_has_an_example_per_channel() -> None:
    channels = {
        m for e in BUF_CURL_EXAMPLES for m in re.findall(r'"(sms|whatsapp|email|push)":', e)
    }
    assert channels == {"sms", "whatsapp", "email", "push"}


@pytest.mark.parametrize("index", range(len(BUF_CURL_EXAMPLES)))
def test_archive_examples_run_as_written(index: int, sidecar: SidecarProcess) -> None:
    ack = run(BUF_CURL_EXAMPLES[index], sidecar)
    key = str(ack["key"])
    assert key.startswith("sent_messages/")
    assert (Path(str(ack["bucket"])) / key).is_file()


def test_health_example_runs_as_written(sidecar: SidecarProcess) -> None:
    (health,) = [e for e in INLINE_BUF_CURL if "Health/Check" in e]
    assert run(health, sidecar) == {"status": "SERVING"}
