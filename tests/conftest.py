"""Fixtures shared by the suites: one SeaweedFS per test session, a bucket per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

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
