"""A scriptable in-memory store, for unit tests of the pipeline only."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable

from msgarchive_server.stores import (
    Capability,
    ErrorKind,
    ListPage,
    NoSuchObject,
    ObjectSummary,
    PutResult,
    Retention,
    StoredObject,
    StoreError,
)


class FakeStore:
    bucket = "fake-bucket"
    prefix = ""
    remote = True
    capabilities = Capability.basic()
    retention: Retention | None = None

    def __init__(self, failures: list[StoreError] | None = None) -> None:
        self.failures = list(failures or [])
        self.objects: dict[str, bytes] = {}
        self.stored_at: dict[str, int] = {}  # key -> write time, epoch ms
        self.clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000
        self.calls = 0

    def put(self, key: str, body: bytes, content_type: str = "") -> PutResult:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        if key in self.objects:
            existing = self.objects[key]
            return PutResult(
                hashlib.md5(existing, usedforsecurity=False).hexdigest(), "v0", existing
            )
        self.objects[key] = body
        self.stored_at[key] = self.clock_ms()
        return PutResult(hashlib.md5(body, usedforsecurity=False).hexdigest(), "v1")

    def get(self, key: str) -> StoredObject:
        if key not in self.objects:
            raise NoSuchObject(key)
        body = self.objects[key]
        etag = hashlib.md5(body, usedforsecurity=False).hexdigest()
        return StoredObject(body, etag, "", self.stored_at.get(key, 0))

    def read(self, key: str, version_id: str = "") -> bytes:
        return self.get(key).body

    def list(self, prefix: str, start_after: str = "", limit: int = 1000) -> ListPage:
        keys = sorted(k for k in self.objects if k.startswith(prefix) and k > start_after)
        items = [
            ObjectSummary(k, len(self.objects[k]), "", self.stored_at.get(k, 0))
            for k in keys[:limit]
        ]
        return ListPage(items, truncated=len(keys) > limit)

    def probe(self) -> None:
        pass

    def reconnect(self) -> None:
        pass

    def close(self) -> None:
        pass


def transient(code: str = "InternalError") -> StoreError:
    return StoreError(code, ErrorKind.TRANSIENT)


def throttled() -> StoreError:
    return StoreError("SlowDown", ErrorKind.THROTTLED)
