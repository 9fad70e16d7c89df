"""The README's buf curl examples run as written, against a real sidecar."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from msgarchive_server.domain.accounts import key_digest
from tests.sidecar import SidecarProcess

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
BUF = REPO / "node_modules" / ".bin" / "buf"
README = (REPO / "README.md").read_text()
SH_BLOCKS = re.findall(r"```sh\n(.*?)```", README, flags=re.DOTALL)
EXAMPLES = [block for block in SH_BLOCKS if block.startswith("buf curl")]
ARCHIVE_EXAMPLES = [e for e in EXAMPLES if "/Archive " in e and "/ViewMessage" not in e]
assert any("/ArchiveStream " in e for e in EXAMPLES)
HTTP_EXAMPLES = [block for block in SH_BLOCKS if block.startswith("curl http://127.0.0.1:8080")]
INLINE_BUF_CURL = re.findall(r"`(buf curl [^`]+)`", README)
API_KEY = "ma_readme_example_key"


@pytest.fixture(scope="module")
def sidecar(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SidecarProcess]:
    workdir = tmp_path_factory.mktemp("readme")
    accounts = workdir / "accounts.toml"
    accounts.write_text(
        f'[accounts.acc-1]\nstore = "{workdir}/archive"\n'
        f'api_key_sha256 = ["{key_digest(API_KEY)}"]\n'
    )
    process = SidecarProcess(
        ["--listen=127.0.0.1:0", "--http-listen=127.0.0.1:0", f"--accounts={accounts}"],
        cwd=workdir,
    ).start()
    try:
        yield process
    finally:
        process.kill()


def run(example: str, sidecar: SidecarProcess) -> list[dict[str, Any]]:
    """Run an example as a shell would; every JSON answer it printed."""
    command = (
        example.replace("127.0.0.1:50051", sidecar.address)
        .replace("127.0.0.1:8080", f"127.0.0.1:{sidecar.serving['http_port']}")
        .replace("buf curl", f"{BUF} curl")
    )
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", command],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "MSGARCHIVE_API_KEY": API_KEY},
    )
    assert done.returncode == 0, done.stderr
    decoder, text, answers = json.JSONDecoder(), done.stdout.strip(), []
    while text:
        answer, end = decoder.raw_decode(text)
        answers.append(answer)
        text = text[end:].strip()
    return answers


def test_the_readme_has_an_archive_example_per_channel_and_every_read() -> None:
    channels = {m for e in ARCHIVE_EXAMPLES for m in re.findall(r'"(sms|whatsapp|email|push)":', e)}
    assert channels == {"sms", "whatsapp", "email", "push"}
    for rpc in ("ViewMessage", "GetArchivedMessage", "ListArchivedMessages"):
        assert any(f"/{rpc} " in e and "Authorization:" in e for e in EXAMPLES), rpc


@pytest.mark.parametrize("index", range(len(EXAMPLES)))
def test_examples_run_as_written(index: int, sidecar: SidecarProcess) -> None:
    for archive in ARCHIVE_EXAMPLES:  # the copies the read examples ask for
        run(archive, sidecar)
    answers = run(EXAMPLES[index], sidecar)
    answer, example = answers[-1], EXAMPLES[index]
    if "/ArchiveStream " in example:
        assert sorted(a["requestId"] for a in answers) == ["m-1", "m-2"]
        for streamed in answers:
            ack = streamed["ack"]
            assert (Path(ack["bucket"]) / ack["key"]).is_file()
    elif "/ViewMessage " in example or "/GetArchivedMessage " in example:
        copy = json.loads(answer["archivedJson"])
        assert copy["message_id"] == answer["messageDetails"]["messageId"]
    elif "/ListArchivedMessages " in example:
        assert answer["messages"][0]["key"].startswith("sent_messages/Sms/202409/1725435360/")
    else:
        assert (Path(answer["bucket"]) / answer["key"]).is_file()


def test_health_example_runs_as_written(sidecar: SidecarProcess) -> None:
    (health,) = [e for e in INLINE_BUF_CURL if "Health/Check" in e]
    assert run(health, sidecar) == [{"status": "SERVING"}]


def test_the_http_view_example_runs_as_written(sidecar: SidecarProcess) -> None:
    (example,) = HTTP_EXAMPLES
    (archive_then_view,) = [e for e in EXAMPLES if "/ViewMessage " in e]
    ack, _ = run(archive_then_view, sidecar)
    (answer,) = run(example, sidecar)
    assert answer["status"] is True, answer
    assert answer["data"]["file_info"]["key"] == ack["key"]
    assert answer["data"]["message_details"]["campaign_id"] == "spring-sale"
