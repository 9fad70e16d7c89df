"""Where a store is, from a URL, and the one way to open it.

`parse_location(url)` reads a directory (PATH or file://PATH) or
s3://BUCKET[/PREFIX]; `open_store(url, options)` opens the store there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from pathlib import Path
from urllib.parse import urlsplit

from msgarchive.keys import normalize_prefix
from msgarchive_server.stores.base import Capability, Retention, Store, StoreOptions, Unsupported

BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


class BadLocation(ValueError):
    """The store URL is malformed; the message says how (without the URL)."""


@dataclass(frozen=True, slots=True)
class DirectoryLocation:
    path: Path

    @property
    def url(self) -> str:
        """The location as one URL, to compare places (ending in ``/``)."""
        return f"file://{self.path.resolve()}/"

    def open(self, options: StoreOptions, retention: Retention | None) -> Store:
        from msgarchive_server.stores.local import LocalStore

        if retention is not None and Capability.RETENTION not in LocalStore.capabilities:
            raise Unsupported(
                "a local directory cannot enforce retention (anyone who can write it can "
                "delete a copy); use an S3 bucket with Object Lock, or drop the retention "
                "setting"
            )
        return LocalStore(self.path)


@dataclass(frozen=True, slots=True)
class S3Location:
    bucket: str
    prefix: str  # "" or ending in "/"

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def open(self, options: StoreOptions, retention: Retention | None) -> Store:
        # Imported here: only the S3 store needs boto3, and it is slow to import.
        from msgarchive_server.stores.s3 import S3Options, S3Store

        reach = {spec.name: getattr(options, spec.name) for spec in fields(StoreOptions)}
        return S3Store(
            S3Options(bucket=self.bucket, prefix=self.prefix, retention=retention, **reach)
        )


Location = DirectoryLocation | S3Location


def parse_location(store: str) -> Location:
    """A directory (PATH or file://PATH) for the local store, or s3://BUCKET[/PREFIX]."""
    if "://" not in store:
        if not store.strip():
            raise BadLocation("a directory or s3://BUCKET is required")
        return DirectoryLocation(Path(store))
    parts = urlsplit(store)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise BadLocation("file URLs name a local path (file:///PATH)")
        if not parts.path:
            raise BadLocation("missing directory path")
        return DirectoryLocation(Path(parts.path))
    if parts.scheme == "s3":
        if not parts.netloc:
            raise BadLocation("missing bucket name (s3://BUCKET[/PREFIX])")
        if not BUCKET_NAME.fullmatch(parts.netloc) or ".." in parts.netloc:
            raise BadLocation(f"{parts.netloc!r} is not a valid bucket name")
        return S3Location(parts.netloc, normalize_prefix(parts.path))
    raise BadLocation(
        f"unknown store URL scheme {parts.scheme!r} "
        "(use a directory, file://PATH or s3://BUCKET[/PREFIX])"
    )


def open_store(
    url: str, options: StoreOptions | None = None, retention: Retention | None = None
) -> Store:
    """The store at `url`; with `retention`, one that verifies it keeps copies
    under it (`Unsupported` for a store that cannot). Raises `BadLocation`."""
    return parse_location(url).open(options or StoreOptions(), retention)
