"""Fixtures shared by the suites: one SeaweedFS per test session, a bucket per test."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import structlog
import trustme

from tests.faults import FaultProxy
from tests.seaweed import SeaweedFS

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFS]:
    store = SeaweedFS(Path(tmp_path_factory.mktemp("seaweedfs")))
    store.start()
    try:
        yield store
    finally:
        store.stop()


@pytest.fixture
def bucket(seaweed: SeaweedFS) -> str:
    """A fresh, empty bucket of this test's own."""
    return seaweed.new_bucket()


@pytest.fixture
def s3(seaweed: SeaweedFS) -> S3Client:
    """A plain boto3 client of the test SeaweedFS, for reading copies back."""
    return seaweed.client()


@pytest.fixture
def proxy(seaweed: SeaweedFS) -> Iterator[FaultProxy]:
    """A fault-injecting proxy in front of the test SeaweedFS; no faults until asked."""
    running = FaultProxy(int(seaweed.endpoint.rsplit(":", 1)[1])).start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def restores_logging() -> Iterator[None]:
    """For a test that configures the sidecar's logging in this process: it binds
    sys.stdout (pytest's capture, closed after the test), so undo it afterwards,
    or later tests in this process would log into a closed file."""
    yield
    from msgarchive_server.telemetry.logs import flush_logs

    flush_logs()
    structlog.reset_defaults()
    logging.getLogger().handlers.clear()


@pytest.fixture(scope="session")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1, and a client certificate, made now."""
    ca = trustme.CA()
    where = tmp_path_factory.mktemp("tls")
    server = ca.issue_cert("127.0.0.1", "localhost")
    client = ca.issue_cert("sender.campaigns.example")
    files = {
        "ca": ca.cert_pem,
        "server_cert": server.cert_chain_pems[0],
        "server_key": server.private_key_pem,
        "client_cert": client.cert_chain_pems[0],
        "client_key": client.private_key_pem,
    }
    paths = {}
    for name, blob in files.items():
        paths[name] = where / f"{name}.pem"
        blob.write_to_path(str(paths[name]))
    return paths
