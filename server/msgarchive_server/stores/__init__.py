"""Copy stores: S3 (boto3) and a local directory, behind one interface."""

from msgarchive_server.stores.base import ErrorKind, PutResult, Store, StoreError

__all__ = ["ErrorKind", "PutResult", "Store", "StoreError"]
