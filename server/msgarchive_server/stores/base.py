"""What a store is: a place that keeps a copy under a key, verified, once;
and what else a store can do, declared by each store as its `Capability`."""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol, cast


@dataclass(frozen=True, slots=True)
class PutResult:
    """What the store confirmed about a write."""

    etag: str
    version_id: str
    # The copy that was already under the key (kept; nothing was written), or
    # None when this write stored the body.
    existing_copy: bytes | None = None

    @property
    def already_existed(self) -> bool:
        return self.existing_copy is not None


RETENTION_MODES = ("GOVERNANCE", "COMPLIANCE")  # weaker first
COPY_CONTENT_TYPE = "application/x-lz4"
DAY_MS = 24 * 3600 * 1000


@dataclass(frozen=True, slots=True)
class Retention:
    """How long a store keeps each copy's version from being deleted or
    overwritten (S3 Object Lock): a mode and a period in days."""

    mode: str  # GOVERNANCE or COMPLIANCE
    days: int

    def covers(self, wanted: Retention) -> bool:
        """True when this retention is at least as strict and as long as `wanted`."""
        stricter = RETENTION_MODES.index(self.mode) >= RETENTION_MODES.index(wanted.mode)
        return stricter and self.days >= wanted.days


@dataclass(frozen=True, slots=True)
class StoredObject:
    """A copy as read back from the store."""

    body: bytes
    etag: str
    version_id: str
    # When the store wrote it, epoch milliseconds (S3 keeps whole seconds).
    stored_at_ms: int
    # Its Object Lock, as the store reports it ("" and 0 when none).
    retention_mode: str = ""
    retain_until_ms: int = 0
    legal_hold: bool = False


@dataclass(frozen=True, slots=True)
class ObjectSummary:
    """A listed copy: what the store knows without reading it."""

    key: str
    size: int
    etag: str
    stored_at_ms: int


@dataclass(frozen=True, slots=True)
class VersionSummary:
    """One version of an object, or a delete marker, as a version listing shows it."""

    key: str
    version_id: str
    etag: str
    size: int
    is_latest: bool
    is_delete_marker: bool


class NoSuchObject(Exception):
    """Nothing is stored under the key."""


class ErrorKind(enum.Enum):
    """How the pipeline treats a store error."""

    # A transient fault (5xx, timeout, reset, BadDigest): retry.
    TRANSIENT = "transient"
    # The store refused us access (AccessDenied): retried like a transient
    # fault, as the reference archive document's FAQ asks; refused on every
    # attempt, archiving cannot work (the circuit opens).
    DENIED = "denied"
    # The store asks us to slow down (SlowDown, 503, 429): back off and retry.
    THROTTLED = "throttled"
    # Archiving cannot work: credentials or bucket are wrong (NoSuchBucket,
    # InvalidAccessKeyId, SignatureDoesNotMatch), or the directory is unusable.
    FATAL = "fatal"
    # The store refused this one request for a reason retrying cannot cure.
    REJECTED = "rejected"


class StoreError(Exception):
    """A write the store did not confirm. Carries no message content."""

    def __init__(self, code: str, kind: ErrorKind, detail: str = "") -> None:
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code
        self.kind = kind


@dataclass(frozen=True, slots=True)
class ListPage:
    items: list[ObjectSummary]
    truncated: bool


class Capability(enum.Flag):
    """What a store can do. Every store writes, reads and lists; the rest is
    what `verify`, legal holds and retention ask of a store."""

    WRITE = enum.auto()
    READ = enum.auto()
    LIST = enum.auto()
    # It keeps every version of an object, and lists and reads them (verify).
    VERSIONS = enum.auto()
    # It sets a legal hold on one version (msgarchive hold).
    LEGAL_HOLD = enum.auto()
    # It keeps a version from deletion until a date (Object Lock), so that it
    # can be asked to (--retention-mode).
    RETENTION = enum.auto()

    @classmethod
    def basic(cls) -> Capability:
        return cls.WRITE | cls.READ | cls.LIST


class Unsupported(Exception):
    """The store cannot do what was asked of it; the message says what and why."""


