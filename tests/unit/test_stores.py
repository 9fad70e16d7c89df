"""Opening stores from URLs, and what each can do."""

from __future__ import annotations

from pathlib import Path

import pytest

from msgarchive_server.stores import (
    BadLocation,
    Capability,
    Retention,
    StoreOptions,
    Unsupported,
    holding,
    open_store,
    versioned,
)
from msgarchive_server.stores.local import LocalStore
from msgarchive_server.stores.s3 import S3Store


def test_a_directory_opens_as_the_local_store_that_writes_reads_and_lists(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "archive"))
    assert isinstance(store, LocalStore)
    assert store.capabilities == Capability.WRITE | Capability.READ | Capability.LIST
    with pytest.raises(Unsupported, match="verify needs a store that keeps every version"):
        versioned(store, "verify")
    with pytest.raises(Unsupported, match="hold needs a store that sets legal holds"):
        holding(store, "hold")
    with pytest.raises(Unsupported, match="cannot enforce retention"):
        open_store(f"file://{tmp_path}", retention=Retention("COMPLIANCE", 7))


def test_a_bucket_opens_as_the_s3_store_with_the_options_given() -> None:
    options = StoreOptions(endpoint_url="http://127.0.0.1:9", path_style=True, read_timeout=3)
    store = open_store("s3://my-bucket/tenant/a", options, Retention("GOVERNANCE", 1))
    try:
        assert isinstance(store, S3Store)
        assert (store.bucket, store.prefix) == ("my-bucket", "tenant/a/")
        assert store.options.read_timeout == 3
        assert store.options.endpoint_url == "http://127.0.0.1:9"
        assert store.options.retention == Retention("GOVERNANCE", 1)
        for capability in (Capability.VERSIONS, Capability.LEGAL_HOLD, Capability.RETENTION):
            assert capability in store.capabilities
        assert versioned(store, "verify") is store
        assert holding(store, "hold") is store
    finally:
        store.close()


@pytest.mark.parametrize(
    "url", ["", "gs://bucket", "abc://x", "sftp://host/x", "s3://", "s3://UPPER", "file://host/x"]
)
def test_a_bad_url_is_refused_before_any_store_is_made(url: str) -> None:
    with pytest.raises(BadLocation):
        open_store(url)
