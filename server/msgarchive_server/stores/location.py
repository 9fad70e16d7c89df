"""Where a store is: a local directory, or an S3 bucket and key prefix, from a URL."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from msgarchive.keys import normalize_prefix

BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


class BadLocation(ValueError):
    """The store URL is malformed; the message says how (without the URL)."""


@dataclass(frozen=True, slots=True)
class S3Location:
    bucket: str
    prefix: str  # "" or ending in "/"


def store_location(store: str) -> Path | S3Location:
    """A directory (PATH or file://PATH) for the local store, or s3://BUCKET[/PREFIX]."""
    if "://" not in store:
        if not store.strip():
            raise BadLocation("a directory or s3://BUCKET is required")
        return Path(store)
    parts = urlsplit(store)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise BadLocation("file URLs name a local path (file:///PATH)")
        if not parts.path:
            raise BadLocation("missing directory path")
        return Path(parts.path)
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
