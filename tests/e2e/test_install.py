"""Installed as users get it: `python -m build`, then the wheel in clean venvs.

Without the `[server]` extra, the client library imports, the README's client
example runs, and the `msgarchive` command's client commands work against a
running sidecar; the server commands say in one line which extra to install.
With it, the installed sidecar serves and answers its health check.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from msgarchive import ArchiveClient
from tests import samples
from tests.sidecar import SidecarProcess

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
# A copy of the environment without the dev venv on PATH or PYTHONPATH.
CLEAN_ENV = {
    k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")
}


def run(*command: str | Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(part) for part in command],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=CLEAN_ENV,
    )


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sdist and the wheel, built as a user's tools build them; the wheel."""
    dist = tmp_path_factory.mktemp("dist")
    built = run(sys.executable, "-m", "build", "--outdir", dist, REPO)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    (found,) = dist.glob("msgarchive-*.whl")
    assert list(dist.glob("msgarchive-*.tar.gz")), "no sdist"
    return found


def venv_with(tmp_path_factory: pytest.TempPathFactory, requirement: str) -> Path:
    """A fresh venv with `requirement` installed; its bin directory."""
    venv = tmp_path_factory.mktemp("venv")
    made = run(sys.executable, "-m", "venv", venv)
    assert made.returncode == 0, made.stderr
    installed = run(venv / "bin" / "python", "-m", "pip", "install", "--quiet", requirement)
    assert installed.returncode == 0, installed.stderr[-3000:]
    return venv / "bin"


@pytest.fixture(scope="module")
def client_venv(tmp_path_factory: pytest.TempPathFactory, wheel: Path) -> Path:
    return venv_with(tmp_path_factory, str(wheel))


@pytest.fixture(scope="module")
def sidecar(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SidecarProcess]:
    store = tmp_path_factory.mktemp("copies")
    running = SidecarProcess(["--listen=127.0.0.1:0", f"--store={store}"]).start()
    try:
        yield running
    finally:
        running.stop()


def test_the_client_install_has_no_server_dependencies(client_venv: Path) -> None:
    probe = (
        "import importlib.util, msgarchive\n"
        "from msgarchive import ArchiveClient, AsyncArchiveClient, locate\n"
        "print([m for m in ('boto3', 'lz4', 'structlog', 'tenacity', 'prometheus_client')"
        " if importlib.util.find_spec(m)])\n"
    )
    done = run(client_venv / "python", "-c", probe)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_client_commands_work_without_the_server_extra(
    client_venv: Path, sidecar: SidecarProcess
) -> None:
    msgarchive = client_venv / "msgarchive"
    health = run(msgarchive, "health", "--address", sidecar.address)
    assert (health.returncode, health.stdout.strip()) == (0, "SERVING"), health.stderr
    with ArchiveClient(sidecar.address) as client:
        ack = client.archive(samples.sms_request())
    got = run(msgarchive, "get", "--address", sidecar.address, "--key", ack.key)
    assert got.returncode == 0, got.stderr
    answer = json.loads(got.stdout)
    assert answer["file_info"]["key"] == ack.key
    assert json.loads(answer["archived_json"])["message_id"] == ack.message_id
    key = run(msgarchive, "api-key")
    assert key.returncode == 0, key.stderr
    assert "api_key_sha256" in key.stdout


@pytest.mark.parametrize(
    ("command", "extra"),
    [(["serve"], "server"), (["cat", "copy.json.lz4"], "server"),
     (["console"], "server,search,console")],
)  # fmt: skip
def test_server_commands_name_the_extra_in_one_line(
    client_venv: Path, command: list[str], extra: str
) -> None:
    done = run(client_venv / "msgarchive", *command)
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(f"msgarchive: error: {command[0]} needs the sidecar's dependencies")
    assert f"pip install 'msgarchive[{extra}]'" in line
    assert "Traceback" not in done.stderr


def test_the_console_extra_serves_its_pages_and_assets_from_the_wheel(
    tmp_path_factory: pytest.TempPathFactory, wheel: Path, tmp_path: Path
) -> None:
    console_venv = venv_with(tmp_path_factory, f"{wheel}[server,search,console]")
    console = SidecarProcess(
        ["--listen=127.0.0.1:0", f"--store={tmp_path / 'copies'}",
         f"--cache-dir={tmp_path / 'cache'}", f"--work-dir={tmp_path / 'work'}"],
        python=console_venv / "python", command="console",
    ).start()  # fmt: skip
    try:
        for path, kind in (("/search", "text/html"), ("/static/console.css", "text/css")):
            url = f"http://127.0.0.1:{console.port}{path}"
            with urllib.request.urlopen(url, timeout=30) as answer:
                assert answer.status == 200
                assert answer.headers["Content-Type"].startswith(kind)
                assert answer.read()
    finally:
        assert console.stop() == 0


def test_the_readme_client_example_runs_from_the_client_install(
    client_venv: Path, sidecar: SidecarProcess, tmp_path: Path
) -> None:
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## Client library") :]
    example = section[section.index("```python\n") + 10 : section.index("```\n", 20)]
    assert "ArchiveClient(" in example
    script = tmp_path / "example.py"
    script.write_text(
        "def send_sms(request):\n    print('sent to', request.sms.to)\n\n"
        + example.replace("127.0.0.1:50051", sidecar.address)
    )
    done = run(client_venv / "python", script)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "sent to +15555555555"


def test_the_server_install_serves(
    tmp_path_factory: pytest.TempPathFactory, wheel: Path, tmp_path: Path
) -> None:
    server_venv = venv_with(tmp_path_factory, f"{wheel}[server]")
    sidecar = SidecarProcess(
        ["--listen=127.0.0.1:0", "--http-listen=127.0.0.1:0", f"--store={tmp_path / 'copies'}"],
        python=server_venv / "python",
    ).start()
    try:
        health = run(server_venv / "msgarchive", "health", "--address", sidecar.address)
        assert (health.returncode, health.stdout.strip()) == (0, "SERVING"), health.stderr
        with ArchiveClient(sidecar.address) as client:
            ack = client.archive(samples.email_request())
        assert (tmp_path / "copies" / ack.key).exists()
        # The HTTP view and its OpenAPI document come with the wheel.
        port = sidecar.serving["http_port"]
        url = f"http://127.0.0.1:{port}/v1/archival/openapi.json"
        with urllib.request.urlopen(url, timeout=30) as answer:
            assert json.load(answer)["paths"].keys() >= {"/v1/archival/view"}
    finally:
        assert sidecar.stop() == 0
