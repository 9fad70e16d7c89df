"""The client library stays light: what a sender installs and imports."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_client_depends_on_grpc_and_protobuf_only() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    names = sorted(dep.split(">")[0].split("=")[0] for dep in project["dependencies"])
    # grpcio's own packages (which need nothing but grpcio and protobuf) and protobuf.
    assert names == ["grpcio", "grpcio-health-checking", "grpcio-status", "protobuf"]
    assert any(dep.startswith("boto3") for dep in project["optional-dependencies"]["server"])


def test_importing_the_client_loads_no_server_dependency() -> None:
    probe = (
        "import sys, msgarchive\n"
        "from msgarchive import ArchiveClient, AsyncArchiveClient, locate\n"
        "print(sorted(m for m in ('boto3', 'botocore', 'structlog', 'lz4', 'tenacity',"
        " 'msgarchive_server') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
