"""Copy stores: S3 (boto3) and a local directory, behind one interface.

`open_store(url)` opens any of them; `Capability` says what each can do.
Adding a store (GCS, Azure Blob): a module here with a class that implements
`Store` (and `VersionedStore` / `HoldingStore` where it can) and declares its
`capabilities`, and its URL scheme in `location.py`, whose `Location` opens it.
"""

from msgarchive_server.stores.base import (
    Capability,
    ErrorKind,
    HoldingStore,
    ListPage,
    NoSuchObject,
    ObjectSummary,
    PutResult,
    Retention,
    Store,
    StoredObject,
    StoreError,
    StoreOptions,
    Unsupported,
    VersionedStore,
    VersionSummary,
    holding,
    listed,
    versioned,
)
from msgarchive_server.stores.location import (
    BadLocation,
    DirectoryLocation,
    Location,
    S3Location,
    open_store,
    parse_location,
)

__all__ = [
    "BadLocation",
    "Capability",
    "DirectoryLocation",
    "ErrorKind",
    "HoldingStore",
    "ListPage",
    "Location",
    "NoSuchObject",
    "ObjectSummary",
    "PutResult",
    "Retention",
    "S3Location",
    "Store",
    "StoreError",
    "StoreOptions",
    "StoredObject",
    "Unsupported",
    "VersionSummary",
    "VersionedStore",
    "holding",
    "listed",
    "open_store",
    "parse_location",
    "versioned",
]
