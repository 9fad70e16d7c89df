"""Copy stores: S3 (boto3) and a local directory, behind one interface."""

from msgarchive_server.stores.base import (
    ErrorKind,
    ListPage,
    NoSuchObject,
    ObjectSummary,
    PutResult,
    Retention,
    Store,
    StoredObject,
    StoreError,
    VersionSummary,
)

__all__ = [
    "ErrorKind",
    "ListPage",
    "NoSuchObject",
    "ObjectSummary",
    "PutResult",
    "Retention",
    "Store",
    "StoreError",
    "StoredObject",
    "VersionSummary",
]