@dataclass(frozen=True, slots=True)
class StoreOptions:
    """How to reach a remote store (today: S3 and S3-compatible stores).
    Credentials come from the standard AWS chain."""

    endpoint_url: str | None = None
    region: str | None = None
    path_style: bool = False
    sse: str | None = None  # "AES256" or "aws:kms"
    sse_kms_key_id: str | None = None
    connect_timeout: float = 2.0
    read_timeout: float = 10.0
    max_connections: int = 32


class Store(Protocol):
    """A copy store: the S3 store or the local-directory store."""

    # What it can do beyond writing, reading and listing.
    capabilities: Capability

    # Where copies go, for the ack: a bucket name, or a directory's path.
    bucket: str
    # The key prefix ("" or ending in "/") every copy's key starts with.
    prefix: str
    # True for a store reached over the network, whose refusal (credentials,
    # bucket) can be fixed while the sidecar waits; False for the local
    # directory, where an unusable directory is a configuration error.
    remote: bool
    # The retention every copy gets, as the last probe verified it; None when
    # the store keeps copies without one.
    retention: Retention | None

    def put(self, key: str, body: bytes, content_type: str = COPY_CONTENT_TYPE) -> PutResult:
        """Store `body` under `key` unless a copy is there already.

        The write must be verified against a checksum of these exact bytes
        (the S3 store sends one that S3 checks; the local store reads its file
        back), and refused if they differ. Raises `StoreError` when the write
        is not confirmed.
        """
        ...

    def get(self, key: str) -> StoredObject:
        """The object under `key`. Raises `NoSuchObject` or `StoreError`."""
        ...

    def read(self, key: str, version_id: str = "") -> bytes:
        """The bytes of one version of `key` (the latest for ""), without the
        metadata `get` gives: the path for reading many copies (an export).
        Raises `NoSuchObject` or `StoreError`."""
        ...

    def list(self, prefix: str, start_after: str = "", limit: int = 1000) -> ListPage:
        """Up to `limit` objects whose keys start with `prefix` and sort after
        `start_after`, in key order, and whether more follow."""
        ...

    def probe(self) -> None:
        """Raise `StoreError` unless the store takes writes now, under the
        retention it was configured with, if any.

        Used at startup and, while archiving is unavailable, to find out when
        it works again. It may write a small probe object of its own.
        """
        ...

    def reconnect(self) -> None:
        """Drop cached connections and credentials, so the next call reads
        them afresh (rotated keys, a fixed credentials file)."""
        ...

    def close(self) -> None:
        """Release connections and files."""
        ...


class VersionedStore(Store, Protocol):
    """A store with `Capability.VERSIONS`."""

    def versions(
        self, prefix: str, page_size: int = 1000, parallel: int = 1
    ) -> Iterator[VersionSummary]:
        """Every version and delete marker of the objects below `prefix`, in
        the order the store lists them (S3: key order; within a key, newest
        first); `parallel` folders listed at once."""
        ...

    def get_version(self, key: str, version_id: str) -> StoredObject:
        """One version of the object under `key`. Raises `NoSuchObject` or `StoreError`."""
        ...


class HoldingStore(Store, Protocol):
    """A store with `Capability.LEGAL_HOLD`."""

    def set_legal_hold(self, key: str, version_id: str, on: bool) -> None:
        """Place (`on`) or lift the legal hold of one version."""
        ...


def listed(store: Store, prefix: str) -> Iterator[ObjectSummary]:
    """Every object below `prefix`, in key order, page after page."""
    after = ""
    while True:
        page = store.list(prefix, start_after=after)
        yield from page.items
        if not page.truncated or not page.items:
            return
        after = page.items[-1].key


def versioned(store: Store, purpose: str) -> VersionedStore:
    """`store` as a versioned store; `Unsupported` when it keeps no versions."""
    _require(store, Capability.VERSIONS, purpose, "keeps every version of a copy")
    return cast(VersionedStore, store)


def holding(store: Store, purpose: str) -> HoldingStore:
    """`store` as one that sets legal holds; `Unsupported` when it cannot."""
    _require(store, Capability.LEGAL_HOLD, purpose, "sets legal holds")
    return cast(HoldingStore, store)


def _require(store: Store, capability: Capability, purpose: str, what: str) -> None:
    if capability not in store.capabilities:
        raise Unsupported(
            f"{purpose} needs a store that {what} (an S3 bucket with versioning); "
            f"{store.bucket} does not"
        )
